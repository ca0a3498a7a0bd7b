"""A layout's selection and the Z and X arrays of one chunk of branches.

This is the one place where the branches of a file become the fixed arrays of a
`turbosim_hep.layout.Layout`: `turbosim_hep.io.reader.EventFile` calls `select_events` on
the chunks uproot reads, `turbosim_hep.io.nanoevents` on records built from coffea
NanoEvents collections, so both give the same events and the same numbers.
`object_counts` is the one way to the multiplicities the selection looks at, for files
as for the generator's detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import awkward as ak
import numpy as np

from turbosim_hep.io import formats
from turbosim_hep.io.events import ALL_CUT, Cutflow, EventBatch
from turbosim_hep.kinematics import p4_from_ptetaphim
from turbosim_hep.layout import (
    DEFAULT_LAYOUT,
    HARD_PROCESS_STATUS,
    N_COMPONENTS,
    N_FEATURES,
    N_JETS,
    N_OBJECTS,
    PARTON_CUT,
    Layout,
    ObjectCounts,
    cp_mirror,
)

#: The ROOT formats: Delphes 3 output and the project's own files.
Format = Literal["delphes", "turbosim"]


def select_events(
    arrays: ak.Array,
    fmt: Format,
    *,
    start: int = 0,
    detector: bool = True,
    partons: bool = True,
    cutflow: Cutflow | None = None,
    channel: str | None = None,
    labels: bool = False,
    layout: Layout = DEFAULT_LAYOUT,
) -> EventBatch:
    """Apply a layout's selection to one chunk of branches and build its X and Z.

    Parameters
    ----------
    arrays : awkward.Array
        Record array whose fields are the branch names of the format (for example
        ``Jet.PT`` for Delphes, ``Jet_pt`` and ``nJet`` for the own format), with the
        per-event weight (`formats.weight_branch`) where the file has one.
    fmt : {"delphes", "turbosim"}
        Which naming ``arrays`` follows.
    start : int
        Entry number of the first row (fills `EventBatch.entry`).
    detector, partons : bool
        As for `turbosim_hep.io.events.EventSource.iterate`.
    cutflow : Cutflow, optional
        Accumulates the events passing each cut (the steps of
        `turbosim_hep.io.events.cut_names`). With ``channel="both"`` a cut counts the
        events passing it in either channel.
    channel : str, optional
        Which channel's events (one of ``layout.channel_choices``; default its
        reference channel); those of the charge-conjugate channel are CP-mirrored into
        the reference channel's slots and flagged in `EventBatch.conjugate`.
    labels : bool
        Keep every event with a complete parton record and label it (`EventBatch.passed`)
        instead of dropping those the selection rejects; reads the detector objects
        and the partons, fills no ``x``.
    layout : turbosim_hep.layout.Layout
        The final state: its selection, its lepton, its partons.

    Returns
    -------
    EventBatch
        The selected (or, with ``labels``, the labelled) events of the chunk.
    """
    reference = layout.reference_channel
    channels = layout.channels_of(channel or reference)
    detector, partons = detector or labels, partons or labels
    cutflow = cutflow if cutflow is not None else Cutflow()
    n = len(arrays)
    cutflow.add(ALL_CUT, n)
    # per channel: events passing its selection, and events holding its partons (all
    # True where not read); an event belongs to a channel where both hold
    passing = {c: np.ones(n, dtype=bool) for c in channels}
    found = {c: np.ones(n, dtype=bool) for c in channels}
    if detector:
        objects = _DETECTOR_READERS[fmt](arrays, layout.lepton.kind)
        masks = {c: layout.selection_masks(objects.counts, c) for c in channels}
        for name in layout.selection:
            either = np.logical_or.reduce([masks[c][name] for c in channels])
            cutflow.add(name, np.count_nonzero(either))
        passing = {c: masks[c][layout.selected_cut] for c in channels}
    if partons:
        z, found = _PARTON_READERS[fmt](arrays, layout, channels)
    selected = {c: passing[c] & found[c] for c in channels}
    keep = _any(selected)
    if partons:
        cutflow.add(PARTON_CUT, np.count_nonzero(keep))
    # the channel an event is of: its partons' where they are read, else its selection's
    member = found if partons else passing
    if labels:
        keep = _any(found)
    rows = np.flatnonzero(keep)
    batch = EventBatch(entry=start + rows.astype(np.int64))
    if channels != (reference,):
        conjugate = np.zeros(n, dtype=bool)
        for c in channels:
            if c != reference:
                conjugate |= member[c]
        batch.conjugate = conjugate[rows]
    weight = formats.weight_branch(arrays.fields)
    if weight is not None:
        batch.weight = ak.to_numpy(arrays[weight])[rows].astype(np.float32)
    if labels:
        batch.passed = _any(selected)[rows]
    elif detector:
        batch.x = _mirrored(objects.x_space(keep), batch.conjugate)
    if partons:
        batch.z = _mirrored(z[rows], batch.conjugate)
    return batch


def _any(masks: dict[str, np.ndarray]) -> np.ndarray:
    """Events in any of the per-channel masks."""
    return np.logical_or.reduce(list(masks.values()))


def _mirrored(p4: np.ndarray, conjugate: np.ndarray | None) -> np.ndarray:
    """``p4`` with the rows of charge-conjugate events CP-mirrored."""
    if conjugate is not None and conjugate.any():
        p4 = p4.copy()
        p4[conjugate] = cp_mirror(p4[conjugate])
    return p4


# --- detector objects ----------------------------------------------------------------


@dataclass
class _DetectorObjects:
    """Jagged detector objects of one chunk and their multiplicities."""

    counts: ObjectCounts
    lepton: dict[str, ak.Array]  # jagged pt, eta, phi of the layout's lepton kind
    jet: dict[str, ak.Array]
    met_pt: np.ndarray
    met_phi: np.ndarray

    def x_space(self, mask: np.ndarray) -> np.ndarray:
        """(n, 24) float32 X array of the masked events (which have 1 lepton, 4 jets)."""
        rows = np.flatnonzero(mask)
        x = np.empty((len(rows), N_OBJECTS, N_COMPONENTS), dtype=np.float32)
        lepton = [_take_regular(self.lepton[f], rows, 1)[:, 0] for f in ("pt", "eta", "phi")]
        x[:, 0] = p4_from_ptetaphim(*lepton)
        met_pt = self.met_pt[rows].astype(np.float32)
        met_phi = self.met_phi[rows].astype(np.float32)
        x[:, 1, 0] = met_pt * np.cos(met_phi)
        x[:, 1, 1] = met_pt * np.sin(met_phi)
        x[:, 1, 2] = 0.0
        x[:, 1, 3] = met_pt
        pt, eta, phi = (
            _take_regular(self.jet[f], rows, N_JETS) for f in ("pt", "eta", "phi")
        )
        order = np.argsort(-pt, axis=1, kind="stable")  # pT order, whatever the file had
        pt, eta, phi = (np.take_along_axis(a, order, axis=1) for a in (pt, eta, phi))
        x[:, 2:] = p4_from_ptetaphim(pt, eta, phi)
        return x.reshape(len(rows), N_FEATURES)


def _take_regular(jagged: ak.Array, rows: np.ndarray, width: int) -> np.ndarray:
    """float32 (len(rows), width) values of events ``rows``, which hold ``width`` objects each."""
    counts = ak.to_numpy(ak.num(jagged, axis=1))
    starts = np.cumsum(counts) - counts
    flat = ak.to_numpy(ak.flatten(jagged)).astype(np.float32, copy=False)
    return flat[starts[rows, None] + np.arange(width)]


def object_counts(
    electron_charge: ak.Array,
    n_muons: np.ndarray | ak.Array,
    n_photons: np.ndarray | ak.Array,
    n_jets: np.ndarray | ak.Array,
    muon_charge: ak.Array | None = None,
) -> ObjectCounts:
    """The multiplicities and the leading lepton charges a selection looks at.

    Parameters
    ----------
    electron_charge : awkward.Array
        Jagged charges of each event's electrons, leading electron first (gives the
        number of electrons too).
    n_muons, n_photons, n_jets : array-like
        Objects per event.
    muon_charge : awkward.Array, optional
        Jagged charges of each event's muons, leading muon first, where a layout with a
        muon needs them.

    Returns
    -------
    turbosim_hep.ObjectCounts
        NumPy arrays; a leading charge is 0 where an event has no lepton of that kind.
    """
    return ObjectCounts(
        n_electrons=ak.to_numpy(ak.num(electron_charge, axis=1)),
        electron_charge=_leading(electron_charge),
        n_muons=_numpy(n_muons),
        n_photons=_numpy(n_photons),
        n_jets=_numpy(n_jets),
        muon_charge=None if muon_charge is None else _leading(muon_charge),
    )


def _leading(charge: ak.Array) -> np.ndarray:
    """The first of each event's jagged charges, 0 where it has none."""
    return ak.to_numpy(ak.fill_none(ak.firsts(charge), 0)).astype(np.int32)


def _numpy(values: np.ndarray | ak.Array) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else ak.to_numpy(values)


def _counts(
    lepton: str, charge: ak.Array, others: dict[str, np.ndarray | ak.Array],
    n_photons: np.ndarray | ak.Array, n_jets: np.ndarray | ak.Array,
) -> ObjectCounts:
    """The counts from the jagged charges of the layout's lepton and the other's count."""
    if lepton == "electron":
        return object_counts(charge, others["muon"], n_photons, n_jets)
    return ObjectCounts(
        n_electrons=_numpy(others["electron"]),
        electron_charge=None,
        n_muons=ak.to_numpy(ak.num(charge, axis=1)),
        n_photons=_numpy(n_photons),
        n_jets=_numpy(n_jets),
        muon_charge=_leading(charge),
    )


def _delphes_detector(arrays: ak.Array, lepton: str) -> _DetectorObjects:
    b = formats.DELPHES
    others = {k: arrays[b.size(k)] for k in formats.LEPTON_COLLECTIONS if k != lepton}
    counts = _counts(
        lepton, arrays[b.lepton(lepton, "charge")], others, arrays[b.photon_size],
        arrays[b.jet_size],
    )
    leptons = {f: arrays[b.lepton(lepton, f)] for f in ("pt", "eta", "phi")}
    jet = {"pt": arrays[b.jet_pt], "eta": arrays[b.jet_eta], "phi": arrays[b.jet_phi]}
    met_pt = ak.to_numpy(ak.fill_none(ak.firsts(arrays[b.met]), 0.0))
    met_phi = ak.to_numpy(ak.fill_none(ak.firsts(arrays[b.met_phi]), 0.0))
    return _DetectorObjects(counts, leptons, jet, met_pt, met_phi)


def _own_detector(arrays: ak.Array, lepton: str) -> _DetectorObjects:
    collection = formats.LEPTON_COLLECTIONS[lepton]

    def col(collection: str, name: str) -> ak.Array:
        return arrays[formats.branch(collection, name)]

    def count(collection: str) -> np.ndarray:
        name = formats.counter(collection)
        if name in arrays.fields:
            return ak.to_numpy(arrays[name])
        return np.zeros(len(arrays), dtype=np.int32)

    others = {k: count(c) for k, c in formats.LEPTON_COLLECTIONS.items() if k != lepton}
    counts = _counts(
        lepton, col(collection, "charge"), others, count(formats.PHOTON), count(formats.JET)
    )
    leptons = {f: col(collection, f) for f in ("pt", "eta", "phi")}
    jet = {f: col(formats.JET, f) for f in ("pt", "eta", "phi")}
    met_pt = ak.to_numpy(col(formats.MET, "pt"))
    met_phi = ak.to_numpy(col(formats.MET, "phi"))
    return _DetectorObjects(counts, leptons, jet, met_pt, met_phi)


# --- partons ---------------------------------------------------------------------------


def _delphes_partons(
    arrays: ak.Array, layout: Layout, channels: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Z array and, per channel, completeness mask from a Delphes ``Particle`` record.

    For each of the six partons of a channel the first copy in the record is taken that
    is either the daughter of the expected resonance (b of t, e- of W-, ...) or, where the
    record has no such daughter, an outgoing hard-process particle (status 23, or 3
    Pythia 6 style). An event's row holds the partons of the channel it is complete in
    (the last of ``channels``, if several); four-momenta are as stored (not mirrored).
    """
    b = formats.DELPHES
    pid = arrays[b.particle_pid]
    mother = arrays[b.particle_mother]
    valid_mother = (mother >= 0) & (mother < ak.num(pid))
    mother_pid = pid[ak.where(valid_mother, mother, 0)]
    mother_pid = ak.where(valid_mother, mother_pid, 0)
    status = arrays[b.particle_status]
    hard = status == HARD_PROCESS_STATUS[0]
    for code in HARD_PROCESS_STATUS[1:]:
        hard = hard | (status == code)
    momenta = [arrays[name] for name in (b.particle_px, b.particle_py, b.particle_pz, b.particle_e)]

    n = len(arrays)
    offsets = np.zeros(n, dtype=np.int64)
    np.cumsum(ak.to_numpy(ak.num(pid))[:-1], out=offsets[1:])
    flat_momenta = [ak.to_numpy(ak.flatten(component)) for component in momenta]
    z = np.zeros((n, N_OBJECTS, N_COMPONENTS), dtype=np.float32)
    complete = {}
    for channel in channels:
        z_channel = np.zeros_like(z)
        complete[channel] = np.ones(n, dtype=bool)
        parents = layout.parton_parent_pdg_ids(channel)
        for k, pdg_id in enumerate(layout.parton_pdg_ids(channel)):
            is_pid = pid == pdg_id
            from_parent = is_pid & (mother_pid == parents[k])
            from_hard = is_pid & hard
            has_parent = ak.to_numpy(ak.any(from_parent, axis=1))
            found = has_parent | ak.to_numpy(ak.any(from_hard, axis=1))
            first = np.where(
                has_parent,
                ak.to_numpy(ak.fill_none(ak.argmax(from_parent, axis=1), 0)),
                ak.to_numpy(ak.fill_none(ak.argmax(from_hard, axis=1), 0)),
            )
            complete[channel] &= found
            rows = np.flatnonzero(found)
            for c, values in enumerate(flat_momenta):
                z_channel[rows, k, c] = values[offsets[rows] + first[rows]]
        z[complete[channel]] = z_channel[complete[channel]]
    return z.reshape(n, N_FEATURES), complete


def _own_partons(
    arrays: ak.Array, layout: Layout, channels: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Z array and, per channel, completeness mask from the ``Parton`` collection.

    The collection holds six partons in Z order, with the particle ids of their channel:
    the four-momenta are computed once, the ids say which channel (if any) an event is
    complete in. Four-momenta are as stored (not mirrored).
    """
    p = formats.PARTON
    n = len(arrays)
    six = ak.to_numpy(arrays[formats.counter(p)]) == N_OBJECTS
    z = np.zeros((n, N_OBJECTS, N_COMPONENTS), dtype=np.float32)
    complete = {channel: six.copy() for channel in channels}
    rows = np.flatnonzero(six)
    if len(rows):

        def take(name: str) -> np.ndarray:
            return _take_regular(arrays[formats.branch(p, name)], rows, N_OBJECTS)

        z[rows] = p4_from_ptetaphim(take("pt"), take("eta"), take("phi"), take("mass"))
        ids = take("pdgId").astype(np.int32)
        for channel in channels:
            pdg_ok = np.all(ids == layout.parton_pdg_ids(channel), axis=1)
            complete[channel][rows[~pdg_ok]] = False
    return z.reshape(n, N_FEATURES), complete


_DETECTOR_READERS = {"delphes": _delphes_detector, "turbosim": _own_detector}
_PARTON_READERS = {"delphes": _delphes_partons, "turbosim": _own_partons}
