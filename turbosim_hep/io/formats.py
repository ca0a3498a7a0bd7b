"""Branch names of the two ROOT formats turbosim-hep reads: Delphes 3 and its own.

The project's own format follows the NanoAOD naming convention (``nJet``, ``Jet_pt``,
``MET_pt``, ...) so that coffea's NanoAOD machinery reads it; the hard-process partons
form one more collection, ``Parton``, holding the six partons of the Z space in Z order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Name of the tree in the project's own files.
EVENTS_TREE = "Events"
#: Name of the tree in Delphes files.
DELPHES_TREE = "Delphes"

#: Collection names of the project's own files.
ELECTRON = "Electron"
MUON = "Muon"
PHOTON = "Photon"
JET = "Jet"
MET = "MET"
PARTON = "Parton"
#: The collection of each lepton kind of `turbosim_hep.layout.LEPTON_KINDS`.
LEPTON_COLLECTIONS = {"electron": ELECTRON, "muon": MUON}
#: The lepton fields the selection and the X space read.
LEPTON_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "charge")
_DELPHES_FIELDS = {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge"}
#: Per-event weight of generated files (NanoAOD's name): the events each one stands for,
#: for example 1 / fraction for rejected events thinned by ``generate --rejected-fraction``.
WEIGHT = "genWeight"
#: Per-event weight of simulated files: the input's weight times the acceptance (with
#: ``simulate --acceptance weight``) over the number of replicas (``--oversample``).
EVENT_WEIGHT = "weight"
#: Per-event branches of simulated and unfolded files: the position of the event's input
#: in the metadata list ``inputs``, and the copy of the event (0 to K - 1 of ``simulate
#: --oversample K`` or ``unfold --samples K``, present with K above 1).
SOURCE = "source"
REPLICA = "replica"
#: The weight branches a reader looks for, the first present being the event's weight.
WEIGHT_BRANCHES: tuple[str, ...] = (EVENT_WEIGHT, WEIGHT)


def weight_branch(names: Iterable[str]) -> str | None:
    """The branch among ``names`` that holds the event weight (`WEIGHT_BRANCHES`), if any."""
    names = set(names)
    return next((b for b in WEIGHT_BRANCHES if b in names), None)

#: Key of the JSON metadata string stored beside the tree.
METADATA_KEY = "turbosim_metadata"
#: Key of the metadata entry that names the layout of a file's events, and of the one
#: that holds its definition (`turbosim_hep.layout.Layout.to_dict`; simulate and unfold).
LAYOUT_KEY = "layout"
LAYOUT_DEFINITION_KEY = "layout_definition"


@dataclass(frozen=True)
class DelphesBranches:
    """Branch names of a Delphes 3 tree (split TClonesArray branches)."""

    electron_size: str = "Electron_size"
    muon_size: str = "Muon_size"
    photon_size: str = "Photon_size"
    jet_size: str = "Jet_size"
    jet_pt: str = "Jet.PT"
    jet_eta: str = "Jet.Eta"
    jet_phi: str = "Jet.Phi"
    met: str = "MissingET.MET"
    met_phi: str = "MissingET.Phi"
    particle_pid: str = "Particle.PID"
    particle_status: str = "Particle.Status"
    particle_mother: str = "Particle.M1"
    particle_px: str = "Particle.Px"
    particle_py: str = "Particle.Py"
    particle_pz: str = "Particle.Pz"
    particle_e: str = "Particle.E"

    @staticmethod
    def lepton(kind: str, field: str) -> str:
        """Branch of a lepton field (``electron``, ``pt`` -> ``Electron.PT``)."""
        return f"{LEPTON_COLLECTIONS[kind]}.{_DELPHES_FIELDS[field]}"

    def size(self, kind: str) -> str:
        """Counter branch of a lepton kind (``muon`` -> ``Muon_size``)."""
        return {"electron": self.electron_size, "muon": self.muon_size}[kind]

    def detector(self, lepton: str = "electron") -> tuple[str, ...]:
        """Branches a lepton+jets selection and its X space need, for the lepton kind of
        the layout (``electron`` or ``muon``); the other lepton is counted."""
        return (
            self.size(lepton), *(self.lepton(lepton, f) for f in LEPTON_FIELDS),
            *(self.size(k) for k in LEPTON_COLLECTIONS if k != lepton),
            self.photon_size, self.jet_size, self.jet_pt, self.jet_eta, self.jet_phi,
            self.met, self.met_phi,
        )

    @property
    def partons(self) -> tuple[str, ...]:
        """Branches the Z space needs (the generator record)."""
        return (
            self.particle_pid, self.particle_status, self.particle_mother,
            self.particle_px, self.particle_py, self.particle_pz, self.particle_e,
        )


DELPHES = DelphesBranches()


def branch(collection: str, field: str) -> str:
    """NanoAOD-style flat branch name of a collection field (``Jet``, ``pt`` -> ``Jet_pt``)."""
    return f"{collection}_{field}"


def counter(collection: str) -> str:
    """NanoAOD-style counter branch of a collection (``Jet`` -> ``nJet``)."""
    return f"n{collection}"


def own_detector_branches(*, required: bool, lepton: str = "electron") -> list[str]:
    """Branches of the own format a lepton+jets selection and its X space read.

    ``required=True``: the collection of the layout's lepton kind (``electron`` or
    ``muon``), Jet and MET; ``required=False``: the counters of the collections a file
    may lack (a missing collection of the other lepton or of photons counts as empty).
    """
    if required:
        leptons, j = LEPTON_COLLECTIONS[lepton], JET
        return [
            counter(leptons), *(branch(leptons, f) for f in LEPTON_FIELDS),
            counter(j), *(branch(j, f) for f in ("pt", "eta", "phi")),
            branch(MET, "pt"), branch(MET, "phi"),
        ]
    # A collection the file does not hold (say, no Muon in a simulated file) counts as empty.
    others = [c for kind, c in LEPTON_COLLECTIONS.items() if kind != lepton]
    return [counter(c) for c in others] + [counter(PHOTON)]


def own_parton_branches() -> list[str]:
    """Branches of the own format the Z space reads (the ``Parton`` collection)."""
    p = PARTON
    return [counter(p)] + [
        branch(p, f) for f in ("pt", "eta", "phi", "mass", "pdgId")
    ]
