"""Speed of the fast simulation inside a coffea processor, per core.

Prints, with torch on one thread (one core, as one coffea worker):

1. ``FastSim(events)`` on chunks of NanoEvents of a project file of parton events
   (parton extraction, per-event noise, inference, 4-vector collections);
2. ``simulated_events`` (the three lines a processor adds);
3. the whole `FastSimProcessor` (plus selection, tt-bar reconstruction, histograms)
   through coffea's iterative executor, for scale.

Run from the repository root:  python benchmarks/bench_fastsim.py [--events N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic tt-bar generator of the tests

from turbosim_hep.coffea import FastSim, simulated_events  # noqa: E402
from turbosim_hep.io.schemas import open_nanoevents  # noqa: E402
from turbosim_hep.io.writer import EventWriter, event_columns, parton_columns  # noqa: E402
from turbosim_hep.model import TurboSim, save_checkpoint  # noqa: E402
from turbosim_hep.validation.processor import FastSimProcessor  # noqa: E402
from turbosim_hep.validation.runner import make_executor, run_fileset  # noqa: E402

from _ttbar import ttbar_partons  # noqa: E402


def best_rate(function, n: int, repeat: int = 3) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per chunk")
    parser.add_argument("--model", type=Path,
                        help="trained model (default: reference architecture)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__} on 1 thread; load average {os.getloadavg()[0]:.1f} at start "
          "(a shared machine slows every figure)")
    with tempfile.TemporaryDirectory() as tmp:
        z = ttbar_partons(args.events, seed=5)
        model = args.model or Path(tmp) / "model.pt"
        if args.model is None:
            untrained = TurboSim.from_config(None, x=torch.from_numpy(z), z=torch.from_numpy(z))
            save_checkpoint(model, untrained)
        path = str(Path(tmp) / "partons.root")
        with EventWriter(path) as writer:
            writer.write(event_columns(np.arange(args.events)) | parton_columns(z))
        events = open_nanoevents(path, mode="eager", metadata={"filename": path, "entrystart": 0})
        fastsim = FastSim(model, device="cpu")
        fastsim(events[:1000])  # load the model once, as a worker does on its first chunk
        n = len(events)
        rate = best_rate(lambda: fastsim(events), n)
        print(f"FastSim(events), one core:                {rate:12,.0f} events/s "
              f"({n:,} events per chunk)")
        rate = best_rate(lambda: simulated_events(events, fastsim), n)
        print(f"simulated_events (the three lines), one core: {rate:8,.0f} events/s")
        processor = FastSimProcessor(model, device="cpu", keep_values=False)
        executor = make_executor("iterative", progress=False)
        rate = best_rate(lambda: run_fileset({"bench": [path]}, processor, executor=executor,
                                             chunksize=n), n, repeat=2)
        print(f"whole FastSimProcessor (iterative executor, incl. reading, reconstruction, hists): "
              f"{rate:,.0f} events/s")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
