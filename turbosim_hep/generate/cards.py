"""The numbers of a Delphes detector card, in one readable place.

A `DetectorCard` holds what `turbosim_hep.generate.detector.ParametricDetector` needs
from a Delphes card: the tracker volume, the tracking efficiencies and momentum
resolutions, the calorimeter tower grids, energy fractions and resolutions, the
electron, muon and photon efficiencies and isolation, the jet definition and the jet
energy scale. Formulas are written as NumPy functions that read like the card's
``EfficiencyFormula`` / ``ResolutionFormula`` text; grids are built by the same loops as
the card's Tcl.

`OTUS_TTBAR` is ``delphes_card_otus_ttbar.dat`` (the Delphes 3.4.1 CMS card the
reference data set was made with). To add another card, write another `DetectorCard`
and register it in `CARDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: f(pt, eta) -> efficiency or relative resolution, vectorised over NumPy arrays.
PtEtaFormula = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: f(eta, energy) -> absolute energy resolution (GeV), vectorised.
EtaEnergyFormula = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TowerGrid:
    """An (eta, phi) tower grid in the way Delphes' ``SimpleCalorimeter`` defines it.

    ``eta_edges`` are the sorted upper eta edges of the eta rings (a particle at eta
    belongs to ring ``i`` when ``eta_edges[i-1] < eta <= eta_edges[i]``); ring ``i`` has
    ``n_phi[i]`` equal phi bins from -pi to pi. Ring 0 is never used (it has no lower
    edge), exactly as in Delphes.
    """

    eta_edges: np.ndarray
    n_phi: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        """First tower index of each eta ring (towers are numbered ring by ring)."""
        return np.concatenate([[0], np.cumsum(self.n_phi)[:-1]])

    @property
    def n_towers(self) -> int:
        """Number of tower indices the grid uses."""
        return int(np.sum(self.n_phi))


@dataclass(frozen=True)
class Calorimeter:
    """One ``SimpleCalorimeter`` module: grid, thresholds and resolution."""

    grid: TowerGrid
    energy_min: float
    significance_min: float
    resolution: EtaEnergyFormula
    smear_tower_center: bool = True


@dataclass(frozen=True)
class Isolation:
    """An ``Isolation`` module: sum of the pT of energy-flow objects with pT > ``pt_min``
    within ``delta_r_max`` of the candidate, divided by its pT, must be <= ``pt_ratio_max``."""

    delta_r_max: float
    pt_min: float
    pt_ratio_max: float


@dataclass(frozen=True)
class DetectorCard:
    """Everything the parametric detector takes from one Delphes card.

    Energy fractions map an absolute PDG id to its (ECAL, HCAL) share; ids not listed get
    ``default_fraction``.
    """

    name: str
    source: str
    # ParticlePropagator
    radius: float  # m
    half_length: float  # m
    bz: float  # T
    # tracking
    tracking_efficiency: Mapping[str, PtEtaFormula]  # "hadron", "electron", "muon"
    momentum_resolution: Mapping[str, PtEtaFormula]  # relative pT resolution
    # calorimeters
    ecal: Calorimeter
    hcal: Calorimeter
    energy_fractions: Mapping[int, tuple[float, float]]
    default_fraction: tuple[float, float]
    # identification
    electron_efficiency: PtEtaFormula
    muon_efficiency: PtEtaFormula
    photon_efficiency: PtEtaFormula
    electron_isolation: Isolation
    muon_isolation: Isolation
    photon_isolation: Isolation
    # jets
    jet_r: float
    jet_pt_min: float
    jet_energy_scale: PtEtaFormula
    invisible: tuple[int, ...] = field(default=(12, 14, 16))


# --- the OTUS tt-bar card (Delphes 3.4.1 CMS card) ---------------------------------------


def _between(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``lo < x <= hi`` as a float mask, the way the card writes its bins."""
    return ((x > lo) & (x <= hi)).astype(np.float64)


def _hadron_tracking(pt, eta):
    a = np.abs(eta)
    return (
        (a <= 1.5) * _between(pt, 0.1, 1.0) * 0.70
        + (a <= 1.5) * (pt > 1.0) * 0.95
        + _between(a, 1.5, 2.5) * _between(pt, 0.1, 1.0) * 0.60
        + _between(a, 1.5, 2.5) * (pt > 1.0) * 0.85
    )


def _electron_tracking(pt, eta):
    a = np.abs(eta)
    return (
        (a <= 1.5) * _between(pt, 0.1, 1.0) * 0.73
        + (a <= 1.5) * _between(pt, 1.0, 1.0e2) * 0.95
        + (a <= 1.5) * (pt > 1.0e2) * 0.99
        + _between(a, 1.5, 2.5) * _between(pt, 0.1, 1.0) * 0.50
        + _between(a, 1.5, 2.5) * _between(pt, 1.0, 1.0e2) * 0.83
        + _between(a, 1.5, 2.5) * (pt > 1.0e2) * 0.90
    )


def _muon_tracking(pt, eta):
    a = np.abs(eta)
    return (
        (a <= 1.5) * _between(pt, 0.1, 1.0) * 0.75
        + (a <= 1.5) * _between(pt, 1.0, 1.0e3) * 0.99
        + (a <= 1.5) * (pt > 1.0e3) * (0.99 * np.exp(0.5 - pt * 5.0e-4))
        + _between(a, 1.5, 2.5) * _between(pt, 0.1, 1.0) * 0.70
        + _between(a, 1.5, 2.5) * _between(pt, 1.0, 1.0e3) * 0.98
        + _between(a, 1.5, 2.5) * (pt > 1.0e3) * (0.98 * np.exp(0.5 - pt * 5.0e-4))
    )


def _tracker_resolution(c0: float, c1: float, c2: float, s0: float, s1: float, s2: float):
    """Relative pT resolution sqrt(c^2 + pt^2 s^2) in the three |eta| bins 0.5/1.5/2.5."""

    def formula(pt, eta):
        a = np.abs(eta)
        on = pt > 0.1
        return on * (
            (a <= 0.5) * np.sqrt(c0**2 + pt**2 * s0**2)
            + _between(a, 0.5, 1.5) * np.sqrt(c1**2 + pt**2 * s1**2)
            + _between(a, 1.5, 2.5) * np.sqrt(c2**2 + pt**2 * s2**2)
        )

    return formula


def _ecal_resolution(eta, energy):
    a = np.abs(eta)
    core = np.sqrt(energy**2 * 0.008**2 + energy * 0.11**2 + 0.40**2)
    return (
        (a <= 1.5) * (1 + 0.64 * eta**2) * core
        + _between(a, 1.5, 2.5) * (2.16 + 5.6 * (a - 2) ** 2) * core
        + _between(a, 2.5, 5.0) * np.sqrt(energy**2 * 0.107**2 + energy * 2.08**2)
    )


def _hcal_resolution(eta, energy):
    a = np.abs(eta)
    return (a <= 3.0) * np.sqrt(energy**2 * 0.050**2 + energy * 1.50**2) + _between(
        a, 3.0, 5.0
    ) * np.sqrt(energy**2 * 0.130**2 + energy * 2.70**2)


def _identification(eta_max_2: float, eff_2: float):
    """Efficiency 0.95 for |eta| <= 1.5 and ``eff_2`` up to ``eta_max_2``, pT > 10 GeV."""

    def formula(pt, eta):
        a = np.abs(eta)
        on = pt > 10.0
        return on * ((a <= 1.5) * 0.95 + _between(a, 1.5, eta_max_2) * eff_2)

    return formula


def _jet_energy_scale(pt, eta):
    return np.sqrt((2.5 - 0.15 * np.abs(eta)) ** 2 / pt + 1.0)


def _grid(rings: list[tuple[list[float], int]]) -> TowerGrid:
    """A `TowerGrid` from (eta edges, phi bins) groups, as the card's ``add EtaPhiBins``."""
    edges: dict[float, int] = {}
    for etas, n_phi in rings:
        for eta in etas:
            edges[round(eta, 6)] = n_phi
    eta_edges = np.array(sorted(edges))
    return TowerGrid(eta_edges=eta_edges, n_phi=np.array([edges[e] for e in eta_edges]))


_FORWARD_ECAL = [-5, -4.7, -4.525, -4.35, -4.175, -4, -3.825, -3.65, -3.475, -3.3, -3.125,
                 -2.958, 3.125, 3.3, 3.475, 3.65, 3.825, 4, 4.175, 4.35, 4.525, 4.7, 5]
_ECAL_GRID = _grid([
    ([i * 0.0174 for i in range(-85, 87)], 360),
    ([-2.958 + i * 0.0174 for i in range(1, 85)], 360),
    ([1.4964 + i * 0.0174 for i in range(1, 85)], 360),
    (_FORWARD_ECAL, 36),
])
_HCAL_BARREL = [-1.566, -1.479, -1.392, -1.305, -1.218, -1.131, -1.044, -0.957, -0.87, -0.783,
                -0.696, -0.609, -0.522, -0.435, -0.348, -0.261, -0.174, -0.087, 0, 0.087,
                0.174, 0.261, 0.348, 0.435, 0.522, 0.609, 0.696, 0.783, 0.87, 0.957, 1.044,
                1.131, 1.218, 1.305, 1.392, 1.479, 1.566, 1.653]
_HCAL_ENDCAP = [-4.35, -4.175, -4, -3.825, -3.65, -3.475, -3.3, -3.125, -2.95, -2.868, -2.65,
                -2.5, -2.322, -2.172, -2.043, -1.93, -1.83, -1.74, -1.653, 1.74, 1.83, 1.93,
                2.043, 2.172, 2.322, 2.5, 2.65, 2.868, 2.95, 3.125, 3.3, 3.475, 3.65, 3.825,
                4, 4.175, 4.35, 4.525]
_HCAL_GRID = _grid([(_HCAL_BARREL, 72), (_HCAL_ENDCAP, 36), ([-5, -4.7, -4.525, 4.7, 5], 18)])

OTUS_TTBAR = DetectorCard(
    name="otus_ttbar",
    source="delphes_card_otus_ttbar.dat (Delphes 3.4.1 CMS card)",
    radius=1.29,
    half_length=3.00,
    bz=3.8,
    tracking_efficiency={
        "hadron": _hadron_tracking,
        "electron": _electron_tracking,
        "muon": _muon_tracking,
    },
    momentum_resolution={
        "hadron": _tracker_resolution(0.06, 0.10, 0.25, 1.3e-3, 1.7e-3, 3.1e-3),
        "electron": _tracker_resolution(0.03, 0.05, 0.15, 1.3e-3, 1.7e-3, 3.1e-3),
        "muon": _tracker_resolution(0.01, 0.015, 0.025, 1.0e-4, 1.5e-4, 3.5e-4),
    },
    ecal=Calorimeter(_ECAL_GRID, energy_min=0.5, significance_min=2.0, resolution=_ecal_resolution),
    hcal=Calorimeter(_HCAL_GRID, energy_min=1.0, significance_min=1.0, resolution=_hcal_resolution),
    # |PDG id| -> (ECAL, HCAL) energy fraction; neutrinos, muons and neutralinos deposit nothing.
    energy_fractions={
        11: (1.0, 0.0), 22: (1.0, 0.0), 111: (1.0, 0.0),
        12: (0.0, 0.0), 13: (0.0, 0.0), 14: (0.0, 0.0), 16: (0.0, 0.0),
        1000022: (0.0, 0.0), 1000023: (0.0, 0.0), 1000025: (0.0, 0.0),
        1000035: (0.0, 0.0), 1000045: (0.0, 0.0),
        310: (0.3, 0.7), 3122: (0.3, 0.7),
    },
    default_fraction=(0.0, 1.0),
    electron_efficiency=_identification(2.5, 0.85),
    muon_efficiency=_identification(2.4, 0.95),
    photon_efficiency=_identification(2.5, 0.85),
    electron_isolation=Isolation(delta_r_max=0.5, pt_min=0.5, pt_ratio_max=0.12),
    muon_isolation=Isolation(delta_r_max=0.5, pt_min=0.5, pt_ratio_max=0.25),
    photon_isolation=Isolation(delta_r_max=0.5, pt_min=0.5, pt_ratio_max=0.12),
    jet_r=0.5,
    jet_pt_min=20.0,
    jet_energy_scale=_jet_energy_scale,
)

#: Cards by name (``--card``).
CARDS: Mapping[str, DetectorCard] = {OTUS_TTBAR.name: OTUS_TTBAR}


def get_card(name: str) -> DetectorCard:
    """The card called ``name``; raises KeyError listing the known cards."""
    try:
        return CARDS[name]
    except KeyError:
        raise KeyError(f"unknown detector card {name!r} (known: {', '.join(CARDS)})") from None
