"""Reproducible per-event random numbers, independent of how the work is cut.

The noise Turbo-Sim injects into an event is a pure function of (seed, stream, entry),
where ``stream`` identifies the input file. Entries are grouped in fixed blocks of
`BLOCK` consecutive entry numbers; each block has its own NumPy Philox generator keyed
by (seed, stream, block). A chunk of any size draws the blocks it touches and keeps the
rows of its entries, so results do not depend on chunk sizes, processes or Dask tasks.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Entries per random block.
BLOCK = 1024


def stream_id(name: str) -> int:
    """A stable 64-bit stream id for a name (for example an input file's base name)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def event_normal(seed: int, stream: int, entry: np.ndarray, size: int) -> np.ndarray:
    """Standard normal numbers, ``size`` per event, fixed by (seed, stream, entry).

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

    Returns
    -------
    numpy.ndarray
        float32 array of shape (n, size).
    """
    entry = np.asarray(entry, dtype=np.int64)
    out = np.empty((len(entry), size), dtype=np.float32)
    if len(entry) == 0:
        return out
    blocks = entry // BLOCK
    order = np.argsort(blocks, kind="stable")
    unique, starts = np.unique(blocks[order], return_index=True)
    bounds = np.append(starts, len(order))
    for block, lo, hi in zip(unique, bounds[:-1], bounds[1:]):
        rows = order[lo:hi]
        sequence = np.random.SeedSequence([seed, stream % 2**64, int(block)])
        generator = np.random.Generator(np.random.Philox(sequence))
        draws = generator.standard_normal((BLOCK, size), dtype=np.float32)
        out[rows] = draws[entry[rows] - block * BLOCK]
    return out
