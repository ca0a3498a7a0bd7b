"""argparse ``type=`` functions of the numeric flags: bad values fail at parse time.

Each function parses the flag's text and checks the value with the kind of
`turbosim_hep.arguments` that the library's own functions use, so that the command line
and the Python API accept and refuse the same values, in the same words. A bad value
raises `argparse.ArgumentTypeError`, which argparse reports as one line naming the flag:
``turbosim-hep train: error: argument --lr: must be a positive number, got -1``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from turbosim_hep import arguments
from turbosim_hep.arguments import ArgumentError, Integers, Numbers


def _flag_type(kind: Integers | Numbers) -> Callable[[str], int | float]:
    """The ``type=`` function of flags of one kind: text -> checked value (a refused
    value is quoted as the user typed it)."""
    parse = int if isinstance(kind, Integers) else float

    def convert(text: str) -> int | float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind.what}, got {text!r}") from None
        try:
            return kind.check(value, "")
        except ArgumentError:
            raise argparse.ArgumentTypeError(f"must be {kind.what}, got {text}") from None

    return convert


#: An integer of at least 1 (events, epochs, batch sizes, jobs, bins).
positive_int = _flag_type(arguments.POSITIVE_INT)
#: An integer of at least 0 (counts where 0 means none or the default).
non_negative_int = _flag_type(arguments.NON_NEGATIVE_INT)
#: A seed: an integer from 0 to 2**63 - 1.
seed_int = _flag_type(arguments.SEED)
#: ``--oversample``: an integer from 1 to `turbosim_hep.arguments.MAX_OVERSAMPLE`.
oversample_int = _flag_type(arguments.OVERSAMPLE)
#: A finite number above 0 (learning rates).
positive_float = _flag_type(arguments.POSITIVE_NUMBER)
#: A finite number of at least 0 (loss weights).
non_negative_float = _flag_type(arguments.NON_NEGATIVE_NUMBER)


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An integer from ``low`` to ``high`` (both included)."""
    return _flag_type(Integers(low, high, f"an integer from {low} to {high}"))


def fraction(*, zero: bool, one: bool) -> Callable[[str], float]:
    """A number between 0 and 1; ``zero`` and ``one`` say whether the ends are allowed."""
    return _flag_type(arguments.fraction(zero=zero, one=one))


def scheduler_address(text: str) -> str:
    """A Dask scheduler address, ``tcp://HOST:PORT``."""
    try:
        return arguments.scheduler_address(text, "")
    except ArgumentError as err:
        raise argparse.ArgumentTypeError(err.problem) from None
