"""``turbosim-hep unfold``: parton-level events from detector-level files (x -> z~)."""

from __future__ import annotations

import argparse

from turbosim_hep.cli._types import oversample_int
from turbosim_hep.cli.simulate_cmd import add_run_arguments, run_command

#: The command's line in ``turbosim-hep --help``.
HELP = "unfold detector-level events to the six partons with a trained model"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "unfold",
        help=HELP,
        description="Estimate the six partons of the model's layout (ejets: e-, nu_e-bar, b, "
        "b-bar, u, d-bar) of every event of the INPUT files (Delphes or the project's ROOT "
        "files, HDF5 exports) that passes the layout's selection, with the encoder of MODEL, "
        "and write them as the Parton collection beside the input lepton, Jet and MET to one "
        "ROOT file. With --samples "
        "K, every event is unfolded K times, each a draw from the encoder's posterior "
        "q(z|x) with its own reproducible noise (docs/simulate.md: how to use them).",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--samples", type=oversample_int, default=1, metavar="K",
        help="parton events drawn per detector event (branch 'replica', weights divided "
        "by K; group them by 'source' and 'event'; default 1, at most 65536)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    return run_command(args, "unfold")
