"""Counter-based random numbers: one reproducible stream per event.

The noise Turbo-Sim injects into an event is a pure function of (seed, stream, entry),
where ``stream`` identifies the input file. Results therefore do not depend on how the
work is cut into chunks, processes or Dask tasks. The hash is SplitMix64, vectorised
over events with NumPy unsigned integer arithmetic.
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def stream_id(name: str) -> int:
    """A stable 64-bit stream id for a name (for example an input file's base name)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def event_normal(seed: int, stream: int, entry: np.ndarray, size: int) -> np.ndarray:
    """Standard normal numbers, ``size`` per event, fixed by (seed, stream, entry).

    Parameters
    ----------
    seed : int
        User seed.
    stream : int
        Stream id, for example `stream_id` of the input file.
    entry : numpy.ndarray
        Entry numbers of the events (n,).
    size : int
        Numbers per event.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (n, size).
    """
    entry = np.asarray(entry, dtype=np.uint64)
    key = _splitmix64(np.uint64(seed % 2**64) ^ _splitmix64(np.uint64(stream % 2**64)))
    with np.errstate(over="ignore"):
        base = _splitmix64(key ^ _splitmix64(entry))[:, None]
        counters = np.arange(2 * ((size + 1) // 2), dtype=np.uint64)[None, :]
        bits = _splitmix64(base + counters * _GOLDEN)
    # 53-bit uniforms in (0, 1), then Box-Muller on pairs
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    u1, u2 = uniform[:, 0::2], uniform[:, 1::2]
    radius = np.sqrt(-2.0 * np.log(u1))
    normal = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)], axis=1)
    return normal[:, :size].astype(np.float32)
