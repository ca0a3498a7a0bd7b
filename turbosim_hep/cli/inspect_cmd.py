"""``turbosim-hep inspect``: what a file holds and how many events the selection keeps."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from turbosim_hep.cli._common import add_layout_flag

if TYPE_CHECKING:  # uproot and awkward load only when the command runs
    from turbosim_hep.io import Cutflow, EventFile

#: The command's line in ``turbosim-hep --help``.
HELP = "entries, tree, cut-flow and usable events of a ROOT file"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "inspect",
        help=HELP,
        description="Report the tree found in FILE, its entries, the cut-flow of the "
        "layout's selection, the events with a complete parton record and the events "
        "finally usable for training, and beside them the events of the charge-conjugate "
        "channel (ejets: a positron, e+ nu_e b-bar b u-bar d), which simulate, unfold and "
        "train can use too (--channel).",
    )
    parser.add_argument("file", metavar="FILE", help="Delphes or turbosim-hep ROOT file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_layout_flag(parser, default=None, default_text="the one FILE names, else ejets")
    return parser


def run(args: argparse.Namespace) -> int:
    event_file = open_in_layout(args.file, args.layout)
    layout = event_file.layout
    detector, partons = event_file.has_detector, event_file.has_partons
    # raises on a file of another layout, or naming the missing branches
    event_file.require(detector=not partons, partons=False)
    reference, conjugate_channel = layout.channels
    cutflows = {
        channel: _cutflow(event_file, detector=detector, partons=partons, channel=channel)
        for channel in layout.channels
    }
    cutflow, conjugate = cutflows[reference], cutflows[conjugate_channel]
    report = {
        "layout": layout.name,
        "file": event_file.path,
        "tree": event_file.tree.name,
        "format": event_file.format,
        "entries": event_file.num_entries,
        "cutflow": cutflow.as_dict(),
        "complete_partons": _cutflow(event_file, partons=True).selected if partons else None,
        "selected": cutflow.selected,
        "conjugate": {
            "cutflow": conjugate.as_dict(),
            "complete_partons": (
                _cutflow(event_file, partons=True, channel=conjugate_channel).selected
                if partons else None
            ),
            "selected": conjugate.selected,
        },
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['file']}: tree '{report['tree']}' ({report['format']}), "
        f"{report['entries']} entries; layout {layout.name} ({layout.description})"
    )
    width = max(len(name) for name in report["cutflow"])
    for name, count in report["cutflow"].items():
        share = count / report["entries"] if report["entries"] else 0.0
        print(f"  {name:<{width}}  {count:>10}  {share:7.2%}")
    if partons:
        print(f"events with a complete parton record: {report['complete_partons']}")
    print(f"usable events: {report['selected']}")
    other = report["conjugate"]
    partons_text = (
        f", {other['complete_partons']} with its parton record" if partons else ""
    )
    print(
        f"charge-conjugate channel ({conjugate_channel}): {other['selected']} usable "
        f"events{partons_text}"
    )
    return 0


def open_in_layout(path: str, layout: str | None) -> EventFile:
    """The reader of a file in ``layout`` (a name or a file); None: the built-in layout
    the file's metadata names, else ``ejets``."""
    from turbosim_hep.io import EventFile
    from turbosim_hep.layout import BUILTIN_LAYOUTS, DEFAULT_LAYOUT

    event_file = EventFile(path, layout or DEFAULT_LAYOUT)
    if layout is None and event_file.stored_layout in BUILTIN_LAYOUTS:
        event_file = EventFile(path, event_file.stored_layout)
    return event_file


def _cutflow(
    event_file: EventFile, *, detector: bool = False, partons: bool = False,
    channel: str | None = None,
) -> Cutflow:
    """The cut-flow of one read of the file, in ``channel`` (default: the reference one)."""
    from turbosim_hep.io import Cutflow

    cutflow = Cutflow()
    for _ in event_file.iterate(
        detector=detector, partons=partons, cutflow=cutflow, channel=channel
    ):
        pass
    return cutflow
