"""The coffea plugin of turbosim-hep: detector-level collections from partons, on the fly.

`FastSim` turns a parton collection into the lepton (Electron, or Muon for a ``mujets``
model), Jet and MissingET collections a detector-level file would give, with the same
coffea NanoAOD behaviours as `turbosim_hep.io.schemas.TurboSimSchema` (``.pt``, ``.mass``,
``+``, ``.delta_r`` work as on read objects)::

    fastsim = FastSim("model.pt")                     # in the processor's __init__
    sim = fastsim(events)                             # in process(): NanoEvents in
    events = events[sim.mask]                         # the events it could simulate
    events["Electron"], events["Jet"], events["MET"] = sim.Electron, sim.Jet, sim.MissingET
    # a mujets model: sim.Muon (sim.Lepton, under sim.lepton_collection, for either)

`FastSim` holds only the model's path and settings: a processor that carries one
pickles small and never ships weights to the workers. Each worker process loads the
model once (`turbosim_hep.inference.cached_model`) on the first chunk it runs, on CUDA
when it has one (``device="auto"``).

As ``turbosim-hep simulate`` does, `FastSim` simulates both charge-conjugate channels
and applies the model's acceptance (`turbosim_hep.inference.plan_replicas`): by default
an event is kept with the probability that a detector selects it (``sim.mask``), or
with ``acceptance="weight"`` every event is kept with that probability as its weight
(``sim.weight``).

The random numbers of each event are `turbosim_hep.random`'s of (seed, input file
name, entry number), so results do not depend on how the work is cut: iterative,
futures or Dask executors and any chunk size give the same histograms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import awkward as ak
import numpy as np

from turbosim_hep import arguments
from turbosim_hep.device import check_device_name, resolve_device
from turbosim_hep.inference import (
    ACCEPTANCE_MODES,
    BATCH_EVENTS,
    acceptance_probabilities,
    applied_acceptance,
    cached_model,
    plan_replicas,
    run_model,
)
from turbosim_hep.io import EventBatch, formats, nanoevents
from turbosim_hep.io.writer import reco_collections
from turbosim_hep.layout import DEFAULT_LAYOUT, Layout
from turbosim_hep.model.checkpoint import load_model_layout
from turbosim_hep.random import stream_id


@dataclass
class FastSimOutput:
    """Simulated collections of the events `FastSim` could simulate.

    Attributes
    ----------
    mask : numpy.ndarray
        bool, one per input event: True where the event had the partons of a simulated
        channel with finite momenta, was kept by the acceptance (``sample``) and the
        model gave finite outputs.
    Lepton : awkward.Array
        ``n * var * Electron`` or ``n * var * Muon`` (the model's layout's lepton: one
        per event, of its channel's charge), n = mask.sum(); also as ``Electron`` or
        ``Muon``.
    Jet : awkward.Array
        ``n * var * Jet`` (four jets in pT order).
    MissingET : awkward.Array
        ``n * MissingET`` (pt, phi).
    x : numpy.ndarray
        float32 (n, 24): the same events in the X layout, charge-conjugate events
        CP-mirrored (`turbosim_hep.io.events.EventBatch`).
    conjugate : numpy.ndarray
        bool (n,): events of the charge-conjugate channel.
    weight : numpy.ndarray
        float32 (n,): event weights (the acceptance with ``acceptance="weight"``).
    acceptance : numpy.ndarray or None
        (n,) acceptance of each event, where it was applied.
    lepton_collection : str
        The lepton's collection name: ``Electron`` or ``Muon``.
    """

    mask: np.ndarray
    Lepton: ak.Array
    Jet: ak.Array
    MissingET: ak.Array
    x: np.ndarray
    conjugate: np.ndarray
    weight: np.ndarray
    acceptance: np.ndarray | None
    lepton_collection: str = formats.ELECTRON

    def __getattr__(self, name: str) -> ak.Array:
        # sim.Electron of an ejets model, sim.Muon of a mujets one
        if name in formats.LEPTON_COLLECTIONS.values() and name == self.lepton_collection:
            return self.Lepton
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
            + (f" (its lepton is {self.lepton_collection})"
               if name in formats.LEPTON_COLLECTIONS.values() else "")
        )


class FastSim:
    """The decoder of a trained model as a coffea plugin.

    Parameters
    ----------
    model : str or os.PathLike
        Checkpoint of ``turbosim-hep train``; it must be readable where the workers run.
    seed : int
        Seed of the per-event noise.
    device : str
        ``auto`` (CUDA where the worker has it), ``cpu`` or ``cuda``; resolved in each
        worker, not where the processor is built.
    batch_size : int, optional
        Events per forward pass (default: 16384 on CPU, 262144 on CUDA).
    acceptance : {"sample", "weight", "off"}, optional
        How the model's acceptance applies, as for ``turbosim-hep simulate``
        (`turbosim_hep.inference.resolve_acceptance`; default ``sample`` for a model
        with an acceptance, ``off`` for one without).
    channel : str
        Which final states to simulate: the reference channel of the model's layout
        (``ejets``: ``electron``), its charge conjugate, or ``both`` (the default).

    Attributes
    ----------
    layout : turbosim_hep.layout.Layout
        The layout the model was trained on (read from the model file).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        seed: int = 0,
        device: str = "auto",
        batch_size: int | None = None,
        acceptance: str | None = None,
        channel: str = "both",
    ):
        if acceptance is not None:
            arguments.choice(acceptance, ACCEPTANCE_MODES, "acceptance")
        check_device_name(device)
        self.model_path = os.path.abspath(os.fspath(model))
        self.layout: Layout = load_model_layout(self.model_path)
        self.layout.channels_of(channel)
        self.seed = arguments.SEED.check(seed, "seed")
        self.device = str(device)
        self.batch_size = (
            None if batch_size is None else arguments.POSITIVE_INT.check(batch_size, "batch_size")
        )
        self.acceptance = acceptance
        self.channel = channel

    def __repr__(self) -> str:
        return (
            f"FastSim({self.model_path!r}, seed={self.seed}, device={self.device!r}, "
            f"acceptance={self.acceptance!r}, channel={self.channel!r})"
        )

    @property
    def model(self):
        """The model, loaded once per process and fused for inference (never pickled)."""
        return cached_model(self.model_path, self.device)

    def __call__(self, events: ak.Array) -> FastSimOutput:
        """Simulate a chunk of NanoEvents as read (before any event is removed).

        The partons come from ``Parton`` (the project's files) or the generator record
        ``Particle`` (Delphes), as `turbosim_hep.io.nanoevents.parton_z` finds them; the
        stream of random numbers from the file name and the chunk's ``entrystart`` in
        ``events.metadata``.
        """
        metadata = events.metadata or {}
        if "filename" not in metadata:
            raise ValueError(
                "events.metadata has no 'filename'; call simulate() with file= and entry="
            )
        start = int(metadata.get("entrystart", 0) or 0)
        rows, batch = nanoevents.parton_z(events, self.channel, self.layout)
        return self._simulate(len(events), rows, batch, metadata["filename"], start + rows)

    def simulate(
        self, partons: ak.Array, *, file: str, entry: np.ndarray | None = None
    ) -> FastSimOutput:
        """Simulate the detector-level objects of events given their partons.

        Parameters
        ----------
        partons : awkward.Array
            One list of particles per event: the ``Parton`` collection of the project's
            files, the ``Particle`` collection of Delphes NanoEvents, or the
            ``particles`` of `pylhe.to_awkward` (see
            `turbosim_hep.io.nanoevents.collection_z`).
        file : str
            Name (or path) of the file the events come from; with ``entry`` it fixes
            the random numbers of every event.
        entry : numpy.ndarray, optional
            Entry number of each event in that file (default: 0, 1, 2, ...).

        Returns
        -------
        FastSimOutput
        """
        n = len(partons)
        entry = np.arange(n, dtype=np.int64) if entry is None else np.asarray(entry, dtype=np.int64)
        if len(entry) != n:
            raise ValueError(f"{len(entry)} entry numbers for {n} events")
        rows, batch = nanoevents.collection_z(partons, self.channel, self.layout)
        return self._simulate(n, rows, batch, file, entry[rows])

    def _simulate(
        self, n: int, rows: np.ndarray, batch: EventBatch, file: str, entry: np.ndarray
    ) -> FastSimOutput:
        """The model on the partons of ``batch``, events ``rows`` of ``n``, entries ``entry``."""
        finite = np.isfinite(batch.z).all(axis=1)
        rows, batch, entry = rows[finite], batch.take(finite), entry[finite]
        model = self.model
        device = resolve_device(self.device)
        batch_size = self.batch_size or BATCH_EVENTS[device.type]
        mode, acceptance = applied_acceptance(self.acceptance, self.model_path, self.device)
        epsilon = None
        if acceptance is not None:
            epsilon = acceptance_probabilities(acceptance, batch.z, device, batch_size)
        (replica,) = plan_replicas(
            entry, batch.weights, epsilon, seed=self.seed,
            stream=stream_id(os.path.basename(file)), noise_dim=model.decoder_noise_dim,
            mode=mode,
        )
        x = run_model(model.simulate, batch.z[replica.rows], replica.noise, device, batch_size)
        good = np.isfinite(x).all(axis=1)
        kept, x, weight = replica.rows[good], x[good], replica.weight[good]
        mask = np.zeros(n, dtype=bool)
        mask[rows[kept]] = True
        conjugate = batch.conjugates[kept]
        lepton, jet, met = nanoaod_collections(x, conjugate, self.layout)
        return FastSimOutput(
            mask=mask, Lepton=lepton, Jet=jet, MissingET=met, x=x, conjugate=conjugate,
            weight=weight, acceptance=None if epsilon is None else epsilon[kept],
            lepton_collection=formats.LEPTON_COLLECTIONS[self.layout.lepton.kind],
        )


def nanoaod_collections(
    x: np.ndarray, conjugate: np.ndarray | None = None, layout: Layout = DEFAULT_LAYOUT
) -> tuple[ak.Array, ak.Array, ak.Array]:
    """The lepton, Jet and MissingET collections with coffea's NanoAOD behaviours.

    The collections of `turbosim_hep.io.writer.reco_collections` (those
    ``turbosim-hep simulate`` writes), with two changes for coffea's candidates: masses
    are floored at 0 (the model's massless objects can come out with E a float32
    rounding error below |p|, which ``reco_collections`` keeps as a small negative
    mass), and the jets get a ``charge`` (0), which the sum of candidates adds up.

    Parameters
    ----------
    x : numpy.ndarray
        Shape (n, 24) in the X layout.
    conjugate : numpy.ndarray, optional
        bool (n,): events of the charge-conjugate channel (CP-mirrored in ``x``), given
        back in their own frame with the lepton of the opposite charge.
    layout : turbosim_hep.layout.Layout
        The final state of ``x`` (default ``ejets``): its lepton is an Electron or a Muon.

    Returns
    -------
    tuple of awkward.Array
        ``n * var * Electron`` (or ``Muon``), ``n * var * Jet`` and ``n * MissingET``
        (pt, phi).
    """
    # Imported here, not with the module: coffea.nanoevents imports coffea.util and with it
    # hist and rich, which a processor that only holds a FastSim does not need.
    from coffea.nanoevents.methods import nanoaod

    collections = reco_collections(x, conjugate=conjugate, layout=layout)
    jet = collections[formats.JET]
    jet = ak.with_field(jet, ak.zeros_like(jet.pt), "charge")
    lepton = formats.LEPTON_COLLECTIONS[layout.lepton.kind]
    return (
        _candidates(collections[lepton], lepton, nanoaod.behavior),
        _candidates(jet, "Jet", nanoaod.behavior),
        ak.with_name(collections[formats.MET], "MissingET", behavior=nanoaod.behavior),
    )


def _candidates(objects: ak.Array, name: str, behavior: dict) -> ak.Array:
    """``objects`` as NanoAOD candidates called ``name``, their masses floored at 0."""
    objects = ak.with_field(objects, np.maximum(objects.mass, 0.0), "mass")
    return ak.with_name(objects, name, behavior=behavior)


def simulated_events(events: ak.Array, fastsim: FastSim) -> ak.Array:
    """The events `fastsim` could simulate, with the simulated lepton, Jet and MET.

    A drop-in for processors written for the project's files: the returned NanoEvents
    look like those of a ``turbosim-hep simulate`` output (``MET`` as `TurboSimSchema`
    names it, the lepton collection of the model's layout and no other lepton or Photon,
    the event ``weight``), with the partons and event ids kept. For Delphes
    NanoEvents call ``fastsim(events)`` and use its collections directly.
    """
    sim = fastsim(events)
    kept = events[sim.mask]
    # the simulated final state has one lepton of the layout's kind and no photon
    not_simulated = [*formats.LEPTON_COLLECTIONS.values(), formats.PHOTON]
    for name in not_simulated:
        if name in kept.fields:
            kept = ak.without_field(kept, name)
    kept[sim.lepton_collection] = sim.Lepton
    kept[formats.JET] = sim.Jet
    kept[formats.MET] = sim.MissingET
    kept[formats.EVENT_WEIGHT] = sim.weight
    return kept


__all__ = ["FastSim", "FastSimOutput", "nanoaod_collections", "simulated_events"]
