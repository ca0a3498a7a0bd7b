"""``turbosim-hep generate``: pp -> tt-bar events from Pythia 8 through a parametric detector."""

from __future__ import annotations

import argparse
import sys

from turbosim_hep.cli._common import add_layout_flag, add_progress_flag
from turbosim_hep.cli._types import fraction, int_between, positive_int, seed_int
from turbosim_hep.errors import TurbosimError

#: The command's line in ``turbosim-hep --help``.
HELP = "generate pp -> tt-bar training events (Pythia 8 + parametric Delphes-card detector)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help=HELP,
        description="Generate pp -> tt-bar events at 13 TeV in the final state of a layout "
        "(default ejets: tt-bar -> e- nu_e-bar b b-bar u d-bar; mujets: the muon's) with "
        "Pythia 8 and pass them through a parametric detector that follows a Delphes card. "
        "The output holds the hard-process partons (Parton) and, at detector level, Electron, "
        "Muon, Photon, Jet and MET, for every event unless --selected-only or "
        "--rejected-fraction thins the events that fail the reference selection.",
    )
    parser.add_argument(
        "-n", "--events", type=positive_int, required=True, metavar="N", help="events to generate"
    )
    parser.add_argument(
        "--seed", type=seed_int, default=1, metavar="S", help="random seed (default 1)"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT.root", help="output ROOT file"
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=1, metavar="J", help="worker processes (default 1)"
    )
    parser.add_argument(
        "--level", default="detector", metavar="{detector,parton}",
        help="'detector' (shower, hadronisation, detector) or 'parton' (hard process only)",
    )
    parser.add_argument("--card", default="otus_ttbar", help="detector card (default otus_ttbar)")
    parser.add_argument(
        "--selected-only", action="store_true",
        help="keep only events that pass the reference selection (--rejected-fraction 0)",
    )
    parser.add_argument(
        "--rejected-fraction", type=fraction(zero=True, one=True), default=None, metavar="F",
        help="keep every selected event and a random fraction F of the rejected ones, "
        "with genWeight = 1/F (default 1: every event); a sample that still teaches the "
        "detector acceptance at a fraction of the size",
    )
    parser.add_argument(
        "--compression", default="zstd:1", metavar="ALGO[:LEVEL]",
        help="zstd, lz4, zlib or lzma, with an optional level (1 when omitted; default "
        "zstd:1)",
    )
    parser.add_argument(
        "--mantissa-bits", type=int_between(1, 23), default=None, metavar="B",
        help="round floats to B mantissa bits (1-23, as NanoAOD) for a smaller file; "
        "default: full float32 precision",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    add_layout_flag(parser)
    add_progress_flag(parser)
    return parser


def _rejected_fraction(args: argparse.Namespace) -> float:
    if args.selected_only and args.rejected_fraction not in (None, 0.0):
        raise TurbosimError("--selected-only and --rejected-fraction ask for different samples")
    if args.selected_only:
        return 0.0
    return 1.0 if args.rejected_fraction is None else args.rejected_fraction


def run(args: argparse.Namespace) -> int:
    from turbosim_hep.generate.run import check_request, generate_file
    from turbosim_hep.io.writer import parse_compression

    compression = parse_compression(args.compression)
    check_request(args.events, args.seed, args.jobs, args.level, args.card)
    summary = generate_file(
        args.output,
        args.events,
        seed=args.seed,
        jobs=args.jobs,
        level=args.level,
        card=args.card,
        rejected_fraction=_rejected_fraction(args),
        force=args.force,
        compression=compression,
        progress=args.progress,
        mantissa_bits=args.mantissa_bits,
        layout=args.layout,
    )
    print(
        f"{summary.path}: {summary.written} events written of {summary.generated} generated",
        file=sys.stderr,
    )
    if len(summary.cutflow) > 1:
        total = summary.cutflow["all"]
        for name, count in summary.cutflow.items():
            print(f"  {name:<16} {count:>10}  {count / total:7.2%}", file=sys.stderr)
    return 0
