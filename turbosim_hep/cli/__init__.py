"""The ``turbosim-hep`` command line: thin commands over the library.

Each command lives in its own module with ``add_parser(subparsers)`` and ``run(args)``.
Errors that are the user's input (`turbosim_hep.errors.TurbosimError`) are printed as
one line, without a traceback, and give exit code 2; Ctrl-C gives 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    """Entry point of ``turbosim-hep``; returns the exit code.

    The package's own warnings are part of a command's output: each is printed as one
    line, ``turbosim-hep COMMAND: warning: ...``, once the command has succeeded (a
    failed command prints its one-line error alone).
    """
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", category=UserWarning, module=r"turbosim_hep\.")
            code = args._run(args) or 0
    except TurbosimError as err:
        print(f"turbosim-hep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"turbosim-hep {args.command}: interrupted", file=sys.stderr)
        return 130
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for warning in caught:
        if os.path.abspath(warning.filename).startswith(package + os.sep):
            print(f"turbosim-hep {args.command}: warning: {warning.message}", file=sys.stderr)
        else:  # another library's: as Python shows it
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return code


if __name__ == "__main__":
    sys.exit(main())
