"""Fast simulation on the fly inside a coffea job, compared with the detector truth.

Runs two processors over the same file with coffea's Runner:

- `turbosim_hep.validation.processor.FastSimProcessor` on the partons of every event:
  the validation processor plus the three lines of ``docs/coffea-plugin.md``, so the
  detector-level objects are simulated by Turbo-Sim while the job runs (nothing is written
  in between), each event kept with the probability that the detector selects it (the
  model's acceptance; the shipped sample holds rejected events too, weighted);
- `turbosim_hep.validation.processor.TtbarValidationProcessor` on its detector-level
  objects: the events the detector selected;

and prints the two selected yields, for the detector-level quantities of the paper's
Table 1 the (weighted) KS distance between the two (x 10^-2), and the histogram of m_tt
side by side.

    turbosim-hep train turbosim_hep/data/ttbar_sample.root -o model.pt   # once
    python analysis/fastsim_ttbar.py model.pt                             # shipped sample
    python analysis/fastsim_ttbar.py model.pt --executor futures --workers 2 --chunksize 5000
    python analysis/fastsim_ttbar.py model.pt --executor dask --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from turbosim_hep import metrics
from turbosim_hep.validation.processor import (
    WEIGHT_VALUES,
    FastSimProcessor,
    TtbarValidationProcessor,
    dataset_values,
)
from turbosim_hep.validation.report import TABLE1, TABLE1_PARTON_COLUMNS
from turbosim_hep.validation.runner import EXECUTORS, make_executor, run_fileset

SHIPPED_SAMPLE = Path(__file__).resolve().parents[1] / "turbosim_hep" / "data" / "ttbar_sample.root"


@contextlib.contextmanager
def executor_for(name: str, workers: int):
    """A coffea executor; ``dask`` runs on a LocalCluster of ``workers`` processes."""
    if name != "dask":
        yield make_executor(name, workers=workers)
        return
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield make_executor("dask", client=client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model of 'turbosim-hep train'")
    parser.add_argument("files", nargs="*", type=Path, default=[SHIPPED_SAMPLE],
                        help="files with partons and detector objects "
                        "(default: the shipped sample)")
    parser.add_argument("--executor", choices=EXECUTORS, default="iterative")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--acceptance", choices=("sample", "weight", "off"), default=None,
                        help="how the model's acceptance applies (default: sample when it has "
                        "one; off for files of selected events only)")
    args = parser.parse_args()

    files = [str(f) for f in args.files]
    with executor_for(args.executor, args.workers) as executor:
        start = time.perf_counter()
        simulated = run_fileset(
            {"fastsim": files},
            FastSimProcessor(
                args.model, seed=args.seed, device=args.device, acceptance=args.acceptance
            ),
            executor=executor,
            chunksize=args.chunksize,
        )
        seconds = time.perf_counter() - start
        truth = run_fileset({"truth": files}, TtbarValidationProcessor(), executor=executor,
                            chunksize=args.chunksize)

    n = simulated["cutflow"]["fastsim"].get("four_jets", 0)
    print(f"fast simulation inside the job: {n} events simulated and analysed in {seconds:.1f} s")
    print(f"selected yield: fast simulation {simulated['yield']['fastsim']:.1f}, "
          f"detector {truth['yield']['truth']:.1f}")
    fast, true = dataset_values(simulated, "fastsim"), dataset_values(truth, "truth")
    print(f"{'quantity':12s} {'KS x 1e-2':>10s}")
    for column, (quantity, _) in TABLE1.items():
        if column not in TABLE1_PARTON_COLUMNS:
            ks = metrics.ks_distance(
                fast[quantity], true[quantity], fast[WEIGHT_VALUES], true[WEIGHT_VALUES]
            )
            print(f"{column:12s} {100 * ks:10.2f}")
    h_fast, h_true = simulated["hists"]["m_tt"], truth["hists"]["m_tt"]
    print("m_tt histogram (GeV): bin low edge, fast simulation, truth")
    edges = h_fast.axes["m_tt"].edges
    rows = zip(edges[:-1:8], h_fast.values()[0][::8], h_true.values()[0][::8], strict=True)
    for low, a, b in rows:
        print(f"  {low:8.0f} {a:8.0f} {b:8.0f}")


if __name__ == "__main__":
    main()
