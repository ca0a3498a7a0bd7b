"""Validate a Turbo-Sim simulation against the detector truth with coffea.

Runs `turbosim_hep.validation.processor.TtbarValidationProcessor` over the datasets of a fileset
(``{dataset: [file, ...]}``, paths relative to the JSON file) and writes the report
(metrics.json, metrics.md with the paper's Table 1, mplhep plots, histograms.root).

    python analysis/validate_ttbar.py -o report/                      # iterative
    python analysis/validate_ttbar.py -o report/ --executor futures --workers 2
    python analysis/validate_ttbar.py -o report/ --executor dask --workers 2   # LocalCluster
    python analysis/validate_ttbar.py -o report/ --executor dask --scheduler tcp://host:8786

The fileset needs a ``truth`` and a ``simulation`` dataset; an ``unfolded`` dataset (the
output of ``turbosim-hep unfold``) makes the parton-level columns compare unfolded
partons with the truth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from turbosim_hep.validation import validate_fileset
from turbosim_hep.validation.report import TABLE1, UNFOLDED, table1_markdown
from turbosim_hep.validation.runner import EXECUTORS

HERE = Path(__file__).resolve().parent


def load_fileset(path: Path) -> dict[str, list[str]]:
    """The fileset with every path made absolute (relative paths are from the JSON file)."""
    fileset = json.loads(path.read_text())
    return {
        dataset: [
            str((path.parent / f).resolve())
            for f in ([files] if isinstance(files, str) else files)
        ]
        for dataset, files in fileset.items()
    }


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int):
    """A client of an existing scheduler, or of a LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fileset", type=Path, default=HERE / "fileset.json")
    parser.add_argument("-o", "--output", required=True, type=Path, help="report directory")
    parser.add_argument("--executor", choices=EXECUTORS, default="iterative")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--chunksize", type=int, default=200_000)
    parser.add_argument("--plots", choices=("all", "table1", "none"), default="all")
    parser.add_argument("--force", action="store_true", help="replace an existing report")
    args = parser.parse_args()

    fileset = load_fileset(args.fileset)
    options = dict(
        unfolded=UNFOLDED if UNFOLDED in fileset else None,
        executor=args.executor,
        workers=args.workers,
        chunksize=args.chunksize,
        force=args.force,
        plots={"all": True, "none": False}.get(args.plots, [q for q, _ in TABLE1.values()]),
    )
    if args.executor == "dask":
        with dask_client(args.scheduler, args.workers) as client:
            result = validate_fileset(fileset, args.output, client=client, **options)
    else:
        result = validate_fileset(fileset, args.output, **options)
    print(table1_markdown(result))
    print(f"report written to {args.output}")


if __name__ == "__main__":
    main()
