"""The ``turbosim-hep`` command line: thin commands over the library.

Each command lives in its own module with ``add_parser(subparsers)`` and ``run(args)``.
Errors that are the user's input (`turbosim_hep.errors.TurbosimError`) are printed as
one line, without a traceback, and give exit code 2; Ctrl-C gives 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from turbosim_hep import __version__
from turbosim_hep.errors import TurbosimError

#: Command modules, in the order ``--help`` lists them.
COMMANDS = ("inspect", "export", "generate", "train", "simulate", "unfold", "validate", "demo")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="turbosim-hep",
        description="Turbo-Sim fast simulation and unfolding of collider events.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"turbosim_hep.cli.{name}_cmd")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``turbosim-hep``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            # the package's own warnings are part of the command's output, every time
            warnings.filterwarnings("always", category=UserWarning, module=r"turbosim_hep\.")
            warnings.showwarning = _one_line_warning(args.command)
            return args._run(args) or 0
    except TurbosimError as err:
        print(f"turbosim-hep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"turbosim-hep {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(command: str):
    """A `warnings.showwarning` that prints ``turbosim-hep COMMAND: warning: message``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"turbosim-hep {command}: warning: {message}", file=file or sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
