"""Invariant masses of detector-level events, as differentiable torch features.

The reconstructed W and top masses of the validation analysis come from pairs and
triplets of jets and from the electron, the missing transverse momentum and a jet.
A generator can match every per-feature marginal and still miss these correlations.
`mass_features` gives the invariant masses of all such combinations without a jet
assignment (no argmin, so the gradient reaches every jet), for the mass term of
`turbosim_hep.model.losses` (a distance between the narrow resonance distributions).

The squared mass of a set S of objects is the sum of the Minkowski products of its
members, m^2(S) = sum over a, b in S of p_a . p_b, so every mass is one entry of the
(n, 7 x 7) matrix of products times a fixed 0/1 matrix: one batched product for all of
them. The seventh object is the neutrino of the validation's reconstruction (MET with
the pz that gives the W mass), so the leptonic top candidates and m_tt are features too.
Last come the hadronic W, hadronic top and leptonic top masses of the jet assignment of
minimum chi square (`turbosim_hep.layout.ASSIGNMENTS`), which are the validation's
reconstructed masses: the choice of the assignment is not differentiated, the masses of
the chosen one are.

The neutrino solution and the assignment choice are those of the validation's NumPy
reconstruction (`turbosim_hep.physics`), written again in torch: the loss needs them
differentiable and on the training device, and the analysis must not need torch.
``tests/test_physics.py`` checks that the two agree. This module knows nothing of
files or of the analysis: it imports only `turbosim_hep.layout`.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import torch

from turbosim_hep import layout

_FIRST_JET = layout.X_OBJECTS.index("jet1")
_JETS = tuple(range(_FIRST_JET, _FIRST_JET + layout.N_JETS))
_ELECTRON = layout.X_OBJECTS.index("e-")
_MET = layout.X_OBJECTS.index("met")
_NEUTRINO = layout.N_OBJECTS  # appended after the six X objects
_N_VECTORS = layout.N_OBJECTS + 1

#: The object sets whose invariant mass is a feature, by name (indices of X_OBJECTS).
MASS_SETS: dict[str, tuple[int, ...]] = {
    **{f"m_j{a - _FIRST_JET + 1}j{b - _FIRST_JET + 1}": (a, b)
       for a, b in itertools.combinations(_JETS, 2)},
    **{f"m_j{a - _FIRST_JET + 1}j{b - _FIRST_JET + 1}j{c - _FIRST_JET + 1}": (a, b, c)
       for a, b, c in itertools.combinations(_JETS, 3)},
    **{f"m_ej{j - _FIRST_JET + 1}": (_ELECTRON, j) for j in _JETS},
    **{f"m_enuj{j - _FIRST_JET + 1}": (_ELECTRON, _NEUTRINO, j) for j in _JETS},
    "m_4j": _JETS,
    "m_all": tuple(range(layout.N_OBJECTS)),
    "m_tt": (_ELECTRON, _NEUTRINO, *_JETS),
}
#: Names of the columns of `mass_features`, in order: the masses of `MASS_SETS`, the
#: electron-MET transverse mass and the reconstructed masses.
MASS_FEATURE_NAMES: tuple[str, ...] = (*MASS_SETS, "mt_e_met", "m_W_had", "m_t_had", "m_t_lep")


def _jets_name(*jets: int) -> str:
    return "m_" + "".join(f"j{j + 1}" for j in sorted(jets))


def _assignment_columns() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Columns of `MASS_SETS` holding each assignment's W, hadronic and leptonic top."""
    names = list(MASS_SETS)
    w_had, t_had, t_lep = [], [], []
    for b_lep, w1, w2, b_had in layout.ASSIGNMENTS.tolist():
        w_had.append(names.index(_jets_name(w1, w2)))
        t_had.append(names.index(_jets_name(w1, w2, b_had)))
        t_lep.append(names.index(f"m_enuj{b_lep + 1}"))
    return torch.tensor(w_had), torch.tensor(t_had), torch.tensor(t_lep)


def _selection() -> torch.Tensor:
    """(49, n_sets) 0/1 matrix summing the products p_a . p_b of each set."""
    n = _N_VECTORS
    selection = torch.zeros(n * n, len(MASS_SETS))
    for column, members in enumerate(MASS_SETS.values()):
        for a in members:
            for b in members:
                selection[a * n + b, column] = 1.0
    return selection


class _Constants(NamedTuple):
    metric: torch.Tensor  # (4,) Minkowski signs of (px, py, pz, E)
    selection: torch.Tensor  # (49, n_sets), see `_selection`
    w_had: torch.Tensor  # (12,) columns of each assignment's masses, `_assignment_columns`
    t_had: torch.Tensor
    t_lep: torch.Tensor


@functools.lru_cache(maxsize=8)
def _constants(device: torch.device, dtype: torch.dtype) -> _Constants:
    """The fixed tensors of `mass_features`, made once per device and dtype (no copy to
    the device at every training step)."""
    w_had, t_had, t_lep = (c.to(device) for c in _assignment_columns())
    return _Constants(
        torch.tensor([-1.0, -1.0, -1.0, 1.0], device=device, dtype=dtype),
        _selection().to(device, dtype),
        w_had,
        t_had,
        t_lep,
    )


def neutrino_pz(
    electron: torch.Tensor, met: torch.Tensor, m_w: float = layout.M_W
) -> torch.Tensor:
    """Neutrino pz from the W-mass constraint, differentiable.

    The same solution as `turbosim_hep.physics.neutrino_pz` (the root of smaller |pz|,
    the real part when the roots are complex), in torch for the loss, with the square
    root kept away from zero so that its gradient stays finite.

    Parameters
    ----------
    electron : torch.Tensor
        (n, 4) (px, py, pz, E) of the electron.
    met : torch.Tensor
        (n, 2) (px, py) of the missing transverse momentum.
    m_w : float
        W mass in GeV.
    """
    px, py, pz, energy = electron.unbind(1)
    m2_lepton = energy.square() - px.square() - py.square() - pz.square()
    k = 0.5 * (m_w**2 - m2_lepton) + px * met[:, 0] + py * met[:, 1]
    a = (energy.square() - pz.square()).clamp_min(1e-6)
    centre = k * pz / a
    discriminant = (k * pz).square() - a * (energy.square() * met.square().sum(1) - k.square())
    half_width = torch.sqrt(discriminant.clamp_min(0.0) + 1e-6) / a
    return centre - torch.copysign(half_width, centre)


def mass_features(x: torch.Tensor) -> torch.Tensor:
    """log(1 + m / GeV) of every jet pair and triplet, each electron-jet and
    electron-neutrino-jet triplet, the four jets, the whole event (MET with pz = 0), the
    tt-bar system (m_tt of the validation) and the electron-MET transverse mass.

    Parameters
    ----------
    x : torch.Tensor
        (n, 24) detector-level events in GeV, in the X layout.

    Returns
    -------
    torch.Tensor
        (n, len(MASS_FEATURE_NAMES)) features, differentiable with respect to ``x``.
    """
    objects = x.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)
    met = objects[:, _MET, :2]
    nu_pz = neutrino_pz(objects[:, _ELECTRON], met)
    nu_energy = torch.sqrt(met.square().sum(1) + nu_pz.square() + 1e-6)
    neutrino = torch.cat([met, nu_pz.unsqueeze(1), nu_energy.unsqueeze(1)], dim=1)
    p4 = torch.cat([objects, neutrino.unsqueeze(1)], dim=1)  # (n, 7, 4)
    constants = _constants(x.device, x.dtype)
    products = torch.bmm(p4 * constants.metric, p4.transpose(1, 2))  # (n, 7, 7) p_a . p_b
    m2 = products.flatten(1) @ constants.selection
    electron = objects[:, _ELECTRON, :2]
    mt2 = 2.0 * (
        torch.linalg.vector_norm(electron, dim=1) * torch.linalg.vector_norm(met, dim=1)
        - (electron * met).sum(1)
    )
    masses = torch.sqrt(torch.cat([m2, mt2.unsqueeze(1)], dim=1).clamp_min(0.0) + 1e-6)
    return torch.log1p(torch.cat([masses, _reconstructed(masses, constants)], dim=1))


def _reconstructed(masses: torch.Tensor, constants: _Constants) -> torch.Tensor:
    """(n, 3) W, hadronic top and leptonic top masses of the minimum-chi-square assignment.

    The chi-square of `turbosim_hep.physics` (same widths, same 12 assignments), on the
    masses of `mass_features`.
    """
    w_had = masses[:, constants.w_had]  # (n, 12), one column per assignment
    t_had, t_lep = masses[:, constants.t_had], masses[:, constants.t_lep]
    chi2 = (
        ((t_lep - layout.M_TOP) / layout.SIGMA_T_LEP).square()
        + ((w_had - layout.M_W) / layout.SIGMA_W_HAD).square()
        + ((t_had - layout.M_TOP) / layout.SIGMA_T_HAD).square()
    )
    best = torch.argmin(chi2.detach(), dim=1, keepdim=True)
    return torch.cat([w_had.gather(1, best), t_had.gather(1, best), t_lep.gather(1, best)], dim=1)
