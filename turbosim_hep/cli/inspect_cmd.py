"""``turbosim-hep inspect``: what a file holds and how many events the selection keeps."""

from __future__ import annotations

import argparse
import json

from turbosim_hep.io import Cutflow, EventFile


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "inspect",
        help="entries, tree, cut-flow and usable events of a ROOT file",
        description="Report the tree found in FILE, its entries, the cut-flow of the "
        "reference selection, the events with a complete parton record and the events "
        "finally usable for training.",
    )
    parser.add_argument("file", metavar="FILE", help="Delphes or turbosim-hep ROOT file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def run(args: argparse.Namespace) -> int:
    event_file = EventFile(args.file)
    detector, partons = event_file.has_detector, event_file.has_partons
    if not (detector or partons):
        event_file.require(detector=True, partons=False)  # raises, naming the missing branches
    cutflow = Cutflow()
    for _ in event_file.iterate(detector=detector, partons=partons, cutflow=cutflow):
        pass
    report = {
        "file": event_file.path,
        "tree": event_file.tree.name,
        "format": event_file.format,
        "entries": event_file.num_entries,
        "cutflow": cutflow.as_dict(),
        "complete_partons": _complete_partons(event_file) if partons else None,
        "selected": cutflow.selected,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['file']}: tree '{report['tree']}' ({report['format']}), "
        f"{report['entries']} entries"
    )
    width = max(len(name) for name in report["cutflow"])
    for name, count in report["cutflow"].items():
        share = count / report["entries"] if report["entries"] else 0.0
        print(f"  {name:<{width}}  {count:>10}  {share:7.2%}")
    if partons:
        print(f"events with a complete parton record: {report['complete_partons']}")
    print(f"usable events: {report['selected']}")
    return 0


def _complete_partons(event_file: EventFile) -> int:
    cutflow = Cutflow()
    for _ in event_file.iterate(detector=False, partons=True, cutflow=cutflow):
        pass
    return cutflow.selected
