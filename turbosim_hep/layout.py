"""The event layout: what an event of a final state is, as one value per final state.

A `Layout` holds every fact about the events of one final state that the rest of the
package builds on: the partons of the Z space (particle id, the resonance each comes
from, their order), the reconstructed objects of the X space (what kind each is, which
parton it comes from), the two charge channels, and the selection that picks the events.
Readers, the writer, the generator, the model and the validation take a layout and ask
it; nothing else spells out a slot.

The built-in layouts (`BUILTIN_LAYOUTS`) are the two lepton+jets final states of tt-bar:

- ``ejets``, the paper's (`EJETS`, the default):
  Z (24 floats): (px, py, pz, E) of e-, nu_e-bar, b, b-bar, u, d-bar;
  X (24 floats): (px, py, pz, E) of the electron, the missing transverse momentum
  (pz = 0, E = |MET|) and the four jets in pT order, all massless.
- ``mujets``: the same with a muon and its neutrino (`MUJETS`).

The module-level names (`PARTONS`, `X_OBJECTS`, `SELECTION`, `selection_masks`, ...) are
those of ``ejets``: the positions every lepton+jets layout shares, which the networks and
the reconstruction index.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from turbosim_hep.arguments import ArgumentError
from turbosim_hep.errors import InputError, read_head

#: Bumped whenever the meaning of the Z or X columns changes; stored in checkpoints.
LAYOUT_VERSION = 1

#: The four-vector components of every object, in storage order.
COMPONENTS: tuple[str, ...] = ("px", "py", "pz", "E")
N_COMPONENTS = len(COMPONENTS)

# --- particle ids -------------------------------------------------------------------
PDG_ELECTRON = 11
PDG_MUON = 13
PDG_TOP = 6
PDG_W = 24

#: Status codes of outgoing hard-process particles: Pythia 8 (23) and Pythia 6 style (3).
HARD_PROCESS_STATUS: tuple[int, ...] = (23, 3)

#: The kinds of reconstructed object an X slot can hold.
LEPTON_KINDS: tuple[str, ...] = ("electron", "muon")
OBJECT_KINDS: tuple[str, ...] = (*LEPTON_KINDS, "jet", "met")
#: |PDG id| of the charged lepton of each lepton kind.
LEPTON_PDG_IDS: Mapping[str, int] = {"electron": PDG_ELECTRON, "muon": PDG_MUON}

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")


@dataclass(frozen=True)
class Parton:
    """One hard-process parton of the Z space."""

    name: str
    pdg_id: int
    parent_pdg_id: int  # the resonance it comes from: t, t-bar, W+ or W-


@dataclass(frozen=True)
class DetectorObject:
    """One reconstructed object of the X space."""

    name: str
    kind: str  # one of OBJECT_KINDS
    source: str  # the parton it comes from (the jets: one of the quarks, in some order)


@dataclass(frozen=True)
class TopDecay:
    """One top quark's decay t -> W b, W -> f f', as positions of its partons in Z."""

    pdg_id: int  # of the top: 6 or -6
    b: int
    w_daughters: tuple[int, int]  # the W's decay products, in Z order


@dataclass(frozen=True)
class ObjectCounts:
    """Per-event quantities a selection looks at (NumPy arrays of length N).

    The leading charges are 0 where an event has no object of that kind.
    """

    n_electrons: np.ndarray
    electron_charge: np.ndarray | None  # charge of the leading electron, where read
    n_muons: np.ndarray
    n_photons: np.ndarray
    n_jets: np.ndarray
    muon_charge: np.ndarray | None = None  # charge of the leading muon, where read

    def count(self, kind: str) -> np.ndarray:
        """Objects of a kind (``electron``, ``muon``, ``photon``, ``jet``) per event."""
        return getattr(self, f"n_{kind}s")

    def leading_charge(self, kind: str) -> np.ndarray:
        """Charge of the leading lepton of a kind, per event."""
        charge = getattr(self, f"{kind}_charge")
        if charge is None:
            raise ValueError(f"the {kind} charges were not read")
        return charge


class LayoutError(ArgumentError):
    """A layout that cannot be used: the message names the key and what is wrong."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"layout {key}", problem)


@dataclass(frozen=True)
class Layout:
    """The events of one final state: its Z and X spaces, channels and selection.

    Parameters
    ----------
    name : str
        Short name (``ejets``), stored in checkpoints and output files.
    description : str
        The process in one line (``tt-bar -> e- nu_e-bar b b-bar u d-bar``).
    partons : tuple of Parton
        The partons of Z in order, with the particle ids of the reference channel.
    objects : tuple of DetectorObject
        The objects of X in order: one charged lepton, the MET, then the jets in pT order.
    channels : tuple of str
        Names of the reference channel and of its charge conjugate (``electron``,
        ``positron``).
    lepton_charge : int
        Charge of the selected lepton in the reference channel.

    Notes
    -----
    The networks and the tt-bar reconstruction index the positions of the lepton+jets
    topology: six partons as in ``ejets`` (the lepton and the neutrino of the W-, b of the
    t, b-bar of the t-bar, the two quarks of the W+) and six objects (the lepton, the
    MET, four jets). A layout of another shape is refused on construction, in one line.
    """

    name: str
    description: str
    partons: tuple[Parton, ...]
    objects: tuple[DetectorObject, ...]
    channels: tuple[str, str] = ("electron", "positron")
    lepton_charge: int = -1

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*", self.name):
            raise LayoutError(
                "name", f"must be a word of letters, digits, _ + -, got {self.name!r}"
            )
        for key, names in (("partons", self.z_objects), ("objects", self.x_objects)):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise LayoutError(key, f"names must be unique, {', '.join(duplicated)} repeated")
        for obj in self.objects:
            if obj.kind not in OBJECT_KINDS:
                raise LayoutError(
                    f"object {obj.name!r}",
                    f"unknown kind {obj.kind!r}; choose from {', '.join(OBJECT_KINDS)}",
                )
            if obj.source not in self.z_objects:
                raise LayoutError(
                    f"object {obj.name!r}", f"its source {obj.source!r} is not a parton"
                )
        if len(set(self.channels)) != 2 or not all(self.channels):
            raise LayoutError("channels", f"must be two different names, got {self.channels!r}")
        if self.lepton_charge not in (-1, 1):
            raise LayoutError("lepton_charge", f"must be -1 or 1, got {self.lepton_charge!r}")
        self._check_topology()

    def _check_topology(self) -> None:
        """Refuse what the lepton+jets networks cannot simulate (see the Notes)."""
        kinds = tuple(o.kind for o in self.objects)
        shape = ("lepton", "met", *("jet",) * (len(kinds) - 2))
        found = tuple("lepton" if k in LEPTON_KINDS else k for k in kinds)
        if found != shape or len(kinds) != 6:
            raise LayoutError(
                "objects",
                "must be one charged lepton, the met and four jets, in that order "
                f"(the lepton+jets topology), got {', '.join(kinds)}",
            )
        parents = tuple(p.parent_pdg_id for p in self.partons)
        expected = (-PDG_W, -PDG_W, PDG_TOP, -PDG_TOP, PDG_W, PDG_W)
        if parents != expected:
            raise LayoutError(
                "partons",
                "must come from W-, W-, t, t-bar, W+, W+ in that order (the lepton+jets "
                f"topology), got parents {', '.join(map(str, parents))}",
            )
        lepton, neutrino = self.partons[0], self.partons[1]
        flavour = abs(lepton.pdg_id)
        if flavour not in LEPTON_PDG_IDS.values() or abs(neutrino.pdg_id) != flavour + 1:
            raise LayoutError(
                "partons",
                "the W-'s daughters must be a charged lepton and its neutrino, got ids "
                f"{lepton.pdg_id}, {neutrino.pdg_id}",
            )
        if LEPTON_PDG_IDS[self.lepton.kind] != flavour:
            raise LayoutError(
                f"object {self.lepton.name!r}",
                f"a {self.lepton.kind} cannot come from the parton {lepton.name!r} "
                f"(id {lepton.pdg_id})",
            )
        sources = tuple(o.source for o in self.objects[:2])
        if sources != (lepton.name, neutrino.name):
            raise LayoutError(
                "objects", "the lepton and the met must come from the lepton and the neutrino"
            )

    # --- the two spaces ---------------------------------------------------------------
    @property
    def z_objects(self) -> tuple[str, ...]:
        """Names of the partons, in Z order."""
        return tuple(p.name for p in self.partons)

    @property
    def x_objects(self) -> tuple[str, ...]:
        """Names of the reconstructed objects, in X order."""
        return tuple(o.name for o in self.objects)

    @property
    def x_sources(self) -> tuple[str, ...]:
        """The parton each X object comes from, in X order."""
        return tuple(o.source for o in self.objects)

    @property
    def n_jets(self) -> int:
        """Jets of the X space (the selection asks for exactly this many)."""
        return sum(o.kind == "jet" for o in self.objects)

    @property
    def lepton(self) -> DetectorObject:
        """The charged lepton of X."""
        return next(o for o in self.objects if o.kind in LEPTON_KINDS)

    @property
    def z_columns(self) -> tuple[str, ...]:
        """Column names of Z (``px_e-, py_e-, ..., E_dbar``)."""
        return _columns(self.z_objects)

    @property
    def x_columns(self) -> tuple[str, ...]:
        """Column names of X (``px_e-, ..., px_met, ..., E_jet4``)."""
        return _columns(self.x_objects)

    @functools.cached_property
    def top_decays(self) -> tuple[TopDecay, ...]:
        """t -> W b, W -> f f' of each top, as Z positions (from each parton's parent)."""
        decays = []
        for top in (PDG_TOP, -PDG_TOP):
            w = int(np.sign(top)) * PDG_W
            (b,) = (i for i, p in enumerate(self.partons) if p.parent_pdg_id == top)
            daughters = tuple(i for i, p in enumerate(self.partons) if p.parent_pdg_id == w)
            decays.append(TopDecay(top, b, daughters))
        return tuple(decays)

    # --- channels -----------------------------------------------------------------------
    @property
    def reference_channel(self) -> str:
        """The channel of the partons' and the lepton's ids as given."""
        return self.channels[0]

    @property
    def channel_choices(self) -> tuple[str, ...]:
        """What a user may ask for: one channel, or ``both``."""
        return (*self.channels, "both")

    def channel_sign(self, channel: str) -> int:
        """+1 for the reference channel, -1 for its charge conjugate."""
        return 1 if self.check_channel(channel) == self.reference_channel else -1

    def check_channel(self, channel: str) -> str:
        """``channel`` if it is one of `channels`; `ArgumentError` naming them otherwise."""
        if channel not in self.channels:
            raise ArgumentError(
                "channel",
                f"unknown channel {channel!r} of the {self.name} layout; "
                f"choose from {', '.join(self.channels)}",
            )
        return channel

    def channels_of(self, choice: str) -> tuple[str, ...]:
        """The channels a choice of `channel_choices` stands for (``both``: every one)."""
        if choice == "both":
            return self.channels
        if choice not in self.channels:
            raise ArgumentError(
                "channel",
                f"unknown channel {choice!r} of the {self.name} layout; "
                f"choose from {', '.join(self.channel_choices)}",
            )
        return (choice,)

    def parton_pdg_ids(self, channel: str | None = None) -> np.ndarray:
        """Particle ids of the Z slots in ``channel`` (default: the reference one)."""
        sign = self.channel_sign(channel or self.reference_channel)
        return sign * np.array([p.pdg_id for p in self.partons], dtype=np.int32)

    def parton_parent_pdg_ids(self, channel: str | None = None) -> np.ndarray:
        """Particle ids of the resonance each Z slot comes from in ``channel``."""
        sign = self.channel_sign(channel or self.reference_channel)
        return sign * np.array([p.parent_pdg_id for p in self.partons], dtype=np.int32)

    def lepton_charge_of(self, channel: str | None = None) -> int:
        """Charge of the selected lepton in ``channel``."""
        return self.channel_sign(channel or self.reference_channel) * self.lepton_charge

    # --- the selection ------------------------------------------------------------------
    @functools.cached_property
    def selection(self) -> Mapping[str, Callable[[ObjectCounts], np.ndarray]]:
        """The selection of the reference channel, in cut-flow order: name -> predicate.

        Exactly one lepton of the layout's kind with the reference charge, no lepton of
        the other kind, no photon, exactly `n_jets` jets. Each predicate is applied on
        top of all the previous ones.
        """
        kind = self.lepton.kind
        charge = self.lepton_charge
        cuts: dict[str, Callable[[ObjectCounts], np.ndarray]] = {
            f"one_{kind}": lambda c: c.count(kind) == 1,
            f"{kind}_charge": lambda c: c.leading_charge(kind) == charge,
        }
        for other in LEPTON_KINDS:
            if other != kind:
                cuts[f"no_{other}"] = lambda c, other=other: c.count(other) == 0
        cuts["no_photon"] = lambda c: c.n_photons == 0
        n_jets = self.n_jets
        cuts[f"{_NUMBER_WORDS[n_jets]}_jets"] = lambda c: c.n_jets == n_jets
        return cuts

    @property
    def selected_cut(self) -> str:
        """Name of the last cut: the events passing it are the selected ones."""
        return next(reversed(self.selection))

    def selection_masks(
        self, counts: ObjectCounts, channel: str | None = None
    ) -> dict[str, np.ndarray]:
        """Cumulative masks of the selection.

        Parameters
        ----------
        counts : ObjectCounts
            Object multiplicities and leading lepton charges of each event.
        channel : str, optional
            The reference channel (default) or its charge conjugate: the same cuts with
            the opposite lepton charge.

        Returns
        -------
        dict[str, numpy.ndarray]
            Ordered mapping from cut name to the boolean mask of events passing that cut
            and all the cuts before it.
        """
        if self.channel_sign(channel or self.reference_channel) < 0:
            kind = self.lepton.kind
            counts = replace(counts, **{f"{kind}_charge": -np.asarray(counts.leading_charge(kind))})
        mask = np.ones(len(counts.n_jets), dtype=bool)
        masks = {}
        for name, predicate in self.selection.items():
            mask = mask & np.asarray(predicate(counts), dtype=bool)
            masks[name] = mask
        return masks

    # --- generation -----------------------------------------------------------------------
    @property
    def w_decay_settings(self) -> tuple[str, ...]:
        """Pythia 8 settings that force the two W decays of the reference channel.

        Pythia matches decay channels on |id|, for the W+ and the W- alike.
        """
        settings = ["24:onMode = off"]
        for key, parent in (("onPosIfMatch", PDG_W), ("onNegIfMatch", -PDG_W)):
            ids = " ".join(str(p.pdg_id) for p in self.partons if p.parent_pdg_id == parent)
            settings.append(f"24:{key} = {ids}")
        return tuple(settings)

    # --- storage -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The layout as plain data (JSON, TOML, checkpoints); `from_dict` inverts it."""
        return {
            "name": self.name,
            "description": self.description,
            "channels": list(self.channels),
            "lepton_charge": self.lepton_charge,
            "partons": [
                {"name": p.name, "pdg_id": p.pdg_id, "parent": p.parent_pdg_id}
                for p in self.partons
            ],
            "objects": [
                {"name": o.name, "kind": o.kind, "source": o.source} for o in self.objects
            ],
        }

    def __reduce__(self):
        # pickled as its plain data: the cached selection holds lambdas
        return _layout_from_dict, (self.to_dict(),)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layout:
        """The layout of `to_dict`'s plain data; `LayoutError` naming the bad key."""
        return _layout_from_dict(data)


def _columns(objects: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{c}_{o}" for o in objects for c in COMPONENTS)


_LAYOUT_KEYS = {"name", "description", "channels", "lepton_charge", "partons", "objects"}


def _layout_from_dict(data: Mapping[str, Any]) -> Layout:
    if not isinstance(data, Mapping):
        raise LayoutError("definition", "must be a table of keys")
    unknown = sorted(set(data) - _LAYOUT_KEYS)
    if unknown:
        raise LayoutError(unknown[0], f"unknown key; expected {', '.join(sorted(_LAYOUT_KEYS))}")
    for key in ("name", "partons", "objects"):
        if key not in data:
            raise LayoutError(key, "missing")

    def typed(key: str, value: Any, kind: type, what: str) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise LayoutError(key, f"must be {what}, got {value!r}")
        return value

    def entries(key: str, fields: Mapping[str, tuple[type, str]]) -> list[tuple]:
        rows = typed(key, data[key], list, "a list of tables")
        out = []
        for i, row in enumerate(rows):
            where = f"{key}[{i}]"
            typed(where, row, Mapping, "a table")
            unknown = sorted(set(row) - set(fields))
            if unknown:
                raise LayoutError(
                    f"{where}.{unknown[0]}", f"unknown key; expected {', '.join(fields)}"
                )
            values = []
            for field, (kind, what) in fields.items():
                if field not in row:
                    raise LayoutError(f"{where}.{field}", "missing")
                values.append(typed(f"{where}.{field}", row[field], kind, what))
            out.append(tuple(values))
        return out

    text, integer = (str, "a string"), (int, "an integer")
    partons = entries("partons", {"name": text, "pdg_id": integer, "parent": integer})
    objects = entries("objects", {"name": text, "kind": text, "source": text})
    channels = typed("channels", data.get("channels", list(EJETS.channels)), list, "a list")
    if len(channels) != 2 or not all(isinstance(c, str) for c in channels):
        raise LayoutError("channels", f"must be a list of two names, got {channels!r}")
    return Layout(
        name=typed("name", data["name"], str, "a string"),
        description=typed("description", data.get("description", ""), str, "a string"),
        partons=tuple(Parton(*row) for row in partons),
        objects=tuple(DetectorObject(*row) for row in objects),
        channels=(channels[0], channels[1]),
        lepton_charge=typed("lepton_charge", data.get("lepton_charge", -1), int, "an integer"),
    )


def _lepton_jets(name: str, description: str, lepton: str, flavour: int, channels) -> Layout:
    """A lepton+jets tt-bar layout: t -> b W+ -> b u d-bar, t-bar -> b-bar W- -> b-bar l- nu-bar."""
    kind = {PDG_ELECTRON: "electron", PDG_MUON: "muon"}[flavour]
    neutrino = "nubar"
    quarks = ("b", "bbar", "u", "dbar")
    return Layout(
        name=name,
        description=description,
        partons=(
            Parton(lepton, flavour, -PDG_W),
            Parton(neutrino, -(flavour + 1), -PDG_W),
            Parton("b", 5, PDG_TOP),
            Parton("bbar", -5, -PDG_TOP),
            Parton("u", 2, PDG_W),
            Parton("dbar", -1, PDG_W),
        ),
        objects=(
            DetectorObject(lepton, kind, lepton),
            DetectorObject("met", "met", neutrino),
            *(DetectorObject(f"jet{i + 1}", "jet", q) for i, q in enumerate(quarks)),
        ),
        channels=channels,
    )


#: The paper's final state: tt-bar -> e- nu_e-bar b b-bar u d-bar, exactly four jets.
EJETS = _lepton_jets(
    "ejets", "tt-bar -> e- nu_e-bar b b-bar u d-bar",
    "e-", PDG_ELECTRON, ("electron", "positron"),
)
#: The same with a muon: tt-bar -> mu- nu_mu-bar b b-bar u d-bar.
MUJETS = _lepton_jets(
    "mujets", "tt-bar -> mu- nu_mu-bar b b-bar u d-bar",
    "mu-", PDG_MUON, ("muon", "antimuon"),
)
#: The built-in layouts by name.
BUILTIN_LAYOUTS: Mapping[str, Layout] = {layout.name: layout for layout in (EJETS, MUJETS)}
#: The layout of the paper, the default of every stage.
DEFAULT_LAYOUT = EJETS

# --- the reference layout's names, for the code of the lepton+jets positions -------------
PARTONS: tuple[Parton, ...] = EJETS.partons
Z_OBJECTS: tuple[str, ...] = EJETS.z_objects
PARTON_PDG_IDS = EJETS.parton_pdg_ids()
PARTON_PARENT_PDG_IDS = EJETS.parton_parent_pdg_ids()
N_JETS = EJETS.n_jets
X_OBJECTS: tuple[str, ...] = EJETS.x_objects
N_OBJECTS = len(X_OBJECTS)
N_FEATURES = N_OBJECTS * N_COMPONENTS  # 24 floats per space
#: The parton each detector object comes from, in X order (the jets come from the four
#: quarks in some order, the MET from the neutrino): what a response of the detector to
#: the partons is relative to (`turbosim_hep.model.networks.ResponseXHead`).
X_SOURCES: tuple[str, ...] = EJETS.x_sources
#: Column names of the reference data set (``px_e-, py_e-, ..., E_dbar``).
Z_COLUMNS: tuple[str, ...] = EJETS.z_columns
#: Column names of the reference data set (``px_e-, ..., px_met, ..., E_jet4``).
X_COLUMNS: tuple[str, ...] = EJETS.x_columns
#: t -> W+ b, W+ -> u d-bar and t-bar -> W- b-bar, W- -> e- nu_e-bar, as Z positions.
TOP_DECAYS: tuple[TopDecay, ...] = EJETS.top_decays


def column_index(space: str, name: str) -> int:
    """Index of a named column (for example ``"py_b"``) in the Z or X space of ``ejets``.

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

# --- the reference layout's channels and selection ----------------------------------
#: Charge the one selected electron must carry.
ELECTRON_CHARGE = EJETS.lepton_charge

#: The channels of a layout. ``electron``: e- nu_e-bar b b-bar u d-bar, the paper's.
#: ``positron``: its charge conjugate e+ nu_e b-bar b u-bar d, mapped onto the same Z and
#: X slots by the CP mirror: each conjugate particle takes the slot of the particle it is
#: the CP image of (e+ the e- slot, nu_e the nu_e-bar slot, the b-bar of the hadronic
#: top the b slot, the b of the leptonic top the b-bar slot, u-bar the u slot, d the d-bar
#: slot; the positron the electron slot of X), and every three-momentum is reversed.
#: The detector's response is symmetric under both (it treats a particle and its
#: antiparticle alike and is symmetric under eta -> -eta, phi -> phi + pi), so the
#: model trained on the reference channel simulates the mirrored event. Every layout
#: has its two channels (``mujets``: ``muon`` and ``antimuon``).
CHANNELS: tuple[str, ...] = EJETS.channels
REFERENCE_CHANNEL = EJETS.reference_channel
#: What a user may ask for: one channel, or both.
CHANNEL_CHOICES: tuple[str, ...] = EJETS.channel_choices
#: Sign of the particle ids and of the electron charge of each channel.
CHANNEL_SIGN: Mapping[str, int] = {c: EJETS.channel_sign(c) for c in CHANNELS}


def check_channel(channel: str) -> str:
    """``channel`` if it is one of `CHANNELS`; `ArgumentError` (a ValueError) naming the
    choices otherwise."""
    return EJETS.check_channel(channel)


def channels_of(choice: str) -> tuple[str, ...]:
    """The channels of ``ejets`` a choice of `CHANNEL_CHOICES` stands for (see
    `Layout.channels_of`)."""
    return EJETS.channels_of(choice)


def parton_pdg_ids(channel: str = REFERENCE_CHANNEL) -> np.ndarray:
    """Particle ids of the six Z slots of ``ejets`` in ``channel``."""
    return EJETS.parton_pdg_ids(channel)


def parton_parent_pdg_ids(channel: str = REFERENCE_CHANNEL) -> np.ndarray:
    """Particle ids of the resonance each Z slot of ``ejets`` comes from in ``channel``."""
    return EJETS.parton_parent_pdg_ids(channel)


def electron_charge(channel: str = REFERENCE_CHANNEL) -> int:
    """Charge of the selected electron (positron) in ``channel``."""
    return EJETS.lepton_charge_of(channel)


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
SELECTION: Mapping[str, Callable[[ObjectCounts], np.ndarray]] = EJETS.selection
#: Name of the last cut: the events passing it are the selected ones.
SELECTED_CUT = EJETS.selected_cut

#: Name of the cut that requires a complete hard-process parton record.
PARTON_CUT = "parton_record"


def selection_masks(
    counts: ObjectCounts, channel: str = REFERENCE_CHANNEL
) -> dict[str, np.ndarray]:
    """Cumulative masks of the ``ejets`` selection (see `Layout.selection_masks`)."""
    return EJETS.selection_masks(counts, channel)


def load_layout(path: str | os.PathLike) -> Layout:
    """A user's layout from a TOML file (the keys of `Layout.to_dict`).

    Parameters
    ----------
    path : str or os.PathLike
        The file; ``docs/layouts.md`` describes its keys with a worked example.

    Raises
    ------
    turbosim_hep.errors.InputError
        If the file is missing, not TOML, or not a valid layout: one line naming the
        file, the key and what is wrong.
    """
    read_head(path, "layout file")
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"not a TOML file ({err})") from None
    try:
        return Layout.from_dict(data)
    except LayoutError as err:
        raise InputError(path, str(err)) from None


def resolve_layout(layout: Layout | str | os.PathLike) -> Layout:
    """A `Layout` from itself, a built-in name (`BUILTIN_LAYOUTS`) or a TOML file.

    Raises
    ------
    ArgumentError
        For a name that is neither built in nor a file.
    turbosim_hep.errors.InputError
        For a layout file that cannot be used.
    """
    if isinstance(layout, Layout):
        return layout
    name = os.fspath(layout)
    if name in BUILTIN_LAYOUTS:
        return BUILTIN_LAYOUTS[name]
    if name.endswith(".toml") or os.path.sep in name or os.path.exists(name):
        return load_layout(name)
    raise ArgumentError(
        "layout",
        f"unknown layout {name!r}; choose from {', '.join(BUILTIN_LAYOUTS)} or give a "
        ".toml layout file",
    )
