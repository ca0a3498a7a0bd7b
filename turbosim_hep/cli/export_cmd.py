"""``turbosim-hep export``: selected events as HDF5 in the reference layout."""

from __future__ import annotations

import argparse

from turbosim_hep.cli._common import add_layout_flag

#: The command's line in ``turbosim-hep --help``.
HELP = "write the selected events as HDF5 (datasets FDL = Z, ROL = X, event)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export",
        help=HELP,
        description="Write the events of FILE that pass the layout's selection and have "
        "a complete parton record as HDF5 in the format of the reference data set: "
        "datasets FDL (Z, N x 24 float32), ROL (X, N x 24 float32) and event (entry "
        "numbers), the layout's name in the file's attributes.",
    )
    add_layout_flag(parser, default=None, default_text="the one FILE names, else ejets")
    parser.add_argument("file", metavar="FILE", help="Delphes or turbosim-hep ROOT file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.h5", help="output file")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    return parser


def run(args: argparse.Namespace) -> int:
    from turbosim_hep.cli.inspect_cmd import open_in_layout
    from turbosim_hep.io.hdf5 import write_reference_h5
    from turbosim_hep.outputs import check_output_path

    # fail before reading anything
    check_output_path(args.output, force=args.force, inputs=[args.file])
    event_file = open_in_layout(args.file, args.layout)
    batch, cutflow = event_file.read()
    write_reference_h5(args.output, batch, force=args.force, layout=event_file.layout)
    print(f"{args.output}: {len(batch)} events of {cutflow.counts['all']} written")
    return 0
