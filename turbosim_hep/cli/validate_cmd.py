"""``turbosim-hep validate``: the coffea analysis on the truth and on the simulation."""

from __future__ import annotations

import argparse
import sys

from turbosim_hep.cli._common import add_layout_flag, add_progress_flag
from turbosim_hep.cli._types import positive_int

#: Executors offered here (Dask needs a client: use the Python API or analysis/).
#: The library (coffea, scipy, matplotlib) is imported in `run`, keeping --help fast.
CLI_EXECUTORS = ("iterative", "futures")

#: The command's line in ``turbosim-hep --help``.
HELP = "compare a fast simulation with the truth: KS/W1 metrics, Table 1, plots"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate",
        help=HELP,
        description="Run the same coffea analysis (the layout's selection, tt-bar "
        "reconstruction, histograms) on the truth and on the Turbo-Sim output, and write "
        "a report to DIR: metrics.json (KS and Wasserstein-1 distances of every quantity, "
        "valid fraction, Table 1), metrics.md (Table 1 next to the published rows), "
        "plots/ (PNG and PDF) and histograms.root.",
    )
    parser.add_argument("--truth", required=True, nargs="+", metavar="FILE",
                        help="truth events: Delphes or turbosim-hep ROOT file(s)")
    parser.add_argument("--sim", required=True, nargs="+", metavar="FILE",
                        help="output file(s) of 'turbosim-hep simulate' (or 'unfold')")
    parser.add_argument("--unfolded", nargs="+", metavar="FILE",
                        help="output file(s) of 'turbosim-hep unfold' of the truth file(s): "
                        "the parton-level columns then compare the unfolded partons with the "
                        "truth, and the report adds the parton-level masses' KS, a classifier "
                        "test and, with 'unfold --samples K', the coverage of the posterior "
                        "and its calibration plot")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="report directory")
    parser.add_argument("--executor", choices=CLI_EXECUTORS, default=None,
                        help="coffea executor (default: futures with --jobs above 1, else "
                        "iterative; Dask: docs/validation.md)")
    parser.add_argument("--jobs", "--workers", dest="jobs", type=positive_int, default=1,
                        metavar="J", help="processes of the futures executor (default 1)")
    parser.add_argument("--chunksize", type=positive_int, default=200_000, help="events per chunk")
    parser.add_argument("--bins", type=positive_int, default=80, help="bins per histogram")
    parser.add_argument("--plots", choices=("all", "table1", "none"), default="all",
                        help="which quantities to plot (default: all)")
    parser.add_argument("--channel", default=None, metavar="CHANNEL",
                        help="selection: the layout's reference channel (default; ejets: "
                        "electron, the paper's), its charge conjugate (positron) or both")
    add_layout_flag(
        parser, default=None,
        default_text="the one the --sim file's metadata names, else ejets",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing report")
    add_progress_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from turbosim_hep.validation import validate
    from turbosim_hep.validation.report import TABLE1, table1_markdown, unfolding_markdown

    table1_quantities = [name for name, _ in TABLE1.values()]
    plots = {"all": True, "none": False, "table1": table1_quantities}[args.plots]
    result = validate(
        args.truth,
        args.sim,
        args.output,
        unfolded=args.unfolded,
        executor=args.executor or ("futures" if args.jobs > 1 else "iterative"),
        workers=args.jobs,
        chunksize=args.chunksize,
        bins=args.bins,
        plots=plots,
        force=args.force,
        channel=args.channel,
        layout=args.layout,
        progress=args.progress and sys.stderr.isatty(),
    )
    print(table1_markdown(result))
    if result.get("unfolding"):
        print()
        print(unfolding_markdown(result))
        print()
    if result["valid_fraction"] is not None:
        print(f"valid simulated events: {result['valid_fraction']:.4f}")
    print(f"report written to {args.output}")
    return 0
