"""Read Les Houches Event files (plain or gzipped, as MadGraph writes them) into Z arrays.

Parsing is `pylhe`'s; this module streams its events in chunks, turns each chunk into
flat NumPy arrays (one pass over the parsed particles) and matches the outgoing
particles to the six partons of the Z space with whole-array operations. An event is
kept when its outgoing (status 1) particles are exactly e- nu_e-bar b b-bar u d-bar, one
each, or (asked for) the charge-conjugate e+ nu_e b-bar b u-bar d, which is CP-mirrored
into the reference layout and flagged; the others are counted in the cut-flow and
skipped. The entry number of an event is its position in the file.

A file that ends in the middle of an event (or of the gzip stream) raises `InputError`
instead of silently giving the events before the cut, as pylhe alone would.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import os
import re
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from typing import IO

import numpy as np
import pylhe

from turbosim_hep.errors import InputError, read_head
from turbosim_hep.io.events import ALL_CUT, Cutflow, EventBatch, EventSource, cut_names
from turbosim_hep.io.sources import GZIP_MAGIC, HEAD_BYTES, looks_like_lhe
from turbosim_hep.layout import (
    DEFAULT_LAYOUT,
    N_COMPONENTS,
    PARTON_CUT,
    Layout,
    cp_mirror,
    resolve_layout,
)

#: Events per chunk of `LHEFile.iterate` when no number is asked for.
LHE_CHUNK_EVENTS = 20_000
#: LHE status code of outgoing final-state particles.
FINAL_STATE_STATUS = 1

_EVENT_TAG = re.compile(rb"<event[\s>]")


def is_lhe(path: str | os.PathLike) -> bool:
    """Whether a file looks like an LHE file (XML text, possibly gzipped) by its first bytes."""
    with open(path, "rb") as handle:
        return looks_like_lhe(handle.read(HEAD_BYTES))


class LHEFile(EventSource):
    """An LHE file whose events are read as Z arrays.

    Parameters
    ----------
    path : str or os.PathLike
        ``.lhe`` or ``.lhe.gz`` file.

    Raises
    ------
    InputError
        If the file is missing, or its header or ``<init>`` block cannot be read.
    """

    format = "lhe"

    def __init__(self, path: str | os.PathLike, layout: Layout | str = DEFAULT_LAYOUT):
        self.path = os.fspath(path)
        self.layout = resolve_layout(layout)
        read_head(self.path, "LHE file")
        self._open()  # fail early on a bad header

    @functools.cached_property
    def num_entries(self) -> int:
        """Number of events in the file (counted by one pass over its text)."""
        count, tail = 0, b""
        with _open_bytes(self.path) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                text = tail + block
                count += len(_EVENT_TAG.findall(text))
                tail = text[-6:]  # shorter than a tag: a tag cut by the block is counted once
        return count

    @property
    def has_detector(self) -> bool:
        """False: an LHE file holds no detector-level objects."""
        return False

    @property
    def has_partons(self) -> bool:
        """True: the outgoing particles of every event."""
        return True

    def require(self, *, detector: bool, partons: bool) -> None:
        """Raise `InputError` if detector-level objects are asked for."""
        if detector:
            raise InputError(self.path, "an LHE file holds partons only, no detector-level events")

    def _open(self) -> Iterator[pylhe.LHEEvent]:
        try:
            with _parse_errors_raised():
                lhe = pylhe.LHEFile.fromfile(self.path, with_attributes=False)
        except (ValueError, RuntimeWarning, ET.ParseError, OSError, EOFError, zlib.error) as err:
            raise InputError(self.path, f"not a readable LHE file ({_reason(err)})") from err
        return iter(lhe.events)

    def iterate(
        self,
        *,
        detector: bool = False,
        partons: bool = True,
        cutflow: Cutflow | None = None,
        chunk_events: int | None = None,
        channel: str | None = None,
        labels: bool = False,
    ) -> Iterator[EventBatch]:
        """Stream the events with the six partons of a channel (see `EventSource.iterate`).

        An LHE file holds partons only: ``detector`` and ``labels`` must be False, and the
        cut-flow has ``all`` and `turbosim_hep.layout.PARTON_CUT`. ``chunk_events``
        defaults to `LHE_CHUNK_EVENTS`; ``entry`` is the position in the file.

        Raises
        ------
        InputError
            If detector objects are asked for, or the file is cut off or malformed.
        """
        self.require(detector=detector or labels, partons=partons)
        channels = self.layout.channels_of(channel or self.layout.reference_channel)
        chunk_events = self.chunk_size(chunk_events, LHE_CHUNK_EVENTS)
        cutflow = cutflow if cutflow is not None else Cutflow()
        cutflow.declare(cut_names(detector=False, partons=True))
        events = self._open()
        start = 0
        while True:
            try:
                with _parse_errors_raised():
                    chunk = list(itertools.islice(events, chunk_events))
            except (RuntimeWarning, ValueError, IndexError, OSError, EOFError, zlib.error) as err:
                problem = f"LHE file is cut off or malformed ({_reason(err)})"
                raise InputError(self.path, problem) from err
            if not chunk:
                return
            batch = final_state_partons(
                *_particle_arrays(chunk), start=start, channels=channels, layout=self.layout
            )
            cutflow.add(ALL_CUT, len(chunk))
            cutflow.add(PARTON_CUT, len(batch))
            yield batch
            start += len(chunk)


def final_state_partons(
    counts: np.ndarray,
    pdg_id: np.ndarray,
    status: np.ndarray,
    p4: np.ndarray,
    *,
    start: int = 0,
    channels: tuple[str, ...] | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> EventBatch:
    """Match the outgoing particles of LHE events to the six partons of the Z space.

    Parameters
    ----------
    counts : numpy.ndarray
        Particles per event, shape (n,).
    pdg_id, status : numpy.ndarray
        PDG id and LHE status of every particle, events one after the other.
    p4 : numpy.ndarray
        (px, py, pz, E) of every particle, shape (sum(counts), 4).
    start : int
        Entry number of the first event.
    channels : tuple of str, optional
        The channels of ``layout`` whose final state is looked for (default: the
        reference channel).
    layout : turbosim_hep.layout.Layout
        The final state.

    Returns
    -------
    EventBatch
        The events whose outgoing particles are exactly the six partons of one of the
        channels, one each, with their four-momenta in Z order; those of the
        charge-conjugate channel CP-mirrored and flagged in ``conjugate`` (set whenever
        ``channels`` is not the reference channel alone).
    """
    reference = layout.reference_channel
    channels = channels or (reference,)
    n = len(counts)
    event = np.repeat(np.arange(n), counts)
    outgoing = status == FINAL_STATE_STATUS
    n_partons = len(layout.partons)
    six = np.bincount(event[outgoing], minlength=n) == n_partons
    z = np.zeros((n, n_partons, N_COMPONENTS), dtype=np.float32)
    found = np.zeros(n, dtype=bool)
    conjugate = np.zeros(n, dtype=bool)
    for channel in channels:
        complete = six.copy()
        matches = []
        for wanted in layout.parton_pdg_ids(channel):
            match = outgoing & (pdg_id == wanted)
            complete &= np.bincount(event[match], minlength=n) == 1
            matches.append(match)
        for k, match in enumerate(matches):
            mine = match & complete[event]
            z[event[mine], k] = p4[mine]
        found |= complete
        if channel != reference:
            conjugate |= complete
    rows = np.flatnonzero(found)
    z = z[rows].reshape(len(rows), n_partons * N_COMPONENTS)
    batch = EventBatch(entry=start + rows.astype(np.int64), z=z)
    if channels != (reference,):
        batch.conjugate = conjugate[rows]
        batch.z[batch.conjugate] = cp_mirror(batch.z[batch.conjugate])
    return batch


def _particle_arrays(
    events: list[pylhe.LHEEvent],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts, PDG ids, statuses and four-momenta of the particles of parsed events."""
    counts = np.fromiter((len(e.particles) for e in events), dtype=np.int64, count=len(events))
    table = np.array(
        [(p.id, p.status, p.px, p.py, p.pz, p.e) for e in events for p in e.particles],
        dtype=np.float64,
    ).reshape(-1, 6)
    return counts, table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2:]


def _open_bytes(path: str) -> IO[bytes]:
    """The bytes of a file, decompressed if it is gzipped."""
    with open(path, "rb") as handle:
        gzipped = handle.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


class _parse_errors_raised(warnings.catch_warnings):
    """Turn pylhe's "Parse Error" RuntimeWarning (a cut-off file) into an exception."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("error", message="Parse Error", category=RuntimeWarning)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    reason = text[0] if text else type(err).__name__
    return reason.removeprefix("Parse Error: ")[:160]
