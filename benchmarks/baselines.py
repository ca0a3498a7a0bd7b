"""Lookup baselines of a fast detector simulation and of unfolding, learned from paired
(Z, X) events.

What a physicist would try before a learned simulator, to judge one against
(``benchmarks/bench_fidelity.py``):

- `BinnedSmearing`: what Delphes does. Each reconstructed object is its parton times a
  response (`measure_responses`): for each quark the ΔR-matched jet's log pT ratio,
  Δη and Δφ, the same for the electron, and the MET's (px, py) residual to the
  neutrino's pT. A simulated object takes the response of a training object drawn at
  random from the same bin, per object kind (b quarks, light quarks, the electron: bins
  of the parton's pT and |η|; the MET: bins of the neutrino's pT and of the quarks'
  scalar pT sum), the three responses of one object jointly; objects independent.
- `NearestNeighbourResponse`: each event takes the whole set of responses of the training
  event whose partons are closest (standardised log pT and η of the six partons), and
  so keeps the detector's resolution and the correlations between one event's objects.
- `NearestNeighbourPosterior` (unfolding, ``benchmarks/bench_unfolding.py``): the
  partons of the K training events whose detector objects are closest, as K posterior
  samples of each detector event's partons.

The detector baselines build X in the layout of `turbosim_hep.layout` (massless objects,
the MET with pz = 0 and E = |pT|, jets in decreasing pT) and draw from a seeded NumPy
generator; all run vectorised: no per-event Python.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

from turbosim_hep import layout
from turbosim_hep.kinematics import p4_from_ptetaphim, ptetaphim_from_p4

#: Particle id of the b quark (the other quarks of Z are light).
PDG_B = 5
#: The quarks of Z, in Z order (b, b-bar, u, d-bar); each is matched to one jet.
QUARKS: tuple[str, ...] = tuple(p.name for p in layout.PARTONS if abs(p.pdg_id) <= layout.PDG_TOP)
#: Every way of giving the four jets to the four quarks: (24, 4) jet index per quark.
PERMUTATIONS: np.ndarray = np.array(list(itertools.permutations(range(layout.N_JETS))))

_ELECTRON_Z = layout.Z_OBJECTS.index("e-")
_NEUTRINO_Z = layout.Z_OBJECTS.index("nubar")
_QUARKS_Z = np.array([layout.Z_OBJECTS.index(name) for name in QUARKS])
_ELECTRON_X = layout.X_OBJECTS.index("e-")
_MET_X = layout.X_OBJECTS.index("met")
_FIRST_JET_X = layout.X_OBJECTS.index("jet1")
_JETS_X = np.arange(_FIRST_JET_X, _FIRST_JET_X + layout.N_JETS)
#: Jet kinds of the binned smearing: the positions in `QUARKS` of each kind.
_QUARK_KINDS: dict[str, np.ndarray] = {
    "b quarks": np.flatnonzero([abs(layout.PARTONS[i].pdg_id) == PDG_B for i in _QUARKS_Z]),
    "light quarks": np.flatnonzero([abs(layout.PARTONS[i].pdg_id) != PDG_B for i in _QUARKS_Z]),
}


@dataclass(frozen=True)
class Responses:
    """The detector's response to the partons of n events.

    Attributes
    ----------
    jets : numpy.ndarray
        float64 (n, 4, 3): for each quark of `QUARKS`, its matched jet's log(pT jet /
        pT quark), η jet - η quark and φ jet - φ quark (in [-π, π)).
    electron : numpy.ndarray
        float64 (n, 3): the same for the reconstructed electron and the parton electron.
    met : numpy.ndarray
        float64 (n, 2): MET (px, py) minus the neutrino's (px, py).
    """

    jets: np.ndarray
    electron: np.ndarray
    met: np.ndarray

    def take(self, rows: np.ndarray) -> Responses:
        """The responses of events ``rows``."""
        return Responses(self.jets[rows], self.electron[rows], self.met[rows])


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Angles mapped into [-π, π)."""
    return np.mod(phi + np.pi, 2.0 * np.pi) - np.pi


def match_jets(
    quark_eta: np.ndarray, quark_phi: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray
) -> np.ndarray:
    """The jet of each quark: of the 24 one-to-one matchings, the one of least total ΔR.

    Parameters
    ----------
    quark_eta, quark_phi : numpy.ndarray
        (n, 4) η and φ of the four quarks.
    jet_eta, jet_phi : numpy.ndarray
        (n, 4) η and φ of the four jets.

    Returns
    -------
    numpy.ndarray
        (n, 4) index of the jet (0 to 3) matched to each quark.
    """
    d_eta = quark_eta[:, :, np.newaxis] - jet_eta[:, np.newaxis, :]
    d_phi = wrap_phi(quark_phi[:, :, np.newaxis] - jet_phi[:, np.newaxis, :])
    delta_r = np.hypot(d_eta, d_phi)  # (n, quark, jet)
    total = delta_r[:, np.arange(layout.N_JETS), PERMUTATIONS].sum(axis=-1)  # (n, 24)
    return PERMUTATIONS[np.argmin(total, axis=1)]


def _objects(p4: np.ndarray) -> np.ndarray:
    """float64 (n, 6, 4) four-momenta of (n, 24) Z or X arrays."""
    return np.asarray(p4, dtype=np.float64).reshape(len(p4), layout.N_OBJECTS, layout.N_COMPONENTS)


def _pt_eta_phi(p4: np.ndarray) -> np.ndarray:
    """(..., 3) pT, η, φ of (..., 4) four-momenta."""
    pt, eta, phi, _ = ptetaphim_from_p4(p4)
    return np.stack([pt, eta, phi], axis=-1)


def _response(detector: np.ndarray, parton: np.ndarray) -> np.ndarray:
    """(..., 3) log pT ratio, Δη, Δφ of (..., 3) detector pT, η, φ against the parton's."""
    return np.stack(
        [
            np.log(detector[..., 0] / parton[..., 0]),
            detector[..., 1] - parton[..., 1],
            wrap_phi(detector[..., 2] - parton[..., 2]),
        ],
        axis=-1,
    )


def measure_responses(z: np.ndarray, x: np.ndarray) -> Responses:
    """The responses of paired events (each quark's jet found by `match_jets`).

    Parameters
    ----------
    z, x : numpy.ndarray
        (n, 24) partons and detector objects in the layout of `turbosim_hep.layout`.

    Returns
    -------
    Responses
    """
    partons, objects = _objects(z), _objects(x)
    quarks = _pt_eta_phi(partons[:, _QUARKS_Z])
    jets = _pt_eta_phi(objects[:, _JETS_X])
    matched = match_jets(quarks[..., 1], quarks[..., 2], jets[..., 1], jets[..., 2])
    jets = np.take_along_axis(jets, matched[..., np.newaxis], axis=1)
    electron = _response(
        _pt_eta_phi(objects[:, _ELECTRON_X]), _pt_eta_phi(partons[:, _ELECTRON_Z])
    )
    met = objects[:, _MET_X, :2] - partons[:, _NEUTRINO_Z, :2]
    return Responses(_response(jets, quarks), electron, met)


def _apply(parton: np.ndarray, response: np.ndarray) -> np.ndarray:
    """(..., 4) massless four-momenta: (..., 3) parton pT, η, φ with a (..., 3) response."""
    return p4_from_ptetaphim(
        parton[..., 0] * np.exp(response[..., 0]),
        parton[..., 1] + response[..., 1],
        wrap_phi(parton[..., 2] + response[..., 2]),
    )


def apply_responses(z: np.ndarray, responses: Responses) -> np.ndarray:
    """Detector objects of partons given their responses, in the X layout.

    Parameters
    ----------
    z : numpy.ndarray
        (n, 24) partons.
    responses : Responses
        One set per event.

    Returns
    -------
    numpy.ndarray
        float32 (n, 24): massless electron and jets, the MET with pz = 0 and E = |pT|,
        jets in decreasing pT.
    """
    partons = _objects(z)
    n = len(partons)
    jets = _apply(_pt_eta_phi(partons[:, _QUARKS_Z]), responses.jets)
    order = np.argsort(-np.hypot(jets[..., 0], jets[..., 1]), axis=1, kind="stable")
    objects = np.zeros((n, layout.N_OBJECTS, layout.N_COMPONENTS))
    objects[:, _JETS_X] = np.take_along_axis(jets, order[..., np.newaxis], axis=1)
    objects[:, _ELECTRON_X] = _apply(_pt_eta_phi(partons[:, _ELECTRON_Z]), responses.electron)
    met = partons[:, _NEUTRINO_Z, :2] + responses.met
    objects[:, _MET_X, :2] = met
    objects[:, _MET_X, 3] = np.hypot(met[:, 0], met[:, 1])
    return objects.reshape(n, layout.N_FEATURES).astype(np.float32)


@dataclass(frozen=True)
class _BinnedTable:
    """Values of training objects, sorted into equal-population bins of two variables.

    The first variable is cut at its quantiles; each of its bins is cut again at the
    quantiles of the second variable inside it, so that every bin holds about the same
    number of training objects, none is empty.
    """

    first_edges: np.ndarray  # (bins1 - 1,) inner edges of the first variable
    second_edges: np.ndarray  # (bins1, bins2 - 1) inner edges of the second, per first bin
    starts: np.ndarray  # (bins1 * bins2 + 1,) where each bin's values start in `values`
    values: np.ndarray  # (m, k) the training values, bin by bin

    @classmethod
    def fit(
        cls, first: np.ndarray, second: np.ndarray, values: np.ndarray, bins: tuple[int, int]
    ) -> _BinnedTable:
        """Bin ``values`` (m, k) by their objects' ``first`` and ``second`` variables (m,)."""
        n, (bins1, bins2) = len(first), bins
        if n < bins1 * bins2:
            raise ValueError(f"{n} training objects cannot fill {bins1} x {bins2} bins")
        rank = np.empty(n, dtype=np.intp)
        rank[np.argsort(first, kind="stable")] = np.arange(n)
        first_bin = rank * bins1 // n
        order = np.lexsort((second, first_bin))
        counts = np.bincount(first_bin, minlength=bins1)
        first_sorted = first_bin[order]
        rank_inside = np.arange(n) - (np.cumsum(counts) - counts)[first_sorted]
        cell = first_sorted * bins2 + rank_inside * bins2 // counts[first_sorted]
        starts = np.searchsorted(cell, np.arange(bins1 * bins2 + 1))
        lower_first = np.sort(first)[(np.arange(bins1) * n + bins1 - 1) // bins1]
        lower_second = second[order][starts[:-1]].reshape(bins1, bins2)
        return cls(lower_first[1:], lower_second[:, 1:], starts, values[order])

    def draw(
        self, first: np.ndarray, second: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """For each object (variables ``first``, ``second``), the values of a random
        training object of its bin."""
        first_bin = np.searchsorted(self.first_edges, first, side="right")
        edges = self.second_edges[first_bin]
        cell = first_bin * (edges.shape[1] + 1) + np.sum(second[:, np.newaxis] >= edges, axis=1)
        start, count = self.starts[cell], np.diff(self.starts)[cell]
        return self.values[start + (rng.random(len(cell)) * count).astype(np.intp)]


def _quark_variables(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4, 3) pT, η, φ of the quarks and (n,) their scalar pT sum."""
    quarks = _pt_eta_phi(_objects(z)[:, _QUARKS_Z])
    return quarks, quarks[..., 0].sum(axis=1)


class BinnedSmearing:
    """Responses drawn object by object from their distribution in bins of the parton.

    Parameters
    ----------
    bins : tuple of int
        Equal-population bins of the first variable (the parton's pT, the neutrino's pT
        for the MET) and, inside each, of the second (the parton's |η|, the quarks'
        scalar pT sum for the MET).
    """

    def __init__(self, bins: tuple[int, int] = (10, 5)):
        self.bins = bins
        self.tables: dict[str, _BinnedTable] = {}

    def fit(self, z: np.ndarray, x: np.ndarray) -> BinnedSmearing:
        """Learn the binned responses of paired (n, 24) events; returns itself."""
        responses = measure_responses(z, x)
        quarks, activity = _quark_variables(z)
        for kind, slots in _QUARK_KINDS.items():
            parton = quarks[:, slots].reshape(-1, 3)
            self.tables[kind] = _BinnedTable.fit(
                parton[:, 0], np.abs(parton[:, 1]), responses.jets[:, slots].reshape(-1, 3),
                self.bins,
            )
        electron = _pt_eta_phi(_objects(z)[:, _ELECTRON_Z])
        self.tables["electron"] = _BinnedTable.fit(
            electron[:, 0], np.abs(electron[:, 1]), responses.electron, self.bins
        )
        self.tables["met"] = _BinnedTable.fit(
            _neutrino_pt(z), activity, responses.met, self.bins
        )
        return self

    def simulate(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 (n, 24) detector objects of (n, 24) partons."""
        quarks, activity = _quark_variables(z)
        jets = np.empty(quarks.shape)
        for kind, slots in _QUARK_KINDS.items():
            parton = quarks[:, slots].reshape(-1, 3)
            drawn = self.tables[kind].draw(parton[:, 0], np.abs(parton[:, 1]), rng)
            jets[:, slots] = drawn.reshape(len(z), len(slots), 3)
        electron = _pt_eta_phi(_objects(z)[:, _ELECTRON_Z])
        responses = Responses(
            jets,
            self.tables["electron"].draw(electron[:, 0], np.abs(electron[:, 1]), rng),
            self.tables["met"].draw(_neutrino_pt(z), activity, rng),
        )
        return apply_responses(z, responses)


def _neutrino_pt(z: np.ndarray) -> np.ndarray:
    """(n,) transverse momentum of the neutrino."""
    neutrino = _objects(z)[:, _NEUTRINO_Z]
    return np.hypot(neutrino[:, 0], neutrino[:, 1])


def parton_features(z: np.ndarray) -> np.ndarray:
    """(n, 12) log pT and η of the six partons: the distance of `NearestNeighbourResponse`."""
    kinematics = _pt_eta_phi(_objects(z))
    return np.concatenate([np.log(kinematics[..., 0]), kinematics[..., 1]], axis=1)


class NearestNeighbourResponse:
    """Each event takes the whole set of responses of its nearest training event.

    Parameters
    ----------
    neighbours : int
        The responses come from one of the ``neighbours`` nearest training events, drawn
        at random (1: always the nearest).
    """

    def __init__(self, neighbours: int = 1):
        self.neighbours = neighbours
        self.index = NearestNeighbors(n_neighbors=neighbours)

    def fit(self, z: np.ndarray, x: np.ndarray) -> NearestNeighbourResponse:
        """Learn the responses of paired (n, 24) events; returns itself."""
        features = parton_features(z)
        self.mean, self.scale = features.mean(axis=0), features.std(axis=0)
        self.index.fit((features - self.mean) / self.scale)
        self.responses = measure_responses(z, x)
        return self

    def simulate(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 (n, 24) detector objects of (n, 24) partons."""
        features = (parton_features(z) - self.mean) / self.scale
        _, nearest = self.index.kneighbors(features)
        chosen = nearest[np.arange(len(z)), rng.integers(0, self.neighbours, len(z))]
        return apply_responses(z, self.responses.take(chosen))


def rotate_phi(p4: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(..., 4) four-momenta rotated about the beam axis by ``angle`` (broadcast to
    ``p4.shape[:-1]``)."""
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = np.array(p4, dtype=np.float64, copy=True)
    rotated[..., 0] = p4[..., 0] * cos - p4[..., 1] * sin
    rotated[..., 1] = p4[..., 0] * sin + p4[..., 1] * cos
    return rotated


def detector_features(x: np.ndarray) -> np.ndarray:
    """(n, 17) features of detector events, blind to a rotation about the beam axis.

    log pT and η of the electron and of the four jets (in pT order), log pT of the MET,
    and cos and sin of the MET's and each jet's azimuth relative to the electron's: the
    distance of `NearestNeighbourPosterior`.
    """
    objects = _pt_eta_phi(_objects(x))
    relative = wrap_phi(objects[..., 2] - objects[:, _ELECTRON_X, np.newaxis, 2])
    others = np.concatenate([[_MET_X], _JETS_X])
    with_eta = np.concatenate([[_ELECTRON_X], _JETS_X])
    return np.concatenate(
        [
            np.log(objects[:, with_eta, 0]),
            np.log(objects[:, [_MET_X], 0]),
            objects[:, with_eta, 1],
            np.cos(relative[:, others]),
            np.sin(relative[:, others]),
        ],
        axis=1,
    )


class NearestNeighbourPosterior:
    """Posterior samples of the partons of detector events: the partons of the nearest
    training events.

    For each detector event, the ``neighbours`` training events whose detector objects
    are closest (`detector_features`, standardised; Euclidean distance) give one parton
    event each, rotated about the beam axis by the difference of the two electrons'
    azimuths (the physics is symmetric under that rotation, so the neighbours need not
    share the event's orientation). Sample 0 is the nearest. Every sample is a real tt-bar
    event, on its W and top mass shells.

    Parameters
    ----------
    neighbours : int
        K, the samples per event.
    """

    def __init__(self, neighbours: int = 50):
        self.neighbours = neighbours
        self.index = NearestNeighbors(n_neighbors=neighbours)

    def fit(self, z: np.ndarray, x: np.ndarray) -> NearestNeighbourPosterior:
        """Learn from paired (n, 24) partons and detector objects; returns itself."""
        features = detector_features(x)
        self.mean, self.scale = features.mean(axis=0), features.std(axis=0)
        self.index.fit((features - self.mean) / self.scale)
        self.z = _objects(z)
        self.electron_phi = _electron_phi(x)
        return self

    def sample(self, x: np.ndarray) -> np.ndarray:
        """float32 (n, K, 24) parton samples of (n, 24) detector events."""
        _, nearest = self.index.kneighbors((detector_features(x) - self.mean) / self.scale)
        angle = _electron_phi(x)[:, np.newaxis] - self.electron_phi[nearest]  # (n, K)
        partons = rotate_phi(self.z[nearest], angle[..., np.newaxis])  # (n, K, 6, 4)
        return partons.reshape(len(x), self.neighbours, layout.N_FEATURES).astype(np.float32)


def _electron_phi(x: np.ndarray) -> np.ndarray:
    """(n,) azimuth of the reconstructed electron."""
    return _pt_eta_phi(_objects(x)[:, _ELECTRON_X])[:, 2]


__all__ = [
    "BinnedSmearing",
    "NearestNeighbourPosterior",
    "NearestNeighbourResponse",
    "Responses",
    "apply_responses",
    "detector_features",
    "match_jets",
    "measure_responses",
    "parton_features",
    "rotate_phi",
]
