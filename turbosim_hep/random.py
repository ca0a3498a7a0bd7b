"""Reproducible per-event random numbers, independent of how the work is cut.

The random numbers of an event are a pure function of (seed, stream, entry, replica),
where ``stream`` identifies the input file and ``replica`` the copy of the event when it
is simulated several times (`--oversample`). Entries are grouped in fixed blocks of
`BLOCK` consecutive entry numbers; each block has its own NumPy Philox generator keyed by
(seed, stream, block) and, for a replica other than 0 or for a purpose other than the
model's noise, a spawn key. A chunk of any size draws the blocks it touches and keeps the
rows of its entries, so results do not depend on chunk sizes, processes or Dask tasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

#: Entries per random block.
BLOCK = 1024
#: Spawn-key tag of the uniform numbers that decide whether an event is accepted.
_ACCEPTANCE = 1


def stream_id(name: str) -> int:
    """A stable 64-bit stream id for a name (for example an input file's base name)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def event_normal(
    seed: int, stream: int, entry: np.ndarray, size: int, *, replica: int = 0
) -> np.ndarray:
    """Standard normal numbers, ``size`` per event, fixed by (seed, stream, entry, replica).

    Parameters
    ----------
    seed : int
        User seed (non-negative).
    stream : int
        Stream id, for example `stream_id` of the input file.
    entry : numpy.ndarray
        Entry numbers of the events, shape (n,), in any order.
    size : int
        Numbers per event.
    replica : int
        Which copy of the events (0 for the first; every replica is independent).

    Returns
    -------
    numpy.ndarray
        float32 array of shape (n, size).
    """
    spawn_key = (replica,) if replica else ()

    def draw(generator: np.random.Generator) -> np.ndarray:
        return generator.standard_normal((BLOCK, size), dtype=np.float32)

    return _per_event(draw, seed, stream, entry, (size,), np.float32, spawn_key)


def event_uniform(seed: int, stream: int, entry: np.ndarray, *, replica: int = 0) -> np.ndarray:
    """Uniform numbers in [0, 1), one per event, that decide its acceptance.

    Fixed by (seed, stream, entry, replica) like `event_normal`, from a stream of their
    own: the decision does not change the event's noise.

    Returns
    -------
    numpy.ndarray
        float64 array of shape (n,).
    """

    def draw(generator: np.random.Generator) -> np.ndarray:
        return generator.random(BLOCK)

    return _per_event(draw, seed, stream, entry, (), np.float64, (replica, _ACCEPTANCE))


def _per_event(
    draw: Callable[[np.random.Generator], np.ndarray],
    seed: int,
    stream: int,
    entry: np.ndarray,
    shape: tuple[int, ...],
    dtype: type,
    spawn_key: tuple[int, ...],
) -> np.ndarray:
    """Rows of per-block draws for the given entries (see the module docstring)."""
    entry = np.asarray(entry, dtype=np.int64)
    out = np.empty((len(entry), *shape), dtype=dtype)
    if len(entry) == 0:
        return out
    blocks = entry // BLOCK
    order = np.argsort(blocks, kind="stable")
    unique, starts = np.unique(blocks[order], return_index=True)
    bounds = np.append(starts, len(order))
    for block, lo, hi in zip(unique, bounds[:-1], bounds[1:], strict=True):
        rows = order[lo:hi]
        sequence = np.random.SeedSequence(
            [seed, stream % 2**64, int(block)], spawn_key=spawn_key
        )
        draws = draw(np.random.Generator(np.random.Philox(sequence)))
        out[rows] = draws[entry[rows] - block * BLOCK]
    return out
