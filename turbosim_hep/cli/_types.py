"""argparse ``type=`` functions of the numeric flags: bad values fail at parse time.

Each function converts the flag's text or raises `argparse.ArgumentTypeError`, which
argparse reports as one line naming the flag: ``turbosim-hep train: error: argument
--lr: must be a positive number, got -1``. NaN and infinities are refused everywhere.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def positive_int(text: str) -> int:
    """An integer of at least 1 (events, epochs, batch sizes, jobs, bins)."""
    return _integer(text, 1, None, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (counts where 0 means none or the default)."""
    return _integer(text, 0, None, "a non-negative integer")


def seed_int(text: str) -> int:
    """A seed: an integer from 0 to 2**63 - 1."""
    return _integer(text, 0, 2**63 - 1, "a non-negative 64-bit integer")


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An integer from ``low`` to ``high`` (both included)."""

    def parse(text: str) -> int:
        return _integer(text, low, high, f"an integer from {low} to {high}")

    return parse


def positive_float(text: str) -> float:
    """A finite number above 0 (learning rates)."""
    value = _number(text, "a positive number")
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of at least 0 (loss weights)."""
    value = _number(text, "a non-negative number")
    if value < 0.0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value


def fraction(*, zero: bool, one: bool) -> Callable[[str], float]:
    """A number between 0 and 1; ``zero`` and ``one`` say whether the ends are allowed."""
    interval = f"{'[' if zero else '('}0, 1{']' if one else ')'}"

    def parse(text: str) -> float:
        value = _number(text, f"a number in {interval}")
        above = value >= 0.0 if zero else value > 0.0
        below = value <= 1.0 if one else value < 1.0
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must be a number in {interval}, got {text}")
        return value

    return parse


def _integer(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value
