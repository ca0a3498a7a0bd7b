"""Read Les Houches Event files (plain or gzipped, as MadGraph writes them) into Z arrays.

Parsing is `pylhe`'s; this module streams its events in chunks, turns each chunk into
flat NumPy arrays (one pass over the parsed particles, about ten times faster than
`pylhe.to_awkward`) and matches the outgoing particles to the six partons of the Z
space with whole-array operations. An event is kept when its outgoing (status 1) particles
are exactly e- nu_e-bar b b-bar u d-bar, one each; the others are counted in the
cut-flow and skipped. The entry number of an event is its position in the file.

A file that ends in the middle of an event (or of the gzip stream) raises `InputError`
instead of silently giving the events before the cut, as pylhe alone would.
"""

from __future__ import annotations

import gzip
import itertools
import os
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator

import numpy as np
import pylhe

from turbosim_hep import layout
from turbosim_hep.errors import InputError, read_head
from turbosim_hep.io.reader import Cutflow, EventBatch

#: Events per chunk of `LHEFile.iterate`.
DEFAULT_STEP_SIZE = 20_000
#: LHE status code of outgoing final-state particles.
FINAL_STATE_STATUS = 1

_GZIP_MAGIC = b"\x1f\x8b"


def is_lhe(path: str | os.PathLike) -> bool:
    """Whether a file looks like an LHE file (XML text, possibly gzipped) by its first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(2)
        if head == _GZIP_MAGIC:
            try:
                with gzip.open(path, "rb") as unzipped:
                    head = unzipped.read(512)
            except (OSError, EOFError):
                return True  # a broken gzip file; reading it will say what is wrong
        else:
            head += handle.read(510)
    return b"<LesHouchesEvents" in head or head.lstrip().startswith(b"<?xml")


class LHEFile:
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

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        read_head(self.path, "LHE file")
        self._open()  # fail early on a bad header

    def _open(self) -> Iterator[pylhe.LHEEvent]:
        try:
            with _parse_errors_raised():
                lhe = pylhe.LHEFile.fromfile(self.path, with_attributes=False)
        except (ValueError, RuntimeWarning, ET.ParseError, OSError, EOFError, zlib.error) as err:
            raise InputError(self.path, f"not a readable LHE file ({_reason(err)})") from err
        return iter(lhe.events)

    def iterate(
        self, *, cutflow: Cutflow | None = None, step_size: int = DEFAULT_STEP_SIZE
    ) -> Iterator[EventBatch]:
        """Stream the events with the e- nu_e-bar b b-bar u d-bar final state.

        Parameters
        ----------
        cutflow : Cutflow, optional
            Accumulates ``all`` and `turbosim_hep.layout.PARTON_CUT` (final state found).
        step_size : int
            Events per chunk.

        Yields
        ------
        EventBatch
            ``entry`` (position in the file) and ``z`` (float32, (n, 24)) of the kept
            events of one chunk.

        Raises
        ------
        InputError
            If the file is cut off or malformed.
        """
        cutflow = cutflow if cutflow is not None else Cutflow()
        events = self._open()
        start = 0
        while True:
            try:
                with _parse_errors_raised():
                    chunk = list(itertools.islice(events, step_size))
            except (RuntimeWarning, ValueError, IndexError, OSError, EOFError, zlib.error) as err:
                problem = f"LHE file is cut off or malformed ({_reason(err)})"
                raise InputError(self.path, problem) from err
            if not chunk:
                return
            batch = final_state_partons(*_particle_arrays(chunk), start=start)
            cutflow.add("all", len(chunk))
            cutflow.add(layout.PARTON_CUT, len(batch))
            yield batch
            start += len(chunk)


def final_state_partons(
    counts: np.ndarray, pdg_id: np.ndarray, status: np.ndarray, p4: np.ndarray, *, start: int = 0
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

    Returns
    -------
    EventBatch
        The events whose outgoing particles are exactly the six partons of
        `turbosim_hep.layout.PARTONS`, one each, with their four-momenta in Z order.
    """
    n = len(counts)
    event = np.repeat(np.arange(n), counts)
    outgoing = status == FINAL_STATE_STATUS
    complete = np.bincount(event[outgoing], minlength=n) == layout.N_OBJECTS
    z = np.zeros((n, layout.N_OBJECTS, layout.N_COMPONENTS), dtype=np.float32)
    for k, wanted in enumerate(layout.PARTON_PDG_IDS):
        match = outgoing & (pdg_id == wanted)
        complete &= np.bincount(event[match], minlength=n) == 1
        z[event[match], k] = p4[match]
    rows = np.flatnonzero(complete)
    z = z[rows].reshape(len(rows), layout.N_FEATURES)
    return EventBatch(entry=start + rows.astype(np.int64), z=z)


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


class _parse_errors_raised(warnings.catch_warnings):
    """Turn pylhe's "Parse Error" RuntimeWarning (a cut-off file) into an exception."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("error", message="Parse Error", category=RuntimeWarning)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    reason = text[0] if text else type(err).__name__
    return reason.removeprefix("Parse Error: ")[:160]
