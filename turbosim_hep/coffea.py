"""The coffea plugin of turbosim-hep: detector-level collections from partons, on the fly.

`FastSim` turns a parton collection into the Electron, Jet and MissingET collections a
detector-level file would give, with the same coffea NanoAOD behaviours as
`turbosim_hep.io.schemas.TurboSimSchema` (``.pt``, ``.mass``, ``+``, ``.delta_r`` work
as on read objects)::

    fastsim = FastSim("model.pt")                     # in the processor's __init__
    sim = fastsim(events)                             # in process(): NanoEvents in
    events = events[sim.mask]                         # the events it could simulate
    events["Electron"], events["Jet"], events["MET"] = sim.Electron, sim.Jet, sim.MissingET

`FastSim` holds only the model's path and settings: a processor that carries one
pickles small and never ships weights to the workers. Each worker process loads the
model once (`turbosim_hep.inference.cached_model`) on the first chunk it runs, on CUDA
when it has one (``device="auto"``).

The noise of each event is `turbosim_hep.random.event_normal` of (seed, input file name,
entry number), so results do not depend on how the work is cut: iterative, futures or
Dask executors and any chunk size give the same histograms.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import awkward as ak
import numpy as np
from coffea.nanoevents.methods import nanoaod

from turbosim_hep import layout
from turbosim_hep.device import resolve_device
from turbosim_hep.inference import BATCH_EVENTS, cached_model, run_model
from turbosim_hep.io import formats, reader
from turbosim_hep.io.lhe import final_state_partons
from turbosim_hep.kinematics import ptetaphim_from_p4
from turbosim_hep.random import event_normal, stream_id


@dataclass
class FastSimOutput:
    """Simulated collections of the events `FastSim` could simulate.

    Attributes
    ----------
    mask : numpy.ndarray
        bool, one per input event: True where the event had the e- nu_e-bar b b-bar u
        d-bar partons with finite momenta and the model gave finite outputs.
    Electron : awkward.Array
        ``n * var * Electron`` (one electron of charge -1 per event), n = mask.sum().
    Jet : awkward.Array
        ``n * var * Jet`` (four jets in pT order).
    MissingET : awkward.Array
        ``n * MissingET`` (pt, phi).
    x : numpy.ndarray
        float32 (n, 24): the same events in the X layout.
    """

    mask: np.ndarray
    Electron: ak.Array
    Jet: ak.Array
    MissingET: ak.Array
    x: np.ndarray


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
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        seed: int = 0,
        device: str = "auto",
        batch_size: int | None = None,
    ):
        self.model_path = os.path.abspath(os.fspath(model))
        self.seed = int(seed)
        self.device = str(device)
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"FastSim({self.model_path!r}, seed={self.seed}, device={self.device!r})"

    @property
    def model(self):
        """The model, loaded once per process and fused for inference (never pickled)."""
        return cached_model(self.model_path, self.device)

    def __call__(self, events: ak.Array) -> FastSimOutput:
        """Simulate a chunk of NanoEvents as read (before any event is removed).

        The partons come from ``Parton`` (the project's files) or the generator record
        ``Particle`` (Delphes); the stream of random numbers from the file name and the
        chunk's ``entrystart`` in ``events.metadata``.
        """
        metadata = events.metadata or {}
        if "filename" not in metadata:
            raise ValueError(
                "events.metadata has no 'filename'; call simulate() with file= and entry="
            )
        entry = int(metadata.get("entrystart", 0) or 0) + np.arange(len(events), dtype=np.int64)
        collection = formats.PARTON if formats.PARTON in events.fields else "Particle"
        if collection not in events.fields:
            raise ValueError("the events hold no parton collection (Parton or Particle)")
        return self.simulate(events[collection], file=metadata["filename"], entry=entry)

    def simulate(
        self, partons: ak.Array, *, file: str, entry: np.ndarray | None = None
    ) -> FastSimOutput:
        """Simulate the detector-level objects of events given their partons.

        Parameters
        ----------
        partons : awkward.Array
            One list of particles per event: the ``Parton`` collection of the project's
            files, the ``Particle`` collection of Delphes NanoEvents, or the
            ``particles`` of `pylhe.to_awkward`.
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
        rows, z = parton_z(partons)
        finite = np.isfinite(z).all(axis=1)
        rows, z = rows[finite], z[finite]
        model = self.model
        device = resolve_device(self.device)
        noise = None
        if model.decoder_noise_dim:
            stream = stream_id(os.path.basename(file))
            noise = event_normal(self.seed, stream, entry[rows], model.decoder_noise_dim)
        batch_size = self.batch_size or BATCH_EVENTS[device.type]
        x = run_model(model.simulate, z, noise, device, batch_size)
        good = np.isfinite(x).all(axis=1)
        rows, x = rows[good], x[good]
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        electron, jet, met = reco_collections(x)
        return FastSimOutput(mask=mask, Electron=electron, Jet=jet, MissingET=met, x=x)


def parton_z(partons: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """Positions and Z arrays (float32, (k, 24)) of the events with the six partons.

    Understands the project's ``Parton`` collection, Delphes' ``Particle`` record and
    pylhe's ``particles``; the matching is the reader's (`turbosim_hep.io.reader`) and
    the LHE reader's (`turbosim_hep.io.lhe`), so files and plugin agree event by event.
    """
    fields = set(partons.fields)
    if {"PID", "Status", "M1"} <= fields:  # Delphes generator record
        delphes = formats.DELPHES
        energy = "Energy" if "Energy" in fields else "E"
        record = {
            delphes.particle_pid: partons.PID, delphes.particle_status: partons.Status,
            delphes.particle_mother: partons.M1, delphes.particle_px: partons.Px,
            delphes.particle_py: partons.Py, delphes.particle_pz: partons.Pz,
            delphes.particle_e: partons[energy],
        }
        fmt: reader.Format = "delphes"
    elif {"id", "status", "vector"} <= fields:  # pylhe.to_awkward
        momenta = partons.vector
        p4 = np.stack(
            [ak.to_numpy(ak.flatten(momenta[c])) for c in ("px", "py", "pz", "e")], axis=-1
        )
        batch = final_state_partons(
            ak.to_numpy(ak.num(partons, axis=1)), ak.to_numpy(ak.flatten(partons.id)),
            ak.to_numpy(ak.flatten(partons.status)), p4,
        )
        return batch.entry, batch.z
    elif {"pt", "eta", "phi", "mass", "pdgId"} <= fields:  # the project's Parton collection
        p = formats.PARTON
        record = {formats.counter(p): ak.num(partons, axis=1)} | {
            formats.branch(p, f): partons[f] for f in ("pt", "eta", "phi", "mass", "pdgId")
        }
        fmt = "turbosim"
    else:
        raise ValueError(
            f"unknown parton collection with fields {sorted(fields)}; expected the "
            "project's Parton, Delphes' Particle or pylhe's particles"
        )
    batch = reader.select_events(ak.zip(record, depth_limit=1), fmt, detector=False, partons=True)
    return batch.entry, batch.z


def reco_collections(x: np.ndarray) -> tuple[ak.Array, ak.Array, ak.Array]:
    """Electron, Jet and MissingET collections with NanoAOD behaviours from an (n, 24) X array."""
    n = len(x)
    objects = np.asarray(x, dtype=np.float32).reshape(n, layout.N_OBJECTS, layout.N_COMPONENTS)

    def candidates(p4: np.ndarray, name: str, **extra: np.ndarray) -> ak.Array:
        k = p4.shape[1]
        pt, eta, phi, mass = (np.ascontiguousarray(v).reshape(n * k) for v in ptetaphim_from_p4(p4))
        fields = {"pt": pt, "eta": eta, "phi": phi, "mass": np.maximum(mass, 0.0)}
        fields |= {key: value.reshape(n * k) for key, value in extra.items()}
        flat = ak.zip(fields, with_name=name, behavior=nanoaod.behavior)
        return ak.unflatten(flat, np.full(n, k, dtype=np.int64), behavior=nanoaod.behavior)

    electron = candidates(
        objects[:, :1], "Electron", charge=np.full((n, 1), layout.ELECTRON_CHARGE, dtype=np.int32)
    )
    jet = candidates(objects[:, 2:], "Jet", charge=np.zeros((n, layout.N_JETS), dtype=np.float32))
    met = ak.zip(
        {
            "pt": np.hypot(objects[:, 1, 0], objects[:, 1, 1]),
            "phi": np.arctan2(objects[:, 1, 1], objects[:, 1, 0]),
        },
        with_name="MissingET",
        behavior=nanoaod.behavior,
    )
    return electron, jet, met


#: Detector-level collections a simulated event does not have (the simulated channel has
#: no muon and no photon), removed by `simulated_events`.
_NOT_SIMULATED = (formats.MUON, formats.PHOTON)


def simulated_events(events: ak.Array, fastsim: FastSim) -> ak.Array:
    """The events `fastsim` could simulate, with simulated Electron, Jet and MET.

    A drop-in for processors written for the project's files: the returned NanoEvents
    look like those of a ``turbosim-hep simulate`` output (``MET`` as `TurboSimSchema`
    names it, no Muon or Photon), with the partons and event ids kept. For Delphes
    NanoEvents call ``fastsim(events)`` and use its collections directly.
    """
    sim = fastsim(events)
    kept = events[sim.mask]
    for name in _NOT_SIMULATED:
        if name in kept.fields:
            kept = ak.without_field(kept, name)
    kept[formats.ELECTRON] = sim.Electron
    kept[formats.JET] = sim.Jet
    kept[formats.MET] = sim.MissingET
    return kept


__all__ = ["FastSim", "FastSimOutput", "parton_z", "reco_collections", "simulated_events"]
