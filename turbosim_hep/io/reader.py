"""Read ROOT files into the fixed Z and X arrays of `turbosim_hep.layout`.

Two formats are understood, recognised by their tree: Delphes 3 output (tree
``Delphes``, split TClonesArray branches such as ``Jet.PT`` with ``Jet_size``) and the
project's own files (tree ``Events``, NanoAOD naming, see `turbosim_hep.io.formats`).
Files are streamed with `uproot.TTree.iterate` in chunks of bounded memory and only the
branches needed are read. The reference selection is applied on the way and counted as
a cut-flow.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import awkward as ak
import numpy as np
import uproot

from turbosim_hep import layout
from turbosim_hep.errors import InputError, read_head
from turbosim_hep.io import formats
from turbosim_hep.kinematics import p4_from_ptetaphim

#: Default chunk size of the streaming readers (uproot memory-size string or entries).
DEFAULT_STEP_SIZE = "100 MB"

Format = Literal["delphes", "turbosim"]


@functools.cache
def _decompression_executor() -> ThreadPoolExecutor:
    """Threads that decompress baskets in parallel (the codecs release the GIL)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="turbosim-io")


@dataclass
class EventBatch:
    """A chunk of selected events as fixed arrays.

    Attributes
    ----------
    entry : numpy.ndarray
        int64 entry number of each event in the tree it was read from.
    z : numpy.ndarray or None
        float32 (n, 24) parton-level four-momenta, or None when not requested.
    x : numpy.ndarray or None
        float32 (n, 24) detector-level four-momenta, or None when not requested.
    """

    entry: np.ndarray
    z: np.ndarray | None = None
    x: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.entry)

    @classmethod
    def concatenate(cls, batches: list[EventBatch]) -> EventBatch:
        """Join batches in order into one."""

        def join(name: str) -> np.ndarray | None:
            parts = [getattr(b, name) for b in batches]
            if not parts or parts[0] is None:
                return None
            return np.concatenate(parts)

        entry = join("entry")
        return cls(
            entry=entry if entry is not None else np.zeros(0, np.int64),
            z=join("z"),
            x=join("x"),
        )


@dataclass
class Cutflow:
    """Ordered counts of events passing each cut, accumulated over chunks."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int) -> None:
        """Add ``n`` events passing cut ``name`` (cuts keep their first-seen order)."""
        self.counts[name] = self.counts.get(name, 0) + int(n)

    @property
    def selected(self) -> int:
        """Events passing the last cut."""
        return next(reversed(self.counts.values()), 0)

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain ordered dict."""
        return dict(self.counts)


class EventFile:
    """A ROOT file of events in one of the formats turbosim-hep reads.

    Opening checks that the file exists, is ROOT, and holds a known tree; what it holds
    (detector objects, partons) is told by `has_detector` and `has_partons`.

    Parameters
    ----------
    path : str or os.PathLike
        The ROOT file.

    Raises
    ------
    InputError
        If the file is missing, not a ROOT file, truncated, or holds no known tree.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if read_head(self.path, "ROOT file") != b"root":
            raise InputError(self.path, "not a ROOT file")
        try:
            self._file = uproot.open(self.path)
        except Exception as err:  # uproot raises ValueError, OSError, struct errors, ...
            raise InputError(self.path, "truncated or corrupt ROOT file") from err
        self.format, self.tree = self._find_tree()
        self._keys = set(self.tree.keys(full_paths=False, filter_name=_leaf_names(self.format)))

    def _find_tree(self) -> tuple[Format, uproot.TTree]:
        for name, fmt in ((formats.DELPHES_TREE, "delphes"), (formats.EVENTS_TREE, "turbosim")):
            if name in self._file:
                try:
                    obj = self._file[name]
                except Exception as err:
                    raise InputError(self.path, f"tree '{name}' is unreadable ({_reason(err)})") from err
                if isinstance(obj, uproot.TTree):
                    return fmt, obj
        raise InputError(
            self.path,
            f"no '{formats.DELPHES_TREE}' or '{formats.EVENTS_TREE}' tree "
            f"(found: {', '.join(sorted(self._file.keys(cycle=False))) or 'nothing'})",
        )

    @property
    def num_entries(self) -> int:
        """Number of entries in the tree."""
        return self.tree.num_entries

    @property
    def detector_branches(self) -> tuple[str, ...]:
        """Branches the selection and the X space need; optional ones only where present."""
        if self.format == "delphes":
            return formats.DELPHES.detector
        required = tuple(formats.own_detector_branches(required=True))
        optional = tuple(b for b in formats.own_detector_branches(required=False) if b in self._keys)
        return required + optional

    @property
    def parton_branches(self) -> tuple[str, ...]:
        """Branches the Z space needs."""
        if self.format == "delphes":
            return formats.DELPHES.partons
        return tuple(formats.own_parton_branches())

    @property
    def has_detector(self) -> bool:
        """Whether the file holds the reconstructed objects the X space needs."""
        return not self._missing(self.detector_branches)

    @property
    def has_partons(self) -> bool:
        """Whether the file holds a generator record the Z space can come from."""
        return not self._missing(self.parton_branches)

    def _missing(self, branches: tuple[str, ...]) -> list[str]:
        return [b for b in branches if b not in self._keys]

    def require(self, *, detector: bool, partons: bool) -> None:
        """Raise `InputError` naming the missing branches if the file lacks what is asked."""
        missing = []
        if detector:
            missing += self._missing(self.detector_branches)
        if partons:
            missing += self._missing(self.parton_branches)
        if missing:
            shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
            raise InputError(self.path, f"tree '{self.tree.name}' lacks branches {shown}")

    def iterate(
        self,
        *,
        detector: bool = True,
        partons: bool = True,
        cutflow: Cutflow | None = None,
        step_size: int | str = DEFAULT_STEP_SIZE,
        entry_start: int | None = None,
        entry_stop: int | None = None,
    ) -> Iterator[EventBatch]:
        """Stream the selected events as `EventBatch` chunks.

        Parameters
        ----------
        detector : bool
            Apply the reference selection and fill ``x``.
        partons : bool
            Require a complete hard-process parton record and fill ``z``.
        cutflow : Cutflow, optional
            Accumulates the events passing each cut (``all`` first).
        step_size : int or str
            Chunk size, in entries or as a memory size such as ``"100 MB"``.
        entry_start, entry_stop : int, optional
            Range of entries to read.

        Yields
        ------
        EventBatch
            Selected events of one chunk (possibly empty).
        """
        if not (detector or partons):
            raise ValueError("ask for the detector objects, the partons, or both")
        self.require(detector=detector, partons=partons)
        branches = (self.detector_branches if detector else ()) + (
            self.parton_branches if partons else ()
        )
        cutflow = cutflow if cutflow is not None else Cutflow()
        chunks = self.tree.iterate(
            filter_name=list(branches),
            step_size=step_size,
            entry_start=entry_start,
            entry_stop=entry_stop,
            report=True,
            library="ak",
            decompression_executor=_decompression_executor(),
        )
        while True:
            try:
                arrays, report = next(chunks)
            except StopIteration:
                return
            except Exception as err:  # corrupt baskets, truncated files
                raise InputError(
                    self.path, f"cannot read tree '{self.tree.name}' ({_reason(err)})"
                ) from err
            yield self._select(arrays, report.tree_entry_start, detector, partons, cutflow)

    def read(self, **kwargs) -> tuple[EventBatch, Cutflow]:
        """Read all selected events at once; keyword arguments as for `iterate`."""
        cutflow = kwargs.pop("cutflow", None) or Cutflow()
        batches = list(self.iterate(cutflow=cutflow, **kwargs))
        return EventBatch.concatenate(batches), cutflow

    def _select(
        self, arrays: ak.Array, start: int, detector: bool, partons: bool, cutflow: Cutflow
    ) -> EventBatch:
        return select_events(
            arrays, self.format, start=start, detector=detector, partons=partons, cutflow=cutflow
        )


def select_events(
    arrays: ak.Array,
    fmt: Format,
    *,
    start: int = 0,
    detector: bool = True,
    partons: bool = True,
    cutflow: Cutflow | None = None,
) -> EventBatch:
    """Apply the reference selection to one chunk of branches and build X and Z.

    This is the one place where files become the fixed arrays: `EventFile.iterate` calls
    it on the chunks uproot reads, `turbosim_hep.processor` on records built from coffea
    NanoEvents collections, so both give the same events and the same numbers.

    Parameters
    ----------
    arrays : awkward.Array
        Record array whose fields are the branch names of the format (for example
        ``Jet.PT`` for Delphes, ``Jet_pt`` and ``nJet`` for the own format).
    fmt : {"delphes", "turbosim"}
        Which naming ``arrays`` follows.
    start : int
        Entry number of the first row (fills `EventBatch.entry`).
    detector, partons : bool
        As for `EventFile.iterate`.
    cutflow : Cutflow, optional
        Accumulates the events passing each cut.

    Returns
    -------
    EventBatch
        The selected events of the chunk.
    """
    cutflow = cutflow if cutflow is not None else Cutflow()
    n = len(arrays)
    mask = np.ones(n, dtype=bool)
    cutflow.add("all", n)
    if detector:
        objects = _DETECTOR_READERS[fmt](arrays)
        for name, cut_mask in layout.selection_masks(objects.counts).items():
            cutflow.add(name, np.count_nonzero(cut_mask))
        mask = cut_mask
    if partons:
        z_all, complete = _PARTON_READERS[fmt](arrays)
        mask = mask & complete
        cutflow.add(layout.PARTON_CUT, np.count_nonzero(mask))
    entry = start + np.flatnonzero(mask).astype(np.int64)
    batch = EventBatch(entry=entry)
    if detector:
        batch.x = objects.x_space(mask)
    if partons:
        batch.z = z_all[mask]
    return batch


def read_events(path: str | os.PathLike, **kwargs) -> tuple[EventBatch, Cutflow]:
    """Read the selected events of a file; see `EventFile.iterate` for the keywords."""
    return EventFile(path).read(**kwargs)


# --- detector objects ----------------------------------------------------------------


@dataclass
class _DetectorObjects:
    """Jagged detector objects of one chunk and their multiplicities."""

    counts: layout.ObjectCounts
    electron: dict[str, ak.Array]  # jagged pt, eta, phi
    jet: dict[str, ak.Array]
    met_pt: np.ndarray
    met_phi: np.ndarray

    def x_space(self, mask: np.ndarray) -> np.ndarray:
        """(n, 24) float32 X array of the masked events (which have 1 electron, 4 jets)."""
        rows = np.flatnonzero(mask)
        x = np.empty((len(rows), layout.N_OBJECTS, layout.N_COMPONENTS), dtype=np.float32)
        electron = [_take_regular(self.electron[f], rows, 1)[:, 0] for f in ("pt", "eta", "phi")]
        x[:, 0] = p4_from_ptetaphim(*electron)
        met_pt = self.met_pt[rows].astype(np.float32)
        met_phi = self.met_phi[rows].astype(np.float32)
        x[:, 1, 0] = met_pt * np.cos(met_phi)
        x[:, 1, 1] = met_pt * np.sin(met_phi)
        x[:, 1, 2] = 0.0
        x[:, 1, 3] = met_pt
        pt, eta, phi = (_take_regular(self.jet[f], rows, layout.N_JETS) for f in ("pt", "eta", "phi"))
        order = np.argsort(-pt, axis=1, kind="stable")  # pT order, whatever the file had
        pt, eta, phi = (np.take_along_axis(a, order, axis=1) for a in (pt, eta, phi))
        x[:, 2:] = p4_from_ptetaphim(pt, eta, phi)
        return x.reshape(len(rows), layout.N_FEATURES)


def _take_regular(jagged: ak.Array, rows: np.ndarray, width: int) -> np.ndarray:
    """float32 (len(rows), width) values of events ``rows``, which hold ``width`` objects each."""
    counts = ak.to_numpy(ak.num(jagged, axis=1))
    starts = np.cumsum(counts) - counts
    flat = ak.to_numpy(ak.flatten(jagged)).astype(np.float32, copy=False)
    return flat[starts[rows, None] + np.arange(width)]


def _leading_charge(charge: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.fill_none(ak.firsts(charge), 0)).astype(np.int32)


def _delphes_detector(arrays: ak.Array) -> _DetectorObjects:
    b = formats.DELPHES
    counts = layout.ObjectCounts(
        n_electrons=ak.to_numpy(arrays[b.electron_size]),
        electron_charge=_leading_charge(arrays[b.electron_charge]),
        n_muons=ak.to_numpy(arrays[b.muon_size]),
        n_photons=ak.to_numpy(arrays[b.photon_size]),
        n_jets=ak.to_numpy(arrays[b.jet_size]),
    )
    electron = {"pt": arrays[b.electron_pt], "eta": arrays[b.electron_eta], "phi": arrays[b.electron_phi]}
    jet = {"pt": arrays[b.jet_pt], "eta": arrays[b.jet_eta], "phi": arrays[b.jet_phi]}
    met_pt = ak.to_numpy(ak.fill_none(ak.firsts(arrays[b.met]), 0.0))
    met_phi = ak.to_numpy(ak.fill_none(ak.firsts(arrays[b.met_phi]), 0.0))
    return _DetectorObjects(counts, electron, jet, met_pt, met_phi)


def _own_detector(arrays: ak.Array) -> _DetectorObjects:
    def col(collection: str, name: str) -> ak.Array:
        return arrays[formats.branch(collection, name)]

    def count(collection: str) -> np.ndarray:
        name = formats.counter(collection)
        if name in arrays.fields:
            return ak.to_numpy(arrays[name])
        return np.zeros(len(arrays), dtype=np.int32)

    counts = layout.ObjectCounts(
        n_electrons=count(formats.ELECTRON),
        electron_charge=_leading_charge(col(formats.ELECTRON, "charge")),
        n_muons=count(formats.MUON),
        n_photons=count(formats.PHOTON),
        n_jets=count(formats.JET),
    )
    electron = {f: col(formats.ELECTRON, f) for f in ("pt", "eta", "phi")}
    jet = {f: col(formats.JET, f) for f in ("pt", "eta", "phi")}
    met_pt = ak.to_numpy(col(formats.MET, "pt"))
    met_phi = ak.to_numpy(col(formats.MET, "phi"))
    return _DetectorObjects(counts, electron, jet, met_pt, met_phi)


# --- partons ---------------------------------------------------------------------------


def _delphes_partons(arrays: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Z array and completeness mask from a Delphes ``Particle`` record.

    For each of the six partons the first copy in the record is taken that is either the
    daughter of the expected resonance (b of t, e- of W-, ...) or, where the record has
    no such daughter, an outgoing hard-process particle (status 23, or 3 Pythia 6 style).
    """
    b = formats.DELPHES
    pid = arrays[b.particle_pid]
    mother = arrays[b.particle_mother]
    valid_mother = (mother >= 0) & (mother < ak.num(pid))
    mother_pid = pid[ak.where(valid_mother, mother, 0)]
    mother_pid = ak.where(valid_mother, mother_pid, 0)
    status = arrays[b.particle_status]
    hard = status == layout.HARD_PROCESS_STATUS[0]
    for code in layout.HARD_PROCESS_STATUS[1:]:
        hard = hard | (status == code)
    momenta = [arrays[name] for name in (b.particle_px, b.particle_py, b.particle_pz, b.particle_e)]

    n = len(arrays)
    offsets = np.zeros(n, dtype=np.int64)
    np.cumsum(ak.to_numpy(ak.num(pid))[:-1], out=offsets[1:])
    flat_momenta = [ak.to_numpy(ak.flatten(component)) for component in momenta]
    z = np.zeros((n, layout.N_OBJECTS, layout.N_COMPONENTS), dtype=np.float32)
    complete = np.ones(n, dtype=bool)
    for k, parton in enumerate(layout.PARTONS):
        is_pid = pid == parton.pdg_id
        from_parent = is_pid & (mother_pid == parton.parent_pdg_id)
        from_hard = is_pid & hard
        has_parent = ak.to_numpy(ak.any(from_parent, axis=1))
        found = has_parent | ak.to_numpy(ak.any(from_hard, axis=1))
        first = np.where(
            has_parent,
            ak.to_numpy(ak.fill_none(ak.argmax(from_parent, axis=1), 0)),
            ak.to_numpy(ak.fill_none(ak.argmax(from_hard, axis=1), 0)),
        )
        complete &= found
        rows = np.flatnonzero(found)
        for c, values in enumerate(flat_momenta):
            z[rows, k, c] = values[offsets[rows] + first[rows]]
    return z.reshape(n, layout.N_FEATURES), complete


def _own_partons(arrays: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Z array and completeness mask from the ``Parton`` collection (six partons, Z order)."""
    p = formats.PARTON
    n = len(arrays)
    complete = ak.to_numpy(arrays[formats.counter(p)]) == layout.N_OBJECTS
    z = np.zeros((n, layout.N_OBJECTS, layout.N_COMPONENTS), dtype=np.float32)
    rows = np.flatnonzero(complete)
    if len(rows):

        def take(name: str) -> np.ndarray:
            return _take_regular(arrays[formats.branch(p, name)], rows, layout.N_OBJECTS)

        z[rows] = p4_from_ptetaphim(take("pt"), take("eta"), take("phi"), take("mass"))
        pdg_ok = np.all(take("pdgId").astype(np.int32) == layout.PARTON_PDG_IDS, axis=1)
        complete[rows[~pdg_ok]] = False
    return z.reshape(n, layout.N_FEATURES), complete


_DETECTOR_READERS = {"delphes": _delphes_detector, "turbosim": _own_detector}
_PARTON_READERS = {"delphes": _delphes_partons, "turbosim": _own_partons}


def _leaf_names(fmt: Format) -> list[str]:
    if fmt == "delphes":
        return list(formats.DELPHES.detector + formats.DELPHES.partons)
    return formats.own_detector_branches(required=True) + formats.own_detector_branches(required=False) + (
        formats.own_parton_branches()
    )


def _reason(err: Exception) -> str:
    """First line of an exception message, without library-specific detail."""
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__
