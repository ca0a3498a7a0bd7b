"""``turbosim-hep unfold``: parton-level events from detector-level files (x -> z~)."""

from __future__ import annotations

import argparse

from turbosim_hep.cli.simulate_cmd import add_run_arguments, run_command


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "unfold",
        help="unfold detector-level events to the six partons with a trained model",
        description="Estimate the six partons (e-, nu_e-bar, b, b-bar, u, d-bar) of every "
        "event of the INPUT files (Delphes or the project's ROOT files, HDF5 exports) that "
        "passes the reference selection, with the encoder of MODEL, and write them as the Parton "
        "collection beside the input Electron, Jet and MET to one ROOT file.",
    )
    add_run_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return run_command(args, "unfold")
