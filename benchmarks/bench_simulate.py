"""Speed and memory of the fast simulation (issue: fast simulation and unfolding).

Prints:

1. the decoder forward pass alone on CPU (``TurboSim.simulate`` on in-memory tensors),
   as stored and with the fused MLPs `turbosim-hep simulate` uses;
2. ``turbosim-hep simulate`` end to end on a project ROOT file of parton events
   (read, noise, inference, write), events/s;
3. its peak resident memory on a bigger input;
4. the speed-up over generating detector-level events with the project's Pythia 8 +
   detector chain (``turbosim-hep generate --level detector``);
5. with ``--oversample K``: ``simulate --oversample K`` against K = 1 on the same input
   (each input event read and prepared once, simulated K times), events written per
   second and their ratio.

The model has the reference architecture with its standardisation fitted to synthetic
events (speed does not depend on the trained weights); pass ``--model`` to use a
trained one. Inputs are synthetic tt-bar partons (``tests/_ttbar.py``) written in the
project's format. Run from the repository root:

    python benchmarks/bench_simulate.py                      # 1M end to end, 5M for RSS
    python benchmarks/bench_simulate.py --rss-events 0 --pythia-events 0   # quick
    python benchmarks/bench_simulate.py --rss-events 0 --pythia-events 0 --oversample 8
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic tt-bar generator of the tests

from turbosim_hep.device import flush_denormals  # noqa: E402
from turbosim_hep.inference import fuse_for_inference  # noqa: E402
from turbosim_hep.io.writer import EventWriter, event_columns, parton_columns  # noqa: E402
from turbosim_hep.model import TurboSim, load_model, save_checkpoint  # noqa: E402

from _ttbar import ttbar_partons  # noqa: E402

CHUNK = 500_000


def make_model(path: Path) -> None:
    z = torch.from_numpy(ttbar_partons(100_000, seed=1))
    x = z.clone()  # any X with the right scale; only the standardisation uses it
    save_checkpoint(path, TurboSim.from_config(None, x=x, z=z))


def write_partons(path: Path, n: int) -> None:
    """A project ROOT file of n parton events, written in chunks (bounded memory)."""
    with EventWriter(path, force=True) as writer:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            z = ttbar_partons(stop - start, seed=start)
            writer.write(event_columns(np.arange(start, stop)) | parton_columns(z))


def bench_forward(model_path: Path, n: int, batch_size: int, threads: int, repeat: int = 5) -> None:
    """Best of ``repeat`` passes over n events; the two variants alternate, so that a
    change of load on a shared machine hits both alike."""
    torch.set_num_threads(threads)
    model = load_model(model_path)
    z = torch.from_numpy(ttbar_partons(n, seed=2))
    noise = torch.randn(n, model.decoder_noise_dim)
    candidates = {"as stored": model, "fused (used by simulate)": fuse_for_inference(model)}
    best = dict.fromkeys(candidates, 0.0)
    with torch.inference_mode(), flush_denormals():
        for _ in range(repeat):
            for label, candidate in candidates.items():
                start = time.perf_counter()
                for lo in range(0, n, batch_size):
                    candidate.simulate(z[lo : lo + batch_size], noise[lo : lo + batch_size])
                best[label] = max(best[label], n / (time.perf_counter() - start))
    for label, rate in best.items():
        print(f"decoder forward, {label:26s}, {threads} thread(s): {rate:12,.0f} events/s  "
              f"(batch {batch_size}, {n:,} events, best of {repeat})")


def run_measured(command: list[str]) -> tuple[float, float, int, str]:
    """Wall time (s), CPU time (s), peak RSS (MB) and stdout of a command in a fresh process."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "sys.stderr.write(p.stderr)\n"
        "print(p.stdout)\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print('WALL', dt, 'CPU', u.ru_utime + u.ru_stime, 'RSS', u.ru_maxrss)\n"
        "sys.exit(p.returncode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    wall, cpu, rss = re.search(r"WALL (\S+) CPU (\S+) RSS (\d+)", done.stdout).groups()
    return float(wall), float(cpu), int(rss) // 1024, done.stdout


def bench_simulate(
    model_path: Path, workdir: Path, n: int, label: str, extra: tuple[str, ...] = ()
) -> float:
    source = workdir / f"partons_{n}.root"
    if not source.exists():
        start = time.perf_counter()
        write_partons(source, n)
        print(f"  (wrote {n:,}-event input in {time.perf_counter() - start:.0f} s)")
    output = workdir / f"simulated_{n}.root"
    command = ["turbosim-hep", "simulate", str(model_path), str(source), "-o", str(output),
               "--force", "--quiet", "--device", "cpu", *extra]
    wall, cpu, rss, stdout = run_measured(command)
    internal = float(re.search(r"\(([\d,]+) events/s\)", stdout).group(1).replace(",", ""))
    written = int(re.search(r": (\d+) events in ", stdout).group(1))
    print(f"simulate end to end, {label}: {internal:12,.0f} events/s inside the command, "
          f"{written / wall:,.0f} events/s including start-up ({wall:.1f} s), peak RSS {rss:,} MB, "
          f"CPU time {cpu:.1f} s = {n / cpu:,.0f} events per CPU-second "
          f"(idle {os.cpu_count()}-core bound: {os.cpu_count() * n / cpu:,.0f} events/s)")
    output.unlink(missing_ok=True)
    return internal


def bench_pythia(workdir: Path, n: int) -> float:
    output = workdir / "pythia.root"
    command = ["turbosim-hep", "generate", "-n", str(n), "--level", "detector", "-o", str(output),
               "--force", "--no-progress", "--seed", "3"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    rate = n / (time.perf_counter() - start)
    print(f"Pythia 8 + detector chain (generate --level detector, 1 job): {rate:10,.1f} events/s "
          f"({n} events, including start-up)")
    output.unlink(missing_ok=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path,
                        help="trained model (default: reference architecture)")
    parser.add_argument("--events", type=int, default=1_000_000, help="end-to-end input size")
    parser.add_argument("--rss-events", type=int, default=5_000_000,
                        help="input size of the RSS run (0: skip)")
    parser.add_argument("--pythia-events", type=int, default=200,
                        help="events for the Pythia chain (0: skip)")
    parser.add_argument("--forward-events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=16_384)
    parser.add_argument("--oversample", type=int, default=0, metavar="K",
                        help="also compare simulate --oversample K with K = 1 (0: skip)")
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the inputs between runs")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} at start "
          "(a shared machine slows every figure)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model_path = args.model or workdir / "reference_model.pt"
        if args.model is None:
            make_model(model_path)
        for threads in sorted({1, os.cpu_count() or 1}):
            bench_forward(model_path, args.forward_events, args.batch_size, threads)
        rate = bench_simulate(model_path, workdir, args.events, f"{args.events:,} events")
        if args.rss_events:
            bench_simulate(model_path, workdir, args.rss_events, f"{args.rss_events:,} events")
        if args.oversample:
            label = f"{args.events:,} events"
            single = bench_simulate(model_path, workdir, args.events, f"{label}, K = 1",
                                    ("--acceptance", "off"))
            many = bench_simulate(model_path, workdir, args.events,
                                  f"{label}, K = {args.oversample}",
                                  ("--acceptance", "off", "--oversample", str(args.oversample)))
            print(f"oversampling: K = {args.oversample} writes {many / single:.2f} times the "
                  "events per second of K = 1")
        if args.pythia_events:
            pythia = bench_pythia(workdir, args.pythia_events)
            print(f"speed-up of simulate over the Pythia 8 + detector chain: {rate / pythia:,.0f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
