"""HDF5 files in the layout of the reference data set (datasets ``FDL`` = Z, ``ROL`` = X)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import h5py
import numpy as np

from turbosim_hep.errors import InputError
from turbosim_hep.io.events import Cutflow, EventBatch, EventSource, cut_names
from turbosim_hep.layout import (
    DEFAULT_LAYOUT,
    LAYOUT_VERSION,
    N_FEATURES,
    Layout,
    resolve_layout,
)
from turbosim_hep.outputs import AtomicOutput

Z_DATASET = "FDL"
X_DATASET = "ROL"
ENTRY_DATASET = "event"
#: File attribute that names the layout of the events.
LAYOUT_ATTRIBUTE = "layout"
#: Events per chunk of `HDF5File.iterate` when no number is asked for.
HDF5_CHUNK_EVENTS = 1_000_000


def write_reference_h5(
    path: str | os.PathLike,
    batch: EventBatch,
    *,
    force: bool = False,
    layout: Layout = DEFAULT_LAYOUT,
) -> None:
    """Write selected events as the reference HDF5 layout.

    The file is built in memory (`reference_h5_image`) and written with plain system
    calls, whose errors (a full disk) become `turbosim_hep.errors.WriteError`: HDF5
    writing a file itself cannot report a failed write reliably (a full disk crashed
    the interpreter when h5py later closed the file).

    Parameters
    ----------
    path : str or os.PathLike
        Output file (written to a temporary file, then renamed).
    batch : EventBatch
        Events with both ``z`` and ``x``.
    force : bool
        Overwrite an existing file.
    layout : turbosim_hep.layout.Layout
        The layout of the events: its column names, and its name in the attributes.
    """
    image = reference_h5_image(batch, layout)
    with AtomicOutput(path, force=force) as output:
        output.write_bytes(image)


def reference_h5_image(batch: EventBatch, layout: Layout = DEFAULT_LAYOUT) -> bytes:
    """The bytes of the reference-layout HDF5 file of ``batch`` (see `write_reference_h5`)."""
    if batch.z is None or batch.x is None:
        raise ValueError("the reference layout needs both the Z and the X arrays")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        for name, data, columns in (
            (Z_DATASET, batch.z, layout.z_columns),
            (X_DATASET, batch.x, layout.x_columns),
        ):
            dataset = h5.create_dataset(name, data=data.astype(np.float32), compression="gzip")
            dataset.attrs["columns"] = list(columns)
        h5.create_dataset(ENTRY_DATASET, data=batch.entry.astype(np.int64))
        h5.attrs["layout_version"] = LAYOUT_VERSION
        h5.attrs[LAYOUT_ATTRIBUTE] = layout.name
    return buffer.getvalue()


class HDF5File(EventSource):
    """A reference-layout HDF5 file (as written by `write_reference_h5`), read in chunks.

    The file holds selected events only (the export writes those, as did the reference
    data set), so every cut of the cut-flow passes all of them.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.
    layout : turbosim_hep.layout.Layout or str
        The layout of its events (default ``ejets``; a file that names another one in
        its attributes is refused).

    Raises
    ------
    InputError
        If the file is not HDF5, lacks ``FDL``/``ROL`` datasets of shape (N, 24), or
        holds the events of another layout.
    """

    format = "hdf5"

    def __init__(self, path: str | os.PathLike, layout: Layout | str = DEFAULT_LAYOUT):
        self.path = os.fspath(path)
        self.layout = resolve_layout(layout)
        if not os.path.exists(self.path):
            raise InputError(self.path, "no such file")
        with self._open() as h5:
            stored = h5.attrs.get(LAYOUT_ATTRIBUTE)
            if stored is not None and str(stored) != self.layout.name:
                raise InputError(
                    self.path,
                    f"holds {stored} events, not {self.layout.name} ones (give --layout {stored})",
                )
            for name in (Z_DATASET, X_DATASET):
                if name not in h5:
                    raise InputError(self.path, f"no '{name}' dataset")
                shape = h5[name].shape
                if len(shape) != 2 or shape[1] != N_FEATURES:
                    raise InputError(
                        self.path, f"dataset '{name}' has shape {shape}, not (N, 24)"
                    )
            self._num_entries = h5[Z_DATASET].shape[0]

    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r")
        except OSError as err:
            raise InputError(self.path, "not a readable HDF5 file") from err

    @property
    def num_entries(self) -> int:
        """Number of events in the file."""
        return self._num_entries

    @property
    def has_detector(self) -> bool:
        """True: the ``ROL`` dataset."""
        return True

    @property
    def has_partons(self) -> bool:
        """True: the ``FDL`` dataset."""
        return True

    def require(self, *, detector: bool, partons: bool) -> None:
        """Nothing to check: the file holds both spaces (checked on opening)."""

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
        """Stream the events as `EventBatch` chunks (see `EventSource.iterate`).

        ``chunk_events`` defaults to `HDF5_CHUNK_EVENTS`. The file holds selected events
        of the reference channel in the reference layout: with ``labels`` every event is
        labelled as passing, and the charge-conjugate channel alone holds no event.
        """
        chunk_events = self.chunk_size(chunk_events, HDF5_CHUNK_EVENTS)
        detector, partons = detector or labels, partons or labels
        reference = self.layout.reference_channel
        channels = self.layout.channels_of(channel or reference)
        cutflow = cutflow if cutflow is not None else Cutflow()
        steps = cut_names(detector=detector, partons=partons, layout=self.layout)
        cutflow.declare(steps)
        with self._open() as h5:
            entries = h5[ENTRY_DATASET] if ENTRY_DATASET in h5 else None
            for start in range(0, self.num_entries, chunk_events):
                stop = min(start + chunk_events, self.num_entries)
                entry = np.arange(start, stop) if entries is None else entries[start:stop]
                batch = EventBatch(entry=entry.astype(np.int64))
                if partons:
                    batch.z = h5[Z_DATASET][start:stop].astype(np.float32, copy=False)
                if detector and not labels:
                    batch.x = h5[X_DATASET][start:stop].astype(np.float32, copy=False)
                if labels:
                    batch.passed = np.ones(len(batch), dtype=bool)
                if reference not in channels:
                    batch = batch.take(slice(0, 0))
                if channels != (reference,):
                    batch.conjugate = np.zeros(len(batch), dtype=bool)
                cutflow.add(steps[0], stop - start)
                for step in steps[1:]:
                    cutflow.add(step, len(batch))
                yield batch


def read_reference_h5(path: str | os.PathLike) -> EventBatch:
    """Read a reference-layout HDF5 file (as written by `write_reference_h5`) at once.

    Raises
    ------
    InputError
        If the file is not HDF5 or lacks ``FDL``/``ROL`` datasets of shape (N, 24).
    """
    return HDF5File(path).read()[0]
