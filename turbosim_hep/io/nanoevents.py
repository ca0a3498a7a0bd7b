"""The reader's selection and X/Z arrays, on coffea NanoEvents instead of uproot chunks.

A coffea processor receives NanoEvents (built with `turbosim_hep.io.schemas`). To give
exactly the events and numbers `turbosim_hep.io.reader` gives for the same file, the
collections are turned back into a record of the branches the reader reads (``Jet_pt``,
``nJet`` or ``Jet.PT``, ``Jet_size``, ...) and handed to
`turbosim_hep.io.selection.select_events`: one implementation of the selection and of the
X and Z layouts, two ways in.

`parton_z` and `collection_z` give the Z arrays the coffea plugin simulates from: of
NanoEvents (the format known from `event_format`), or of a bare parton collection
(the project's ``Parton``, Delphes' ``Particle``, pylhe's ``particles``).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from turbosim_hep.io import formats
from turbosim_hep.io.events import Cutflow, EventBatch
from turbosim_hep.io.selection import Format, select_events
from turbosim_hep.kinematics import p4_from_ptetaphim
from turbosim_hep.layout import DEFAULT_LAYOUT, N_COMPONENTS, Layout

#: Collections each format needs for the detector objects (besides the layout's lepton)
#: and for the partons.
_DETECTOR_COLLECTIONS = {
    "delphes": ("Electron", "Jet", "MissingET", "Muon", "Photon"),
    "turbosim": (formats.JET, formats.MET),
}
_PARTON_COLLECTIONS = {"delphes": ("Particle",), "turbosim": (formats.PARTON,)}
#: Field under which `Delphes3Schema` keeps the stored energy of generator particles.
_DELPHES_PARTICLE_ENERGY = "Energy"


def event_format(events: ak.Array) -> Format:
    """``"delphes"`` or ``"turbosim"``: which schema the NanoEvents come from."""
    return "delphes" if "MissingET" in events.fields else "turbosim"


def has_detector(events: ak.Array, layout: Layout = DEFAULT_LAYOUT) -> bool:
    """Whether the events hold the detector objects of the layout's X space."""
    lepton = formats.LEPTON_COLLECTIONS[layout.lepton.kind]
    needed = (lepton, *_DETECTOR_COLLECTIONS[event_format(events)])
    return all(c in events.fields for c in needed)


def has_partons(events: ak.Array) -> bool:
    """Whether the events hold a generator record the Z space can come from."""
    return all(c in events.fields for c in _PARTON_COLLECTIONS[event_format(events)])


def select(
    events: ak.Array,
    *,
    detector: bool,
    partons: bool,
    cutflow: Cutflow | None = None,
    channel: str | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> tuple[EventBatch, np.ndarray]:
    """A layout's selection and its X and Z arrays of a chunk of NanoEvents.

    Parameters
    ----------
    events : awkward.Array
        NanoEvents of a Delphes file (`Delphes3Schema`) or an own file (`TurboSimSchema`).
    detector, partons : bool
        As for `turbosim_hep.io.events.EventSource.iterate`.
    cutflow : Cutflow, optional
        Accumulates the events passing each cut.
    channel : str, optional
        Which channel's events (see `turbosim_hep.io.selection.select_events`).
    layout : turbosim_hep.layout.Layout
        The final state (default ``ejets``).

    Returns
    -------
    batch : EventBatch
        Selected events; ``entry`` counts from the chunk's ``entrystart`` metadata.
    rows : numpy.ndarray
        Positions of the selected events within ``events``.
    """
    start = int((events.metadata or {}).get("entrystart", 0) or 0)
    return _select(
        events, event_format(events), start=start, detector=detector, partons=partons,
        cutflow=cutflow, channel=channel, layout=layout,
    )


def parton_z(
    events: ak.Array, channel: str | None = None, layout: Layout = DEFAULT_LAYOUT
) -> tuple[np.ndarray, EventBatch]:
    """The events of a chunk of NanoEvents that have the six partons, as an `EventBatch`.

    Parameters
    ----------
    events : awkward.Array
        NanoEvents of a Delphes file (``Particle``) or an own file (``Parton``).
    channel : str, optional
        Which channel's partons (conjugate events CP-mirrored and flagged).
    layout : turbosim_hep.layout.Layout
        The final state whose partons are looked for (default ``ejets``).

    Returns
    -------
    rows : numpy.ndarray
        Positions within ``events`` of the events with the six partons of the channel
        (`turbosim_hep.layout.PARTON_CUT`).
    batch : EventBatch
        Their float32 (len(rows), 24) ``z``, ``conjugate`` flags and weights.

    Raises
    ------
    ValueError
        If the events hold no parton collection.
    """
    if not has_partons(events):
        raise ValueError("the events hold no parton collection (Parton or Particle)")
    batch, rows = select(events, detector=False, partons=True, channel=channel, layout=layout)
    return rows, batch


def collection_z(
    partons: ak.Array, channel: str | None = None, layout: Layout = DEFAULT_LAYOUT
) -> tuple[np.ndarray, EventBatch]:
    """The events of a bare parton collection that have the six partons, and their Z array.

    The collection's kind is read from its fields: the project's ``Parton`` collection
    (``pt, eta, phi, mass, pdgId``), Delphes' ``Particle`` record (``PID, Status, M1,
    Px, Py, Pz`` and ``Energy`` as `Delphes3Schema` names it, or ``E``) or the
    ``particles`` of `pylhe.to_awkward` (``id, status, vector``). The matching is the
    reader's and the LHE reader's (`turbosim_hep.io.lhe`), so files and collections give
    the same events.

    Parameters
    ----------
    partons : awkward.Array
        One list of particles per event.
    channel : str, optional
        Which channel's partons (conjugate events CP-mirrored and flagged).
    layout : turbosim_hep.layout.Layout
        The final state whose partons are looked for (default ``ejets``).

    Returns
    -------
    rows : numpy.ndarray
        Positions of the events with the six partons.
    batch : EventBatch
        Their float32 (len(rows), 24) ``z`` and ``conjugate`` flags.

    Raises
    ------
    ValueError
        If the collection is none of these.
    """
    fields = set(partons.fields)
    if {"id", "status", "vector"} <= fields:
        from turbosim_hep.io.lhe import final_state_partons  # pylhe, only when it is used

        momenta = partons.vector
        p4 = np.stack(
            [ak.to_numpy(ak.flatten(momenta[c])) for c in ("px", "py", "pz", "e")], axis=-1
        )
        batch = final_state_partons(
            ak.to_numpy(ak.num(partons, axis=1)), ak.to_numpy(ak.flatten(partons.id)),
            ak.to_numpy(ak.flatten(partons.status)), p4,
            channels=layout.channels_of(channel or layout.reference_channel), layout=layout,
        )
        return batch.entry, batch
    if {"PID", "Status", "M1"} <= fields:
        if _DELPHES_PARTICLE_ENERGY not in fields:
            partons = ak.with_field(partons, partons["E"], _DELPHES_PARTICLE_ENERGY)
        fmt: Format = "delphes"
    elif {"pt", "eta", "phi", "mass", "pdgId"} <= fields:
        fmt = "turbosim"
    else:
        raise ValueError(
            f"unknown parton collection with fields {sorted(fields)}; expected the "
            "project's Parton, Delphes' Particle or pylhe's particles"
        )
    events = ak.zip({_PARTON_COLLECTIONS[fmt][0]: partons}, depth_limit=1)
    batch, rows = _select(
        events, fmt, start=0, detector=False, partons=True, cutflow=None, channel=channel,
        layout=layout,
    )
    return rows, batch


def _select(
    events: ak.Array,
    fmt: Format,
    *,
    start: int,
    detector: bool,
    partons: bool,
    cutflow: Cutflow | None,
    channel: str | None,
    layout: Layout,
) -> tuple[EventBatch, np.ndarray]:
    """`select` of events whose format is known; entries count from ``start``."""
    names = _branches(events, fmt, detector, partons, layout.lepton.kind)
    record = ak.zip({name: _column(events, fmt, name) for name in names}, depth_limit=1)
    batch = select_events(
        record, fmt, start=start, detector=detector, partons=partons, cutflow=cutflow,
        channel=channel, layout=layout,
    )
    return batch, batch.entry - start


def stored_x(
    events: ak.Array, rows: np.ndarray, layout: Layout = DEFAULT_LAYOUT
) -> np.ndarray:
    """(n, 24) X array of selected events as the file stores them.

    Unlike the reader's X (massless objects, jets re-sorted by pT), the objects keep
    their stored masses and order, so that `turbosim_hep.metrics.valid_x_events` can
    tell whether a generated file is physical (time-like objects, jets in pT order).
    """
    fmt = event_format(events)
    selected = events[rows]
    lepton = selected[formats.LEPTON_COLLECTIONS[layout.lepton.kind]][:, 0]
    jets = selected.Jet
    if fmt == "delphes":
        # A singleton in coffea; its pt is MET * cosh(eta), not the MET.
        met_pt, met_phi = selected.MissingET.MET, selected.MissingET.phi
    else:
        met_pt, met_phi = selected.MET.pt, selected.MET.phi

    def values(array: ak.Array, shape: tuple[int, ...]) -> np.ndarray:
        return ak.to_numpy(ak.flatten(array, axis=None)).astype(np.float32).reshape(shape)

    n = len(rows)
    p4 = np.empty((n, len(layout.objects), N_COMPONENTS), dtype=np.float32)
    p4[:, 0] = p4_from_ptetaphim(*(values(lepton[f], (n,)) for f in ("pt", "eta", "phi", "mass")))
    met_pt, met_phi = values(met_pt, (n,)), values(met_phi, (n,))
    p4[:, 1] = np.stack(
        [met_pt * np.cos(met_phi), met_pt * np.sin(met_phi), np.zeros_like(met_pt), met_pt], -1
    )
    shape = (n, layout.n_jets)
    p4[:, 2:] = p4_from_ptetaphim(*(values(jets[f], shape) for f in ("pt", "eta", "phi", "mass")))
    return p4.reshape(n, len(layout.objects) * N_COMPONENTS)


def _branches(
    events: ak.Array, fmt: Format, detector: bool, partons: bool, lepton: str
) -> list[str]:
    names: list[str] = []
    if fmt == "delphes":
        names += list(formats.DELPHES.detector(lepton)) if detector else []
        names += list(formats.DELPHES.partons) if partons else []
        return names
    if detector:
        names += formats.own_detector_branches(required=True, lepton=lepton)
        optional = formats.own_detector_branches(required=False, lepton=lepton)
        names += [b for b in optional if b[1:] in events.fields]
    if partons:
        names += formats.own_parton_branches()
    weight = formats.weight_branch(events.fields)
    return names + ([weight] if weight is not None else [])


def _column(events: ak.Array, fmt: Format, branch: str) -> ak.Array:
    """The array the reader would read for ``branch``, from NanoEvents collections."""
    if fmt == "delphes":
        if branch.endswith("_size"):
            return ak.num(events[branch.removesuffix("_size")], axis=1)
        collection, field = branch.split(".", 1)
        if (collection, field) == ("Particle", "E"):
            field = _DELPHES_PARTICLE_ENERGY
        values = events[collection][field]
        # coffea makes MissingET a singleton; the reader sees the one-element list.
        return ak.unflatten(values, 1) if values.ndim == 1 else values
    if branch.startswith("n") and branch[1:] in events.fields:
        return ak.num(events[branch[1:]], axis=1)
    if branch in formats.WEIGHT_BRANCHES:
        return events[branch]
    collection, field = branch.split("_", 1)
    return events[collection][field]


__all__ = [
    "collection_z", "event_format", "has_detector", "has_partons", "parton_z", "select",
    "stored_x",
]
