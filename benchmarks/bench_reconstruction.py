"""Throughput of the tt-bar reconstruction and of the validation processor.

1. `turbosim_hep.physics.reconstruct` (all 12 jet assignments of all events at once,
   NumPy on component arrays in blocks) on N events: events/s per core, from the CPU
   time of this single-threaded process (the wall time is printed too; the machine may
   be shared, which inflates both).
2. `turbosim_hep.physics.reconstruct_objects` fed with awkward `vector` arrays in
   (pt, eta, phi, mass) coordinates, as a coffea analysis would call it.
3. The same arithmetic written with vector's awkward backend (sums and ``.mass`` of
   (n, 12) Momentum4D arrays), the alternative `physics` does not use, for comparison.
4. A straightforward per-event Python loop doing the same (the style of the published
   reference reconstruction) on a small sample.
5. The whole coffea processor (`TtbarValidationProcessor`, iterative executor) on a
   file of the project's own format: selection, X/Z arrays, reconstruction, 55
   histograms and unbinned values.

    python benchmarks/bench_reconstruction.py [--events 1000000] [--chunk 200000]
"""

from __future__ import annotations

import os

# One core: no BLAS/OpenMP threads (the element-wise work is single-threaded anyway).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
import vector  # noqa: E402

from turbosim_hep import layout, physics  # noqa: E402
from turbosim_hep.io.writer import EventWriter, event_columns, parton_columns, reco_columns  # noqa: E402
from turbosim_hep.kinematics import p4_from_ptetaphim  # noqa: E402


def synthetic_x(n: int, seed: int = 0) -> np.ndarray:
    """float32 (n, 24) X arrays with plausible spectra (timing does not depend on physics)."""
    rng = np.random.default_rng(seed)
    pt = (rng.exponential(50, (n, 6)) + 20).astype(np.float32)
    pt[:, 2:] = -np.sort(-pt[:, 2:], axis=1)
    p4 = p4_from_ptetaphim(pt, rng.normal(0, 1.5, (n, 6)).astype(np.float32),
                           rng.uniform(-np.pi, np.pi, (n, 6)).astype(np.float32))
    p4[:, 1, 2], p4[:, 1, 3] = 0.0, pt[:, 1]
    return p4.reshape(n, layout.N_FEATURES)


def loop_reconstruction(x: np.ndarray) -> None:
    """Per-event Python: the neutrino and the 12 assignments, one event at a time."""

    def mass(*p4s):
        e, px, py, pz = (sum(p[i] for p in p4s) for i in (3, 0, 1, 2))
        m2 = e * e - px * px - py * py - pz * pz
        return math.copysign(math.sqrt(abs(m2)), m2)

    for event in x.astype(np.float64):
        e, met, *jets = event.reshape(6, 4)
        k = layout.M_W**2 / 2 + e[0] * met[0] + e[1] * met[1]
        a = e[3] ** 2 - e[2] ** 2
        disc = (k * e[2]) ** 2 - a * (e[3] ** 2 * (met[0] ** 2 + met[1] ** 2) - k * k)
        centre = k * e[2] / a
        pz = centre - math.copysign(math.sqrt(max(disc, 0.0)) / a, centre)
        nu = (met[0], met[1], pz, math.sqrt(met[0] ** 2 + met[1] ** 2 + pz * pz))
        best = math.inf
        for b_lep, b_had in itertools.permutations(range(4), 2):
            w = [jets[j] for j in range(4) if j not in (b_lep, b_had)]
            chi2 = ((mass(e, nu, jets[b_lep]) - layout.M_TOP) / layout.SIGMA_T_LEP) ** 2 + (
                (mass(*w) - layout.M_W) / layout.SIGMA_W_HAD) ** 2 + (
                (mass(*w, jets[b_had]) - layout.M_TOP) / layout.SIGMA_T_HAD) ** 2
            best = min(best, chi2)
        mass(e, nu, *jets)


def vector_arithmetic(x: np.ndarray, block: int = physics.BLOCK_SIZE) -> None:
    """The reconstruction with vector's awkward backend doing the four-vector arithmetic."""
    for start in range(0, len(x), block):
        p4 = np.moveaxis(x[start:start + block].astype(np.float64).reshape(-1, 6, 4), -1, 0)

        def vectors(components):
            return vector.zip({c: ak.from_numpy(np.ascontiguousarray(components[i]))
                               for i, c in enumerate(("px", "py", "pz", "E"))})

        pz = physics.neutrino_pz(p4[:, :, 0].T, p4[0, :, 1], p4[1, :, 1])
        met_pt = np.hypot(p4[0, :, 1], p4[1, :, 1])
        nu = np.stack([p4[0, :, 1], p4[1, :, 1], pz, np.hypot(met_pt, pz)])
        lepton_w = vectors(p4[:, :, 0]) + vectors(nu)
        jets = p4[:, :, 2:]
        b_lep, w1, w2, b_had = (vectors(jets[:, :, layout.ASSIGNMENTS[:, s]]) for s in range(4))
        w_had = w1 + w2
        t_had = w_had + b_had
        t_lep = lepton_w[:, np.newaxis] + b_lep
        m_w, m_th, m_tl = (ak.to_numpy(v.mass) for v in (w_had, t_had, t_lep))
        chi2 = (((m_tl - layout.M_TOP) / layout.SIGMA_T_LEP) ** 2
                + ((m_w - layout.M_W) / layout.SIGMA_W_HAD) ** 2
                + ((m_th - layout.M_TOP) / layout.SIGMA_T_HAD) ** 2)
        best = np.argmin(chi2, axis=1)
        rows = np.arange(len(best))
        _ = (m_w[rows, best], m_th[rows, best], m_tl[rows, best],
             ak.to_numpy(t_had.pt)[rows, best], ak.to_numpy(t_lep.pt)[rows, best],
             (lepton_w + vectors(jets.sum(axis=2))).mass)


def objects_from_x(x: np.ndarray):
    """(electron, met, jets) awkward vector arrays in (pt, eta, phi, mass) coordinates."""
    p4 = x.reshape(len(x), 6, 4).astype(np.float64)
    pt = np.hypot(p4[..., 0], p4[..., 1])
    fields = {"pt": pt, "eta": np.arcsinh(p4[..., 2] / np.where(pt > 0, pt, 1)),
              "phi": np.arctan2(p4[..., 1], p4[..., 0]), "mass": np.zeros_like(pt)}

    def take(index):
        return vector.zip(
            {k: ak.from_numpy(np.ascontiguousarray(v[:, index])) for k, v in fields.items()}
        )

    return take(0), take(1), take(slice(2, 6))


def timed(function, *args) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    function(*args)
    return time.process_time() - cpu, time.perf_counter() - wall


def rates(n: int, cpu: float, wall: float) -> str:
    """Events per second per core (CPU time) and per wall-clock second."""
    return f"{n / cpu:,.0f} events/s per core (CPU time), {n / wall:,.0f} events/s wall"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--loop-events", type=int, default=5_000)
    parser.add_argument("--processor-events", type=int, default=500_000)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          "(shared with other jobs when > 0)")

    x = synthetic_x(args.events)
    physics.reconstruct(x[:10_000])  # warm-up: imports, vector's dispatch caches

    cpu, wall = timed(physics.reconstruct, x)
    print(f"physics.reconstruct(x), {args.events} events: {rates(args.events, cpu, wall)}")

    objects = objects_from_x(x)
    cpu, wall = timed(physics.reconstruct_objects, *objects)
    print(f"physics.reconstruct_objects(vector pt/eta/phi/mass arrays), {args.events} events: "
          f"{rates(args.events, cpu, wall)}")
    del objects

    cpu, wall = timed(vector_arithmetic, x)
    print(f"same arithmetic on vector's awkward backend, {args.events} events: "
          f"{rates(args.events, cpu, wall)}")

    small = x[: args.loop_events]
    cpu, wall = timed(loop_reconstruction, small)
    print(f"per-event Python loop, {len(small)} events: {len(small) / cpu:,.0f} events/s per core")

    from turbosim_hep.validation.runner import make_executor, run_fileset

    n = args.processor_events
    z = synthetic_x(n, seed=1)  # stands in for partons: the processor only reads them
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.root"
        with EventWriter(path) as writer:
            writer.write(event_columns(np.arange(n)) | reco_columns(x[:n]) | parton_columns(z))
        run_fileset({"warm-up": [path]}, executor=make_executor(progress=False), chunksize=10_000,
                    maxchunks=1)
        executor = make_executor(progress=False)
        cpu, wall = timed(lambda: run_fileset({"bench": [path]}, executor=executor,
                                              chunksize=200_000))
    print(f"TtbarValidationProcessor (iterative executor, read + select + reconstruct + fill), "
          f"{n} events: {n / cpu:,.0f} events/s per core (CPU), {n / wall:,.0f} events/s wall")


if __name__ == "__main__":
    main()
