"""The checks of every numeric and path argument, one definition for the API and the CLI.

A public function checks its arguments with the kinds below (``POSITIVE_INT.check(
batch_size, "batch_size")``) and raises `ArgumentError`, a one-line error of the package
that is also a `ValueError`: ``batch_size: must be a positive integer, got -1``. The
command line's ``type=`` functions (`turbosim_hep.cli._types`) parse the flag's text and
apply the same kinds, so that a value the CLI refuses is refused by the API too, with
the same words. NaN and infinities are refused everywhere; booleans are not numbers here.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from turbosim_hep.errors import TurbosimError


class ArgumentError(TurbosimError, ValueError):
    """A bad value of a public function's argument (or of a command's flag).

    Parameters
    ----------
    name : str
        The argument, as the caller spells it (``batch_size``, ``--batch-size``).
    problem : str
        What is wrong, as a short phrase (``must be a positive integer, got -1``).
    """

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")

    def __reduce__(self):
        return type(self), (self.name, self.problem)


@dataclass(frozen=True)
class Integers:
    """Integers from ``low`` to ``high`` (None: unbounded), described as ``what``."""

    low: int
    high: int | None
    what: str

    def check(self, value: object, name: str) -> int:
        """``value`` as an int, or `ArgumentError` naming ``name``."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ArgumentError(name, f"must be {self.what}, got {value!r}")
        value = int(value)
        if value < self.low or (self.high is not None and value > self.high):
            raise ArgumentError(name, f"must be {self.what}, got {value}")
        return value


@dataclass(frozen=True)
class Numbers:
    """Finite real numbers above ``low`` (at least, with ``low_closed``) and below
    ``high`` (at most, with ``high_closed``); None: unbounded on that side."""

    low: float | None
    high: float | None
    what: str
    low_closed: bool = True
    high_closed: bool = True

    def check(self, value: object, name: str) -> float:
        """``value`` as a float, or `ArgumentError` naming ``name``."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ArgumentError(name, f"must be {self.what}, got {value!r}")
        value = float(value)
        above = self.low is None or (value >= self.low if self.low_closed else value > self.low)
        below = self.high is None or (
            value <= self.high if self.high_closed else value < self.high
        )
        if not (math.isfinite(value) and above and below):
            raise ArgumentError(name, f"must be {self.what}, got {value}")
        return value


def fraction(*, zero: bool, one: bool) -> Numbers:
    """Numbers between 0 and 1; ``zero`` and ``one`` say whether the ends are allowed."""
    interval = f"{'[' if zero else '('}0, 1{']' if one else ')'}"
    return Numbers(0.0, 1.0, f"a number in {interval}", low_closed=zero, high_closed=one)


#: Events, epochs, batch sizes, jobs, workers, bins.
POSITIVE_INT = Integers(1, None, "a positive integer")
#: Counts where 0 means none or the default.
NON_NEGATIVE_INT = Integers(0, None, "a non-negative integer")
#: Seeds of the random numbers (NumPy's and torch's generators take 64 bits).
SEED = Integers(0, 2**63 - 1, "a non-negative 64-bit integer")
#: The replica number is stored as an unsigned 16-bit integer (`REPLICA_BRANCH`), so an
#: event is simulated at most this many times.
MAX_OVERSAMPLE = 2**16
#: ``--oversample K``.
OVERSAMPLE = Integers(1, MAX_OVERSAMPLE, f"an integer from 1 to {MAX_OVERSAMPLE}")
#: Learning rates.
POSITIVE_NUMBER = Numbers(0.0, None, "a positive number", low_closed=False)
#: Loss weights.
NON_NEGATIVE_NUMBER = Numbers(0.0, None, "a non-negative number")


def choice(value: object, choices: Sequence[str], name: str) -> str:
    """``value`` if it is one of ``choices``, or `ArgumentError` naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(name, f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def input_paths(value: str | os.PathLike | Iterable[str | os.PathLike], name: str) -> list[str]:
    """One input path or several, as a non-empty list of strings.

    A single ``str`` or `os.PathLike` is one path (as uproot takes it), never iterated
    letter by letter.

    Raises
    ------
    ArgumentError
        If ``value`` is empty, or neither a path nor an iterable of paths.
    """
    if isinstance(value, (str, bytes, os.PathLike)):
        values = [value]
    elif isinstance(value, Iterable):
        values = list(value)
    else:
        raise ArgumentError(name, f"must be a path or a list of paths, got {value!r}")
    paths = []
    for path in values:
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentError(name, f"must be a path or a list of paths, got {path!r}")
        paths.append(os.fspath(path))
    if not paths:
        raise ArgumentError(name, "no input files")
    return paths


#: The address forms a Dask scheduler listens on, with a host and a port.
_SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
#: The address form of a scheduler in this process (``LocalCluster(processes=False)``).
_INPROC_SCHEME = "inproc"


def scheduler_address(address: object, name: str) -> str:
    """A Dask scheduler's address, ``tcp://HOST:PORT`` (or tls, ws, wss, ucx; or the
    ``inproc://`` address of a scheduler in this process), checked before any connection
    is tried.

    Raises
    ------
    ArgumentError
        Naming ``name`` and the expected form.
    """
    problem = f"must be a Dask scheduler address tcp://HOST:PORT, got {address!r}"
    if not isinstance(address, str):
        raise ArgumentError(name, problem)
    scheme, separator, location = address.partition("://")
    if scheme == _INPROC_SCHEME and location:
        return address
    if not separator:
        scheme, location = "tcp", address
    host, colon, port = location.rpartition(":")
    named = bool(host.strip("[]")) and not any(c.isspace() for c in host)
    if scheme not in _SCHEDULER_SCHEMES or not (colon and named and port.isdigit()) or not (
        0 < int(port) < 2**16
    ):
        raise ArgumentError(name, problem)
    return address
