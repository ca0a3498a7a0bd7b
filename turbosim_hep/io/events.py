"""What every reader hands over: `EventBatch` chunks, a `Cutflow`, one `EventSource` protocol.

The ROOT reader (`turbosim_hep.io.reader.EventFile`), the LHE reader
(`turbosim_hep.io.lhe.LHEFile`) and the HDF5 reader (`turbosim_hep.io.hdf5.HDF5File`)
are all `EventSource`s: callers open a file with `turbosim_hep.io.open_events` and
iterate it the same way whatever its format.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields

import numpy as np

from turbosim_hep import arguments
from turbosim_hep.layout import DEFAULT_LAYOUT, PARTON_CUT, Layout

#: The first step of every cut-flow: the events read.
ALL_CUT = "all"


@dataclass
class EventBatch:
    """A chunk of events as fixed arrays.

    Events of the charge-conjugate channel (`turbosim_hep.layout.CHANNELS`) are held in
    the layout of the reference channel, CP-mirrored (`turbosim_hep.layout.cp_mirror`),
    and flagged in ``conjugate``; writers mirror them back.

    Attributes
    ----------
    entry : numpy.ndarray
        int64 entry number of each event in the file it was read from.
    z : numpy.ndarray or None
        float32 (n, 24) parton-level four-momenta, or None when not requested.
    x : numpy.ndarray or None
        float32 (n, 24) detector-level four-momenta, or None when not requested.
    conjugate : numpy.ndarray or None
        bool (n,): the event is of the charge-conjugate channel (None: none is).
    weight : numpy.ndarray or None
        float32 (n,) events each one stands for, where the file stores it (the
        ``genWeight`` of a thinned sample); None: 1 each.
    passed : numpy.ndarray or None
        bool (n,): whether the event passes the reference selection, in a labelled read
        (``labels=True``), which keeps failing events too.
    """

    entry: np.ndarray
    z: np.ndarray | None = None
    x: np.ndarray | None = None
    conjugate: np.ndarray | None = None
    weight: np.ndarray | None = None
    passed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.entry)

    @property
    def weights(self) -> np.ndarray:
        """float32 (n,) weights, 1 where the file stores none."""
        if self.weight is None:
            return np.ones(len(self), dtype=np.float32)
        return self.weight

    @property
    def conjugates(self) -> np.ndarray:
        """bool (n,) conjugate flags, False where none is set."""
        if self.conjugate is None:
            return np.zeros(len(self), dtype=bool)
        return self.conjugate

    def take(self, rows: np.ndarray) -> EventBatch:
        """The events ``rows`` (a boolean mask or indices) of every array."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        return EventBatch(**{k: None if v is None else v[rows] for k, v in arrays.items()})

    @classmethod
    def concatenate(cls, batches: list[EventBatch]) -> EventBatch:
        """Join batches in order into one (an array missing from some batch is filled)."""
        if not batches:
            return cls(entry=np.zeros(0, np.int64))
        fill = {"conjugate": "conjugates", "weight": "weights"}
        joined = {}
        for f in fields(cls):
            parts = [getattr(b, f.name) for b in batches]
            if all(p is None for p in parts):
                joined[f.name] = None
            elif any(p is None for p in parts) and f.name in fill:
                joined[f.name] = np.concatenate([getattr(b, fill[f.name]) for b in batches])
            else:
                joined[f.name] = np.concatenate(parts)
        return cls(**joined)


@dataclass
class Cutflow:
    """Ordered counts of events passing each cut, accumulated over chunks."""

    counts: dict[str, int] = field(default_factory=dict)

    def declare(self, names: Iterable[str]) -> None:
        """Put the cuts ``names`` in this order with no event yet (those not counted so far)."""
        for name in names:
            self.counts.setdefault(name, 0)

    def add(self, name: str, n: int) -> None:
        """Add ``n`` events passing cut ``name`` (cuts keep their first-seen order)."""
        self.counts[name] = self.counts.get(name, 0) + int(n)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    @property
    def total(self) -> int:
        """Events read (the ``all`` step)."""
        return self.counts.get(ALL_CUT, 0)

    @property
    def selected(self) -> int:
        """Events passing the last cut."""
        return next(reversed(self.counts.values()), 0)

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain ordered dict."""
        return dict(self.counts)


def cut_names(
    *, detector: bool, partons: bool, layout: Layout = DEFAULT_LAYOUT
) -> list[str]:
    """The cut-flow steps of a read, in order.

    ``all``; with ``detector`` the cuts of the layout's selection
    (`turbosim_hep.layout.Layout.selection`); with ``partons`` the complete parton record
    (`turbosim_hep.layout.PARTON_CUT`).
    """
    names = [ALL_CUT]
    if detector:
        names += list(layout.selection)
    if partons:
        names.append(PARTON_CUT)
    return names


class EventSource(abc.ABC):
    """A file of events, read in chunks of selected events whatever its format.

    Attributes
    ----------
    path : str
        The file.
    format : str
        ``delphes``, ``turbosim`` (the project's ROOT files), ``lhe`` or ``hdf5``.
    layout : turbosim_hep.layout.Layout
        The final state whose events are read (its selection, partons and objects).
    """

    path: str
    format: str
    layout: Layout = DEFAULT_LAYOUT

    @property
    @abc.abstractmethod
    def num_entries(self) -> int:
        """Number of events in the file, selected or not."""

    @property
    @abc.abstractmethod
    def has_detector(self) -> bool:
        """Whether the file holds the reconstructed objects the X space needs."""

    @property
    @abc.abstractmethod
    def has_partons(self) -> bool:
        """Whether the file holds the partons the Z space needs."""

    @abc.abstractmethod
    def require(self, *, detector: bool, partons: bool) -> None:
        """Raise `turbosim_hep.errors.InputError` if the file lacks what is asked."""

    @abc.abstractmethod
    def iterate(
        self,
        *,
        detector: bool = True,
        partons: bool = True,
        cutflow: Cutflow | None = None,
        chunk_events: int | None = None,
        channel: str | None = None,
        labels: bool = False,
    ) -> Iterator[EventBatch]:
        """Stream the selected events as `EventBatch` chunks.

        Parameters
        ----------
        detector : bool
            Apply the reference selection and fill ``x``.
        partons : bool
            Require the six partons of the Z space and fill ``z``.
        cutflow : Cutflow, optional
            Accumulates the events passing each cut (the steps of `cut_names`).
        chunk_events : int, optional
            Events read per chunk (default: the reader's own chunking).
        channel : str, optional
            Which channel's events (``layout.channel_choices``, default the reference
            one): the reference one, its charge conjugate, or both (``conjugate`` tells
            them apart).
        labels : bool
            Keep every event with the six partons, selected or not, and say in
            ``passed`` whether it passes the selection (the examples of the acceptance;
            needs the detector objects, ``detector`` and ``partons`` are implied); ``x``
            is not filled.

        Yields
        ------
        EventBatch
            Selected events of one chunk (possibly empty).

        Raises
        ------
        InputError
            If the file lacks what is asked, or cannot be read.
        """

    @staticmethod
    def chunk_size(chunk_events: int | None, default: int | None) -> int | None:
        """``chunk_events`` checked to be a positive integer, or ``default`` for None.

        Raises
        ------
        ArgumentError
            For anything but a positive integer or None.
        """
        if chunk_events is None:
            return default
        return arguments.POSITIVE_INT.check(chunk_events, "chunk_events")

    def read(self, **kwargs) -> tuple[EventBatch, Cutflow]:
        """Read all selected events at once; keyword arguments as for `iterate`."""
        cutflow = kwargs.pop("cutflow", None) or Cutflow()
        batches = list(self.iterate(cutflow=cutflow, **kwargs))
        return EventBatch.concatenate(batches), cutflow
