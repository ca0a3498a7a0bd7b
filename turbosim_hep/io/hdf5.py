"""HDF5 files in the layout of the reference data set (datasets ``FDL`` = Z, ``ROL`` = X)."""

from __future__ import annotations

import os

import h5py
import numpy as np

from turbosim_hep import layout
from turbosim_hep.errors import InputError
from turbosim_hep.io.reader import EventBatch
from turbosim_hep.outputs import AtomicOutput

Z_DATASET = "FDL"
X_DATASET = "ROL"
ENTRY_DATASET = "event"


def write_reference_h5(path: str | os.PathLike, batch: EventBatch, *, force: bool = False) -> None:
    """Write selected events as the reference HDF5 layout.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (written to a temporary file, then renamed).
    batch : EventBatch
        Events with both ``z`` and ``x``.
    force : bool
        Overwrite an existing file.
    """
    if batch.z is None or batch.x is None:
        raise ValueError("the reference layout needs both the Z and the X arrays")
    with AtomicOutput(path, force=force) as output, h5py.File(output.tmp_path, "w") as h5:
        for name, data, columns in (
            (Z_DATASET, batch.z, layout.Z_COLUMNS),
            (X_DATASET, batch.x, layout.X_COLUMNS),
        ):
            dataset = h5.create_dataset(name, data=data.astype(np.float32), compression="gzip")
            dataset.attrs["columns"] = list(columns)
        h5.create_dataset(ENTRY_DATASET, data=batch.entry.astype(np.int64))
        h5.attrs["layout_version"] = layout.LAYOUT_VERSION


def read_reference_h5(path: str | os.PathLike) -> EventBatch:
    """Read a reference-layout HDF5 file (as written by `write_reference_h5`).

    Raises
    ------
    InputError
        If the file is not HDF5 or lacks ``FDL``/``ROL`` datasets of shape (N, 24).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(path, "no such file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, "not a readable HDF5 file") from err
    with h5:
        arrays = {}
        for name in (Z_DATASET, X_DATASET):
            if name not in h5:
                raise InputError(path, f"no '{name}' dataset")
            data = h5[name][...]
            if data.ndim != 2 or data.shape[1] != layout.N_FEATURES:
                raise InputError(path, f"dataset '{name}' has shape {data.shape}, not (N, 24)")
            arrays[name] = data.astype(np.float32, copy=False)
        n = len(arrays[Z_DATASET])
        entry = h5[ENTRY_DATASET][...] if ENTRY_DATASET in h5 else np.arange(n)
    return EventBatch(entry=entry.astype(np.int64), z=arrays[Z_DATASET], x=arrays[X_DATASET])
