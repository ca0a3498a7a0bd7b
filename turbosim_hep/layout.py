"""The one definition of the Turbo-Sim event layout.

Every module that needs to know what an event *is* imports it from here: the order of
the six partons of the Z space and of the six reconstructed objects of the X space, the
four-vector components, the column names of the reference data set, the particle ids,
the physical constants of the reconstruction and the reference event selection.

Z (parton level, 24 floats): (px, py, pz, E) of e-, nu_e-bar, b, b-bar, u, d-bar.
X (detector level, 24 floats): (px, py, pz, E) of the electron, the missing transverse
momentum (pz = 0, E = |MET|) and the four jets in pT order, all massless.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from turbosim_hep.arguments import ArgumentError

#: Bumped whenever the meaning of the Z or X columns changes; stored in checkpoints.
LAYOUT_VERSION = 1

#: The four-vector components of every object, in storage order.
COMPONENTS: tuple[str, ...] = ("px", "py", "pz", "E")
N_COMPONENTS = len(COMPONENTS)


@dataclass(frozen=True)
class Parton:
    """One hard-process parton of the Z space."""

    name: str
    pdg_id: int
    parent_pdg_id: int  # the resonance it comes from: t, t-bar, W+ or W-


#: The six partons of pp -> tt-bar -> e- nu_e-bar b b-bar u d-bar, in Z order.
PARTONS: tuple[Parton, ...] = (
    Parton("e-", 11, -24),
    Parton("nubar", -12, -24),
    Parton("b", 5, 6),
    Parton("bbar", -5, -6),
    Parton("u", 2, 24),
    Parton("dbar", -1, 24),
)
Z_OBJECTS: tuple[str, ...] = tuple(p.name for p in PARTONS)
PARTON_PDG_IDS = np.array([p.pdg_id for p in PARTONS], dtype=np.int32)
PARTON_PARENT_PDG_IDS = np.array([p.parent_pdg_id for p in PARTONS], dtype=np.int32)

#: The six reconstructed objects of the X space, in X order.
N_JETS = 4
X_OBJECTS: tuple[str, ...] = ("e-", "met") + tuple(f"jet{i + 1}" for i in range(N_JETS))

N_OBJECTS = 6
N_FEATURES = N_OBJECTS * N_COMPONENTS  # 24 floats per space

#: The parton each detector object comes from, in X order (the jets come from the four
#: quarks in some order, the MET from the neutrino): what a response of the detector to
#: the partons is relative to (`turbosim_hep.model.networks.ResponseXHead`).
X_SOURCES: tuple[str, ...] = ("e-", "nubar", "b", "bbar", "u", "dbar")


def _columns(objects: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{c}_{o}" for o in objects for c in COMPONENTS)


#: Column names of the reference data set (``px_e-, py_e-, ..., E_dbar``).
Z_COLUMNS: tuple[str, ...] = _columns(Z_OBJECTS)
#: Column names of the reference data set (``px_e-, ..., px_met, ..., E_jet4``).
X_COLUMNS: tuple[str, ...] = _columns(X_OBJECTS)


def column_index(space: str, name: str) -> int:
    """Index of a named column (for example ``"py_b"``) in the Z or X space.

    Parameters
    ----------
    space : {"z", "x"}
        Which space the column belongs to.
    name : str
        Column name as in `Z_COLUMNS` or `X_COLUMNS`.

    Returns
    -------
    int
        Position of the column in an (N, 24) array of that space.
    """
    columns = {"z": Z_COLUMNS, "x": X_COLUMNS}[space]
    return columns.index(name)


def object_slice(space: str, name: str) -> slice:
    """Slice of the four columns of one object (for example ``"jet1"``) in a space."""
    objects = {"z": Z_OBJECTS, "x": X_OBJECTS}[space]
    start = objects.index(name) * N_COMPONENTS
    return slice(start, start + N_COMPONENTS)


# --- particle ids -------------------------------------------------------------------
PDG_ELECTRON = 11
PDG_TOP = 6
PDG_W = 24

#: Status codes of outgoing hard-process particles: Pythia 8 (23) and Pythia 6 style (3).
HARD_PROCESS_STATUS: tuple[int, ...] = (23, 3)


@dataclass(frozen=True)
class TopDecay:
    """One top quark's decay t -> W b, W -> f f', as positions of its partons in Z."""

    pdg_id: int  # of the top: 6 or -6
    b: int
    w_daughters: tuple[int, int]  # the W's decay products, in Z order


def _top_decays() -> tuple[TopDecay, ...]:
    """The two top decays of `PARTONS`, from each parton's parent id."""
    decays = []
    for top in (PDG_TOP, -PDG_TOP):
        w = int(np.sign(top)) * PDG_W
        (b,) = (i for i, p in enumerate(PARTONS) if p.parent_pdg_id == top)
        daughters = tuple(i for i, p in enumerate(PARTONS) if p.parent_pdg_id == w)
        decays.append(TopDecay(top, b, daughters))
    return tuple(decays)


#: t -> W+ b, W+ -> u d-bar and t-bar -> W- b-bar, W- -> e- nu_e-bar, as Z positions.
TOP_DECAYS: tuple[TopDecay, ...] = _top_decays()

# --- physical constants of the reconstruction (GeV), as in the paper's section 3 -------
M_W = 80.379
M_TOP = 172.76
#: Widths of the jet-assignment chi-square: leptonic top, hadronic W, hadronic top.
SIGMA_T_LEP = 5.0
SIGMA_W_HAD = 10.0
SIGMA_T_HAD = 15.0

#: The 12 jet assignments as rows of jet indices (b of the leptonic top, the two jets of
#: the hadronic W, b of the hadronic top); the W pair is unordered.
ASSIGNMENTS: np.ndarray = np.array(
    [
        (b_lep, *w_pair, b_had)
        for b_lep, b_had in itertools.permutations(range(N_JETS), 2)
        for w_pair in [tuple(j for j in range(N_JETS) if j not in (b_lep, b_had))]
    ],
    dtype=np.intp,
)

# --- the reference selection ----------------------------------------------------------
#: Charge the one selected electron must carry.
ELECTRON_CHARGE = -1


@dataclass(frozen=True)
class ObjectCounts:
    """Per-event quantities the reference selection looks at (NumPy arrays of length N)."""

    n_electrons: np.ndarray
    electron_charge: np.ndarray  # charge of the leading electron, 0 where there is none
    n_muons: np.ndarray
    n_photons: np.ndarray
    n_jets: np.ndarray


# --- the charge-conjugate channel -----------------------------------------------------
#: The channels of the layout. ``electron``: e- nu_e-bar b b-bar u d-bar, the paper's.
#: ``positron``: its charge conjugate e+ nu_e b-bar b u-bar d, mapped onto the same Z and
#: X slots by the CP mirror: each conjugate particle takes the slot of the particle it is
#: the CP image of (e+ the e- slot, nu_e the nu_e-bar slot, the b-bar of the hadronic
#: top the b slot, the b of the leptonic top the b-bar slot, u-bar the u slot, d the d-bar
#: slot; the positron the electron slot of X), and every three-momentum is reversed.
#: The detector's response is symmetric under both (it treats a particle and its
#: antiparticle alike and is symmetric under eta -> -eta, phi -> phi + pi), so the
#: model trained on the reference channel simulates the mirrored event.
CHANNELS: tuple[str, ...] = ("electron", "positron")
REFERENCE_CHANNEL = "electron"
#: What a user may ask for: one channel, or both.
CHANNEL_CHOICES: tuple[str, ...] = (*CHANNELS, "both")
#: Sign of the particle ids and of the electron charge of each channel.
CHANNEL_SIGN: Mapping[str, int] = {"electron": 1, "positron": -1}


def check_channel(channel: str) -> str:
    """``channel`` if it is one of `CHANNELS`; `ArgumentError` (a ValueError) naming the
    choices otherwise."""
    if channel not in CHANNELS:
        raise ArgumentError(
            "channel", f"unknown channel {channel!r}; choose from {', '.join(CHANNELS)}"
        )
    return channel


def channels_of(choice: str) -> tuple[str, ...]:
    """The channels a choice of `CHANNEL_CHOICES` stands for (``both``: every channel).

    Raises
    ------
    ArgumentError
        A ValueError naming the choices, for an unknown one.
    """
    if choice == "both":
        return CHANNELS
    if choice not in CHANNELS:
        raise ArgumentError(
            "channel", f"unknown channel {choice!r}; choose from {', '.join(CHANNEL_CHOICES)}"
        )
    return (choice,)


def parton_pdg_ids(channel: str = REFERENCE_CHANNEL) -> np.ndarray:
    """Particle ids of the six Z slots in ``channel``."""
    return CHANNEL_SIGN[check_channel(channel)] * PARTON_PDG_IDS


def parton_parent_pdg_ids(channel: str = REFERENCE_CHANNEL) -> np.ndarray:
    """Particle ids of the resonance each Z slot comes from in ``channel``."""
    return CHANNEL_SIGN[check_channel(channel)] * PARTON_PARENT_PDG_IDS


def electron_charge(channel: str = REFERENCE_CHANNEL) -> int:
    """Charge of the selected electron (positron) in ``channel``."""
    return CHANNEL_SIGN[check_channel(channel)] * ELECTRON_CHARGE


def cp_mirror(p4: np.ndarray) -> np.ndarray:
    """Four-momenta with every three-momentum reversed (its own inverse).

    Parameters
    ----------
    p4 : numpy.ndarray
        Shape (n, 24) (Z or X layout) or (..., 4).

    Returns
    -------
    numpy.ndarray
        A new array: (-px, -py, -pz, E) of every object.
    """
    shape = np.shape(p4)
    mirrored = np.array(p4, copy=True).reshape(-1, N_COMPONENTS)
    mirrored[:, :3] *= -1
    return mirrored.reshape(shape)


#: The reference selection, in cut-flow order: name -> predicate on `ObjectCounts`.
#: Each predicate is applied on top of all the previous ones.
SELECTION: Mapping[str, Callable[[ObjectCounts], np.ndarray]] = {
    "one_electron": lambda c: c.n_electrons == 1,
    "electron_charge": lambda c: c.electron_charge == ELECTRON_CHARGE,
    "no_muon": lambda c: c.n_muons == 0,
    "no_photon": lambda c: c.n_photons == 0,
    "four_jets": lambda c: c.n_jets == N_JETS,
}
#: Name of the last cut: the events passing it are the selected ones.
SELECTED_CUT = next(reversed(SELECTION))

#: Name of the cut that requires a complete hard-process parton record.
PARTON_CUT = "parton_record"


def selection_masks(
    counts: ObjectCounts, channel: str = REFERENCE_CHANNEL
) -> dict[str, np.ndarray]:
    """Cumulative masks of the reference selection.

    Parameters
    ----------
    counts : ObjectCounts
        Object multiplicities and the leading electron charge of each event.
    channel : str
        ``electron`` (the paper's selection) or ``positron``: the same cuts with the
        electron charge of that channel (see `CHANNELS`).

    Returns
    -------
    dict[str, numpy.ndarray]
        Ordered mapping from cut name to the boolean mask of events passing that cut
        and all the cuts before it.
    """
    if CHANNEL_SIGN[check_channel(channel)] < 0:
        counts = replace(counts, electron_charge=-np.asarray(counts.electron_charge))
    mask = np.ones(len(counts.n_jets), dtype=bool)
    masks = {}
    for name, predicate in SELECTION.items():
        mask = mask & np.asarray(predicate(counts), dtype=bool)
        masks[name] = mask
    return masks
