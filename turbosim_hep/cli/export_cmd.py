"""``turbosim-hep export``: selected events as HDF5 in the reference layout."""

from __future__ import annotations

import argparse

#: The command's line in ``turbosim-hep --help``.
HELP = "write the selected events as HDF5 (datasets FDL = Z, ROL = X, event)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help=HELP,
        description="Write the events of FILE that pass the reference selection and have "
        "a complete parton record as HDF5 in the layout of the reference data set: "
        "datasets FDL (Z, N x 24 float32), ROL (X, N x 24 float32) and event (entry numbers).",
    )
    parser.add_argument("file", metavar="FILE", help="Delphes or turbosim-hep ROOT file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.h5", help="output file")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    return parser


def run(args: argparse.Namespace) -> int:
    from turbosim_hep.io import read_events
    from turbosim_hep.io.hdf5 import write_reference_h5
    from turbosim_hep.outputs import check_output_path

    # fail before reading anything
    check_output_path(args.output, force=args.force, inputs=[args.file])
    batch, cutflow = read_events(args.file)
    write_reference_h5(args.output, batch, force=args.force)
    print(f"{args.output}: {len(batch)} events of {cutflow.counts['all']} written")
    return 0
