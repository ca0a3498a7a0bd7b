"""``turbosim-hep demo``: the whole chain on the shipped sample."""

from __future__ import annotations

import argparse

from turbosim_hep.cli._common import add_layout_flag, add_progress_flag
from turbosim_hep.cli._types import seed_int

#: The command's line in ``turbosim-hep --help``.
HELP = "train, simulate, unfold and validate on the shipped sample"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help=HELP,
        description="Split the shipped pp -> tt-bar sample into training, validation and "
        "test parts, train the turbosim preset, simulate the test partons and unfold the "
        "test detector events, and validate both against the test truth with the coffea "
        "analysis. Prints the paper's Table 1 for this run and writes the model, the ROOT "
        "files and the report (metrics.md, metrics.json, plots) under DIR.",
    )
    parser.add_argument("-o", "--output", default="demo-output", metavar="DIR",
                        help="output directory (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--quick", action="store_true",
                        help="a one-minute run on a small subset, same code path (for tests)")
    parser.add_argument("--sample", metavar="FILE", help="use FILE instead of the shipped sample")
    parser.add_argument("--seed", type=seed_int, default=2021,
                        help="seed of everything (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="reuse a non-empty output directory")
    add_layout_flag(
        parser, default=None,
        default_text="the one --sample names, else ejets and the shipped sample; another "
        "layout without --sample generates its sample first (needs turbosim-hep[generate])",
    )
    add_progress_flag(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from turbosim_hep.demo import run_demo  # torch and coffea: only when the demo runs

    run_demo(args.output, sample=args.sample, device=args.device, quick=args.quick,
             seed=args.seed, force=args.force, progress=args.progress, layout=args.layout)
    return 0
