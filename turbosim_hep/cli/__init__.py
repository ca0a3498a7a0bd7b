"""The ``turbosim-hep`` command line: thin commands over the library.

Each command lives in its own module with ``HELP`` (its line in ``turbosim-hep --help``),
``add_parser(subparsers)`` and ``run(args)``. A command module imports nothing heavy at
import time, and only the parser of the command that runs is built, so that ``--help``
and ``inspect`` load neither torch nor coffea: the library is imported inside ``run``
(and, for ``train``, whose flags list the loss terms and presets, inside ``add_parser``).
Errors that are the user's input (`turbosim_hep.errors.TurbosimError`, which includes
an output that cannot be written, such as on a full disk) are printed as one line,
without a traceback, and give exit code 2. Ctrl-C gives 130 and SIGTERM (a batch
system's stop) 143: both stop the run the same way, the workers stopped and no partial
output left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import NoReturn

from turbosim_hep import __version__
from turbosim_hep.errors import TurbosimError

#: Command modules, in the order ``--help`` lists them.
COMMANDS = ("inspect", "export", "generate", "train", "simulate", "unfold", "validate", "demo")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as all of the commands' errors:
    ``turbosim-hep train: error: argument --lr: must be a positive number, got -1``
    (``--help`` shows the usage). The command parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every command registered.

    Parameters
    ----------
    commands
        The commands whose own parsers are built (``add_parser``); the others are
        registered with their ``HELP`` line only, which is all that ``turbosim-hep --help``
        shows. `None` (the default) builds every command's parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser of ``turbosim-hep``.
    """
    parser = Parser(
        prog="turbosim-hep",
        description="Turbo-Sim fast simulation and unfolding of collider events.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"turbosim_hep.cli.{name}_cmd")
        if commands is None or name in commands:
            sub = module.add_parser(subparsers)
        else:
            sub = subparsers.add_parser(name, help=module.HELP)
        sub.set_defaults(_run=module.run)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command that ``argv`` asks for: its first argument that is not an option (the
    top-level options, ``--help`` and ``--version``, take no value); `None` if none."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run stops as it does on Ctrl-C."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``turbosim-hep``; returns the exit code.

    The package's own warnings are part of a command's output: each is printed as one
    line, ``turbosim-hep COMMAND: warning: ...``, once the command has succeeded (a
    failed command prints its one-line error alone).
    """
    try:
        if argv is None:
            argv = sys.argv[1:]
        args = build_parser(commands=[_command_in(argv)]).parse_args(argv)
    except SystemExit as exit_:  # --help, --version or a parse error, already printed
        return int(exit_.code or 0)
    try:
        with _sigterm_raises_terminated(), warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", category=UserWarning, module=r"turbosim_hep\.")
            code = args._run(args) or 0
    except TurbosimError as err:
        print(f"turbosim-hep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"turbosim-hep {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"turbosim-hep {args.command}: interrupted", file=sys.stderr)
        return 130
    _show_warnings(args.command, caught)
    return code


def _show_warnings(command: str, caught: list[warnings.WarningMessage]) -> None:
    """The package's warnings as one line each; other libraries' as Python shows them."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for warning in caught:
        if os.path.abspath(warning.filename).startswith(package + os.sep):
            print(f"turbosim-hep {command}: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )


@contextlib.contextmanager
def _sigterm_raises_terminated() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` inside (in the main thread; elsewhere Python cannot
    handle signals). Further SIGTERMs are ignored while the run cleans up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
