"""``turbosim-hep simulate``: detector-level events from parton-level files (Z -> x~)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from turbosim_hep.cli._common import add_layout_flag, add_progress_flag
from turbosim_hep.cli._types import oversample_int, positive_int, scheduler_address, seed_int

if TYPE_CHECKING:  # torch and uproot load only when a command runs
    from turbosim_hep.pipeline import RunSummary

#: The command's line in ``turbosim-hep --help``.
HELP = "simulate detector-level events from parton-level files with a trained model"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate",
        help=HELP,
        description="Generate the lepton, missing transverse momentum and four jets of "
        "every event of the model's layout (ejets: e- nu_e-bar b b-bar u d-bar; mujets: "
        "the muon's) and of its charge conjugate in the INPUT "
        "files (the project's ROOT files, Delphes files, LHE files plain or gzipped, HDF5 "
        "exports) with the decoder of MODEL, and write them with the input partons to one "
        "ROOT file. Most events of a raw parton sample would fail the detector selection: the "
        "acceptance learnt with the model keeps each event with the probability that it "
        "passes (--acceptance sample, the default), so the output holds the yield a detector "
        "would select and needs no weights. Events with another final state or with "
        "NaN/infinite values are counted and skipped.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--acceptance",
        default=None,
        metavar="{sample,weight,off}",
        help="how the model's detector acceptance epsilon(partons) applies: 'sample' (the "
        "default when the model has one) keeps each event with probability epsilon, so "
        "counts and unweighted histograms give the selected yield; 'weight' keeps every "
        "event with weight = epsilon (smaller statistical errors, fill with the weight "
        "branch); 'off' simulates every event as if it were selected (for inputs that "
        "already passed the selection; the default for a model without acceptance)",
    )
    parser.add_argument(
        "--oversample", type=oversample_int, default=1, metavar="K",
        help="simulate every input event K times with independent noise and acceptance "
        "decisions (branch 'replica', weights divided by K; default 1, at most 65536)",
    )
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments simulate and unfold share."""

    parser.add_argument("model", metavar="MODEL.pt", help="model file of 'turbosim-hep train'")
    parser.add_argument("inputs", metavar="INPUT", nargs="+", help="input files")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT.root", help="output ROOT file"
    )
    parser.add_argument(
        "--seed", type=seed_int, default=0, help="seed of the per-event noise (default 0)"
    )
    parser.add_argument(
        "--device", default="auto",
        help="auto (CUDA if available), cpu, cuda or cuda:N (default auto)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=None, metavar="B",
        help="events per forward pass (default 16384 on CPU, 262144 on CUDA)",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=None, metavar="J",
        help="input files processed at once in local processes (default: one per core)",
    )
    parser.add_argument(
        "--scheduler", type=scheduler_address, default=None, metavar="ADDRESS",
        help="run the input files on this Dask distributed scheduler (tcp://host:8786)",
    )
    parser.add_argument(
        "--channel", default="both", metavar="CHANNEL",
        help="the layout's reference channel (ejets: electron, e- nu_e-bar b b-bar u d-bar, "
        "the paper's; mujets: muon), its charge conjugate (positron, antimuon: CP-mirrored "
        "through the model) or both (default)",
    )
    add_layout_flag(
        parser, default=None,
        default_text="the model's, the only one it takes; a file of another is refused",
    )
    parser.add_argument(
        "--compression", default="zstd:1", metavar="ALGO[:LEVEL]",
        help="compression of the output: zstd, lz4, zlib or lzma, with an optional level "
        "(1 when omitted; default zstd:1; docs/simulate.md compares them)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    add_progress_flag(parser)


def run_command(args: argparse.Namespace, direction: str) -> int:
    """Run simulate or unfold from parsed arguments and print the summary."""
    from turbosim_hep.pipeline import RunOptions, simulate_files, unfold_files

    options = RunOptions(
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        jobs=args.jobs,
        scheduler=args.scheduler,
        force=args.force,
        progress=args.progress and sys.stderr.isatty(),
        channel=args.channel,
        compression=args.compression,
        layout=args.layout,
    )
    if direction == "simulate":
        summary = simulate_files(
            args.model, args.inputs, args.output, acceptance=args.acceptance,
            oversample=args.oversample, options=options,
        )
    else:
        summary = unfold_files(
            args.model, args.inputs, args.output, samples=args.samples, options=options
        )
    print_summary(summary, direction)
    return 0


#: What the copies of every input event are called, by direction.
_COPIES = {"simulate": "replicas", "unfold": "samples"}
#: What the events skipped by the reader lack, by direction.
_SKIPPED = {
    "simulate": "without the layout's partons",
    "unfold": "failing the layout's selection",
}


def print_summary(summary: RunSummary, direction: str) -> None:
    """One line per input (events read, skipped and why, written), then the total."""
    for f in summary.files:
        replicas = f" ({f.oversample} {_COPIES[direction]} each)" if f.oversample > 1 else ""
        rejected = f"{f.rejected} rejected by the acceptance, " if f.applies_acceptance else ""
        print(
            f"{os.path.basename(f.path)}: {f.written} of {f.total} events written"
            f"{replicas}; skipped {f.total - f.selected} {_SKIPPED[direction]}, {rejected}"
            f"{f.nonfinite_inputs} with NaN or infinite inputs, {f.nonfinite_outputs} with "
            "NaN or infinite outputs"
        )
    rate = summary.written / summary.seconds if summary.seconds > 0 else float("nan")
    print(
        f"{summary.output}: {summary.written} events in {summary.seconds:.1f} s "
        f"({rate:,.0f} events/s)"
    )


def run(args: argparse.Namespace) -> int:
    return run_command(args, "simulate")
