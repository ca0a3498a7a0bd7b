"""Open any event file turbosim-hep reads, by what its first bytes say it is.

`open_events` reads the first bytes of a file once, recognises a ROOT file (Delphes or
the project's own), an HDF5 export or an LHE file (plain or gzipped), and returns its
reader: an `turbosim_hep.io.events.EventSource`, iterated the same way whatever the
format. The readers load on first use (LHE needs pylhe, HDF5 needs h5py).
"""

from __future__ import annotations

import importlib
import os
import zlib
from typing import Literal

from turbosim_hep.errors import InputError, read_head
from turbosim_hep.io.events import EventSource
from turbosim_hep.layout import DEFAULT_LAYOUT, Layout

Kind = Literal["root", "hdf5", "lhe"]

#: Bytes read to recognise a file.
HEAD_BYTES = 512
#: The first bytes of a ROOT file.
ROOT_MAGIC = b"root"
#: The signature an HDF5 file starts with.
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: The first bytes of a gzip stream.
GZIP_MAGIC = b"\x1f\x8b"

#: The reader class of each kind of file, as (module, class).
_READERS: dict[Kind, tuple[str, str]] = {
    "root": ("turbosim_hep.io.reader", "EventFile"),
    "hdf5": ("turbosim_hep.io.hdf5", "HDF5File"),
    "lhe": ("turbosim_hep.io.lhe", "LHEFile"),
}


def looks_like_lhe(head: bytes) -> bool:
    """Whether the first bytes of a file are those of an LHE file (XML text, maybe gzipped).

    Parameters
    ----------
    head : bytes
        The first `HEAD_BYTES` bytes of the file (fewer if it is shorter).
    """
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            return True  # a broken gzip file; reading it will say what is wrong
    return b"<LesHouchesEvents" in head or head.lstrip().startswith(b"<?xml")


def sniff_format(path: str | os.PathLike) -> Kind:
    """``root``, ``hdf5`` or ``lhe``, from the first bytes of a file.

    Raises
    ------
    InputError
        If the file is missing, a directory, or none of these.
    """
    head = read_head(path, "event file", size=HEAD_BYTES)
    if head.startswith(ROOT_MAGIC):
        return "root"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if looks_like_lhe(head):
        return "lhe"
    raise InputError(path, "neither a ROOT, an HDF5 nor an LHE file")


def open_events(
    path: str | os.PathLike, layout: Layout | str = DEFAULT_LAYOUT
) -> EventSource:
    """The reader of an event file, whatever its format.

    Parameters
    ----------
    path : str or os.PathLike
        A ROOT file (Delphes 3 or the project's own), an HDF5 export, or an LHE file
        (plain or gzipped).
    layout : turbosim_hep.layout.Layout or str
        The final state to read (a `Layout`, a built-in name or a layout file).

    Returns
    -------
    EventSource
        `turbosim_hep.io.reader.EventFile`, `turbosim_hep.io.hdf5.HDF5File` or
        `turbosim_hep.io.lhe.LHEFile`; all are iterated with
        ``iterate(detector=..., partons=..., cutflow=..., chunk_events=...)``.

    Raises
    ------
    InputError
        If the file is missing, of none of these formats, or unreadable.

    Examples
    --------
    >>> source = open_events("run.lhe.gz")  # doctest: +SKIP
    >>> source.require(detector=False, partons=True)  # doctest: +SKIP
    >>> for batch in source.iterate(detector=False, partons=True):  # doctest: +SKIP
    ...     batch.entry, batch.z
    """
    module, name = _READERS[sniff_format(path)]
    return getattr(importlib.import_module(module), name)(path, layout)
