"""Benchmark of `turbosim-hep generate`: events per second per core, selection efficiency.

Prints, for one process (one core):

- Pythia 8 alone (its own event loop, ``pythia.next()``, showered tt-bar events);
- Pythia 8 to arrays (the batch interface, the hard-process partons: what generation uses);
- the parametric detector alone, on those events;
- the whole chain end to end through `generate_file` (Pythia + detector + writing);
- parton level end to end;

then the cut-flow and selection efficiency of the end-to-end run.

Targets (issue 3): detector level >= 150 events/s per core end to end, parton level
>= 5,000 events/s per core. The issue assumed Pythia alone at about 200 events/s per
core; on these machines it measures 100-150 (the speed of the virtual machine varies by
up to 30 % from hour to hour), so the benchmark also prints the end-to-end rate as a
fraction of Pythia's own, the figure that does not depend on the machine. The machine
may be shared with other jobs: the load average is printed with the figures.

Usage: python benchmarks/bench_generate.py [--events N] [--parton-events N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from turbosim_hep.generate import OTUS_TTBAR, generate_file
from turbosim_hep.generate.detector import ParametricDetector
from turbosim_hep.generate.pythia import TTbarGenerator


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:10.1f} events/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="detector-level events")
    parser.add_argument("--parton-events", type=int, default=40000, help="parton-level events")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(a load above 1 means the core was shared)")

    generator = TTbarGenerator(12345, "detector")
    start = time.perf_counter()
    for _ in range(args.events):  # Pythia's own event loop: no conversion to arrays
        generator.pythia.next()
    t_loop = time.perf_counter() - start
    print(f"Pythia 8 alone (pythia.next(), no arrays):   {_rate(args.events, t_loop)}")

    start = time.perf_counter()
    events = generator.generate(args.events)
    t_pythia = time.perf_counter() - start
    print(f"Pythia 8 to arrays (nextBatch + partons):    {_rate(len(events), t_pythia)}")

    detector = ParametricDetector(OTUS_TTBAR)
    detector.simulate(events.particles[:50], np.random.default_rng(0))  # warm-up
    start = time.perf_counter()
    detector.simulate(events.particles, np.random.default_rng(1))
    t_detector = time.perf_counter() - start
    print(f"parametric detector alone:                   {_rate(len(events), t_detector)}")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "detector.root")
        start = time.perf_counter()
        summary = generate_file(path, args.events, seed=1, jobs=1, progress=False)
        t_total = time.perf_counter() - start
        print(f"end to end, detector level (1 core):         {_rate(args.events, t_total)}"
              f"   file {os.path.getsize(path) / args.events:.0f} bytes/event (ZSTD 1, all events)")
        print(f"  end-to-end rate / Pythia-alone rate:       {t_loop / t_total:10.1%}"
              "   (the rest: arrays, detector, Pythia set-up per block, writing)")

        path = os.path.join(tmp, "parton.root")
        start = time.perf_counter()
        generate_file(path, args.parton_events, seed=1, jobs=1, level="parton", progress=False)
        t_parton = time.perf_counter() - start
        print(f"end to end, parton level (1 core):           {_rate(args.parton_events, t_parton)}")

    print(f"load average after: {os.getloadavg()[0]:.2f}")
    total = summary.cutflow["all"]
    print("cut-flow of the end-to-end run:")
    for name, count in summary.cutflow.items():
        print(f"  {name:<16} {count:>8}  {count / total:7.2%}")
    print(f"selection efficiency: {summary.cutflow['four_jets'] / total:.2%}")


if __name__ == "__main__":
    main()
