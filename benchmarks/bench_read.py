"""Read throughput of the project's own ROOT files (issue: foundation).

Writes N events (1 electron, 4 jets, MET, 6 partons, empty Muon/Photon collections)
with the project's writer, then times `turbosim_hep.io.read_events` (selection, Z and X
arrays) and reports events/s and peak RSS.

    python benchmarks/bench_read.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from turbosim_hep.io import EventWriter, read_events
from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns
from turbosim_hep.kinematics import p4_from_ptetaphim


def synthetic_chunk(rng: np.random.Generator, start: int, n: int) -> dict:
    pt = np.sort(rng.exponential(50, (n, 6)) + 20, axis=1)[:, ::-1].astype(np.float32)
    x = p4_from_ptetaphim(pt, rng.normal(0, 1.5, (n, 6)).astype(np.float32),
                          rng.uniform(-3, 3, (n, 6)).astype(np.float32))
    x[:, 1, 2], x[:, 1, 3] = 0.0, pt[:, 1]
    z = p4_from_ptetaphim(pt, rng.normal(0, 1.5, (n, 6)).astype(np.float32),
                          rng.uniform(-3, 3, (n, 6)).astype(np.float32), 4.7)
    empty = ak.unflatten(ak.zip({"pt": np.zeros(0, np.float32)}), np.zeros(n, np.int64))
    return (event_columns(np.arange(start, start + n)) | reco_columns(x.reshape(n, 24))
            | parton_columns(z.reshape(n, 24)) | {"Muon": empty, "Photon": empty})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.root"
        t0 = time.perf_counter()
        with EventWriter(path) as writer:
            for start in range(0, args.events, 250_000):
                writer.write(synthetic_chunk(rng, start, min(250_000, args.events - start)))
        write_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        t0 = time.perf_counter()
        batch, cutflow = read_events(path)
        read_s = time.perf_counter() - t0
    assert cutflow.selected == args.events == len(batch)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"events: {args.events}, file {size_mb:.1f} MB (ZSTD 1)")
    print(f"write: {args.events / write_s:,.0f} events/s ({write_s:.2f} s)")
    print(f"read (selection + Z + X): {args.events / read_s:,.0f} events/s ({read_s:.2f} s)")
    print(f"peak RSS: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
