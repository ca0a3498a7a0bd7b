"""Vectorised tt-bar reconstruction of the semileptonic channel.

From one electron, the missing transverse momentum and four jets, as in the validation
of Quétant et al., "Turbo-Sim: a generalised generative model with a physical latent
space", NeurIPS ML4PS 2021:

1. the neutrino takes px, py from the MET and the pz that puts the electron-neutrino
   system on the W mass (`turbosim_hep.layout.M_W`), the root of smaller |pz|, or the
   real part when the roots are complex; its energy is |p|;
2. of the 12 ways to give one jet to the leptonic top, two to the hadronic W and one to
   the hadronic top (`turbosim_hep.layout.ASSIGNMENTS`), the one minimising
   ``((m_t_lep - M_TOP)/5)^2 + ((m_W_had - M_W)/10)^2 + ((m_t_had - M_TOP)/15)^2``
   is kept;
3. the observables `OBSERVABLES` are computed from that assignment.

All 12 assignments of all events are evaluated at once (no per-event Python). Two
entry points:

- `reconstruct` takes the fixed (n, 24) X array of `turbosim_hep.layout` (what the
  readers, the model and `turbosim_hep.validation.processor` use);
- `reconstruct_objects` takes awkward arrays of `vector` Lorentz vectors in any
  coordinates, for instance coffea NanoEvents collections; vector converts them to
  (px, py, pz, E).

The four-vector sums and masses themselves run in plain NumPy on (4, n, 12) component
arrays, in blocks of `BLOCK_SIZE` events: the same arithmetic on vector's awkward
backend gives identical numbers, slower (``benchmarks/bench_reconstruction.py`` times
both).

This module knows nothing of files or of torch: arrays in, arrays out. The training's
differentiable mass features (`turbosim_hep.model.masses`) hold the torch twin of the
neutrino solution and of the assignment choice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import awkward as ak
import numpy as np

from turbosim_hep import layout


@dataclass(frozen=True)
class Observable:
    """A histogrammed quantity: its key, axis label (with unit), range and space.

    The one type of every quantity the validation histograms: the X and Z features
    (`turbosim_hep.validation.quantities`) and the reconstructed `OBSERVABLES`.

    Attributes
    ----------
    name : str
        Key of the quantity (``"m_tt"``, ``"x_E_jet1"``).
    label : str
        Axis label with its unit (matplotlib mathtext).
    range : tuple of float
        Histogram range.
    space : {"x", "z", "reco"}
        Detector-level feature, parton-level feature, or reconstructed from the
        detector-level objects.
    """

    name: str
    label: str
    range: tuple[float, float]
    space: str


#: The reconstructed observables, in report order.
OBSERVABLES: tuple[Observable, ...] = (
    Observable("m_tt", r"$m_{t\bar{t}}$ [GeV]", (250.0, 1500.0), "reco"),
    Observable("m_W_had", r"$m_{W}^{had}$ [GeV]", (0.0, 250.0), "reco"),
    Observable("m_t_had", r"$m_{t}^{had}$ [GeV]", (50.0, 400.0), "reco"),
    Observable("m_W_lep", r"$m_{W}^{lep}$ [GeV]", (0.0, 250.0), "reco"),
    Observable("m_t_lep", r"$m_{t}^{lep}$ [GeV]", (50.0, 400.0), "reco"),
    Observable("pt_t_had", r"$p_{T}^{t,had}$ [GeV]", (0.0, 600.0), "reco"),
    Observable("pt_t_lep", r"$p_{T}^{t,lep}$ [GeV]", (0.0, 600.0), "reco"),
)
#: Their names (the keys of `reconstruct`'s result).
OBSERVABLE_NAMES: tuple[str, ...] = tuple(o.name for o in OBSERVABLES)


def neutrino_pz(
    lepton: np.ndarray, met_px: np.ndarray, met_py: np.ndarray, m_w: float = layout.M_W
) -> np.ndarray:
    """Longitudinal momentum of the neutrino from the W-mass constraint.

    Solves ``(p_lepton + p_nu)^2 = m_w^2`` for a massless neutrino with transverse
    momentum (met_px, met_py). Of the two roots the one of smaller |pz| is returned;
    when the roots are complex, their common real part.

    `turbosim_hep.model.masses.neutrino_pz` is the same solution in torch, for the
    training loss (differentiable, on the training device); this one serves the
    analysis, which must not need torch. ``tests/test_physics.py`` checks that they agree.

    Parameters
    ----------
    lepton : numpy.ndarray
        Shape (n, 4): (px, py, pz, E) of the charged lepton (any mass).
    met_px, met_py : numpy.ndarray
        Shape (n,): the missing transverse momentum.
    m_w : float
        W mass in GeV.

    Returns
    -------
    numpy.ndarray
        float64 (n,) neutrino pz; NaN for a lepton without transverse momentum (a
        generated one can have it), which has no solution.
    """
    lepton = np.asarray(lepton, dtype=np.float64)
    px, py, pz, energy = (lepton[:, i] for i in range(4))
    met_px = np.asarray(met_px, dtype=np.float64)
    met_py = np.asarray(met_py, dtype=np.float64)
    m2_lepton = energy**2 - px**2 - py**2 - pz**2
    # E_l E_nu - pz_l pz_nu = k, with k from the transverse parts and the two masses.
    k = 0.5 * (m_w**2 - m2_lepton) + px * met_px + py * met_py
    a = energy**2 - pz**2  # > 0 for a time-like lepton with pT > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = k * pz / a
        discriminant = (k * pz) ** 2 - a * (energy**2 * (met_px**2 + met_py**2) - k**2)
        half_width = np.sqrt(np.maximum(discriminant, 0.0)) / a
        # The root closer to zero: move from the centre towards zero by the half width.
        pz_nu = centre - np.copysign(half_width, centre)
    return np.where(a > 0, pz_nu, np.nan)


#: Events per block of the reconstruction: (4, block, 12) float64 temporaries stay
#: within the caches; larger blocks are memory-bound and slower.
BLOCK_SIZE = 32_768


def reconstruct_objects(electron, met, jets, *, return_assignment: bool = False) -> dict:
    """Reconstruct the tt-bar system from `vector` Lorentz vectors (awkward arrays).

    Parameters
    ----------
    electron : awkward.Array
        (n,) Momentum4D vectors of the electron, in any coordinates vector understands
        (for example a coffea ``events.Electron[:, 0]``).
    met : awkward.Array
        (n,) vectors with ``px`` and ``py`` (Momentum2D or 4D): the missing transverse
        momentum. coffea's Delphes ``MissingET`` vectors have a wrong ``px``/``pt``
        (they carry an eta); build them from ``MET`` and ``phi`` instead.
    jets : awkward.Array
        (n, 4) Momentum4D vectors of the four jets (regular or variable-length lists
        holding exactly four jets each), in any order.
    return_assignment : bool
        Also return ``assignment``: the row of `turbosim_hep.layout.ASSIGNMENTS` chosen
        for each event.

    Returns
    -------
    dict[str, numpy.ndarray]
        float64 (n,) arrays keyed by `OBSERVABLE_NAMES`, plus ``chi2`` (the minimum chi
        square) and ``neutrino_pz`` (and ``assignment`` on request).

    Examples
    --------
    >>> sel = events[(ak.num(events.Jet) == 4) & (ak.num(events.Electron) == 1)]  # doctest: +SKIP
    >>> obs = reconstruct_objects(sel.Electron[:, 0], sel.MET, sel.Jet)  # doctest: +SKIP
    """
    _register_vector()
    # Wrapped again: arrays made before the registration get vector's classes too.
    electron, met, jets = (ak.Array(v) for v in (electron, met, jets))
    jet_p4 = _components(jets)  # (4 components, n, jets)
    if jet_p4.ndim != 3 or jet_p4.shape[2] != layout.N_JETS:
        raise ValueError(f"reconstruction needs exactly {layout.N_JETS} jets per event")
    electron_p4 = _components(electron)
    met_pxy = np.stack([ak.to_numpy(met.px), ak.to_numpy(met.py)]).astype(np.float64)
    return _reconstruct_blocks(electron_p4, met_pxy, jet_p4, return_assignment)


def reconstruct(x: np.ndarray, *, return_assignment: bool = False) -> dict[str, np.ndarray]:
    """Reconstruct the tt-bar system from an (n, 24) X array.

    Parameters
    ----------
    x : numpy.ndarray
        Shape (n, 24) in the X layout of `turbosim_hep.layout` (electron, MET, four jets).
    return_assignment : bool
        Also return the chosen row of `turbosim_hep.layout.ASSIGNMENTS` per event.

    Returns
    -------
    dict[str, numpy.ndarray]
        See `reconstruct_objects`.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != layout.N_FEATURES:
        raise ValueError(f"expected an (n, {layout.N_FEATURES}) X array, got shape {x.shape}")
    n = len(x)
    p4 = x.reshape(n, layout.N_OBJECTS, layout.N_COMPONENTS)
    p4 = np.moveaxis(p4, -1, 0)  # (4 components, n, 6 objects)
    first_jet = layout.X_OBJECTS.index("jet1")
    return _reconstruct_blocks(
        p4[:, :, layout.X_OBJECTS.index("e-")],
        p4[:2, :, layout.X_OBJECTS.index("met")],
        p4[:, :, first_jet : first_jet + layout.N_JETS],
        return_assignment,
    )


def _reconstruct_blocks(electron, met, jets, return_assignment: bool) -> dict[str, np.ndarray]:
    """`_reconstruct` over blocks of `BLOCK_SIZE` events, results joined."""
    n = electron.shape[1]
    blocks = [
        _reconstruct(
            electron[:, start : start + BLOCK_SIZE],
            met[:, start : start + BLOCK_SIZE],
            jets[:, start : start + BLOCK_SIZE],
        )
        for start in range(0, max(n, 1), BLOCK_SIZE)
    ]
    result = {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}
    if not return_assignment:
        del result["assignment"]
    return result


def _mass(p4: np.ndarray) -> np.ndarray:
    """Invariant mass of (4, ...) components; negative for space-like vectors (as ROOT)."""
    m2 = p4[3] ** 2 - p4[0] ** 2 - p4[1] ** 2 - p4[2] ** 2
    return np.copysign(np.sqrt(np.abs(m2)), m2)


def _reconstruct(electron: np.ndarray, met: np.ndarray, jets: np.ndarray) -> dict[str, np.ndarray]:
    """The reconstruction of one block.

    electron (4, n), met (2, n) and jets (4, n, 4) hold float64 (px, py, pz, E) components.
    """
    electron, met, jets = (np.asarray(a, dtype=np.float64) for a in (electron, met, jets))
    n = electron.shape[1]
    pz = neutrino_pz(electron.T, met[0], met[1])
    neutrino = np.stack([met[0], met[1], pz, np.sqrt(met[0] ** 2 + met[1] ** 2 + pz**2)])
    lepton_w = electron + neutrino  # (4, n)
    jets = np.ascontiguousarray(jets)
    # (4, n, 12): the jet in each slot of each assignment.
    b_lep, w_jet1, w_jet2, b_had = (jets[:, :, layout.ASSIGNMENTS[:, slot]] for slot in range(4))
    w_had = w_jet1 + w_jet2
    t_had = w_had + b_had
    t_lep = lepton_w[:, :, np.newaxis] + b_lep
    m_w_had, m_t_had, m_t_lep = _mass(w_had), _mass(t_had), _mass(t_lep)
    # The assignment chi-square; `turbosim_hep.model.masses` makes the same choice in torch.
    chi2 = (
        ((m_t_lep - layout.M_TOP) / layout.SIGMA_T_LEP) ** 2
        + ((m_w_had - layout.M_W) / layout.SIGMA_W_HAD) ** 2
        + ((m_t_had - layout.M_TOP) / layout.SIGMA_T_HAD) ** 2
    )
    best = np.argmin(chi2, axis=1) if n else np.zeros(0, dtype=np.intp)
    rows = np.arange(n)

    def chosen(values: np.ndarray) -> np.ndarray:
        return values[..., rows, best]

    t_had_best, t_lep_best = chosen(t_had), chosen(t_lep)
    return {
        "m_tt": _mass(lepton_w + jets.sum(axis=2)),
        "m_W_had": chosen(m_w_had),
        "m_t_had": chosen(m_t_had),
        "m_W_lep": _mass(lepton_w),
        "m_t_lep": chosen(m_t_lep),
        "pt_t_had": np.hypot(t_had_best[0], t_had_best[1]),
        "pt_t_lep": np.hypot(t_lep_best[0], t_lep_best[1]),
        "chi2": chosen(chi2),
        "neutrino_pz": pz,
        "assignment": best,
    }


@functools.cache
def _register_vector() -> None:
    """Register vector's awkward behaviours, once, when `reconstruct_objects` first runs.

    Arrays named ``Momentum4D`` (or ``Momentum2D``, ...) without a behaviour of their own
    then act as vectors; arrays from `vector.zip` or coffea carry theirs already.
    """
    import vector

    vector.register_awkward()


def _components(vectors: ak.Array) -> np.ndarray:
    """float64 (4, ...) NumPy array of (px, py, pz, E) from regular `vector` vectors.

    vector computes the Cartesian components from whatever coordinates the vectors have.
    """
    if vectors.ndim > 1:
        vectors = ak.to_regular(vectors, axis=1)
    return np.stack(
        [ak.to_numpy(getattr(vectors, c)).astype(np.float64) for c in ("px", "py", "pz", "E")]
    )


__all__ = [
    "OBSERVABLES",
    "OBSERVABLE_NAMES",
    "Observable",
    "neutrino_pz",
    "reconstruct",
    "reconstruct_objects",
]
