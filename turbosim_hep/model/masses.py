"""Invariant masses of detector-level events, as differentiable torch features.

The reconstructed W and top masses of the validation analysis come from pairs and
triplets of jets and from the electron, the missing transverse momentum and a jet.
A generator can match every per-feature marginal and still miss these correlations.
`mass_features` gives the invariant masses of all such combinations without a jet
assignment (no argmin, so the gradient reaches every jet), for the mass term of
`turbosim_hep.model.losses` (a distance on narrow resonance distributions, as seed 002
proposes).

The squared mass of a set S of objects is the sum of the Minkowski products of its
members, m^2(S) = sum over a, b in S of p_a . p_b, so every mass is one entry of the
(n, 6 x 6) matrix of products times a fixed 0/1 matrix: one batched product for all of
them.
"""

from __future__ import annotations

import itertools

import torch

from turbosim_hep import layout

_FIRST_JET = layout.X_OBJECTS.index("jet1")
_JETS = tuple(range(_FIRST_JET, _FIRST_JET + layout.N_JETS))
_ELECTRON = layout.X_OBJECTS.index("e-")
_MET = layout.X_OBJECTS.index("met")

#: The object sets whose invariant mass is a feature, by name (indices of X_OBJECTS).
MASS_SETS: dict[str, tuple[int, ...]] = {
    **{f"m_j{a - _FIRST_JET + 1}j{b - _FIRST_JET + 1}": (a, b)
       for a, b in itertools.combinations(_JETS, 2)},
    **{f"m_j{a - _FIRST_JET + 1}j{b - _FIRST_JET + 1}j{c - _FIRST_JET + 1}": (a, b, c)
       for a, b, c in itertools.combinations(_JETS, 3)},
    **{f"m_ej{j - _FIRST_JET + 1}": (_ELECTRON, j) for j in _JETS},
    "m_4j": _JETS,
    "m_all": tuple(range(layout.N_OBJECTS)),
}
#: Names of the columns of `mass_features`, in order: the masses, then the
#: electron-MET transverse mass.
MASS_FEATURE_NAMES: tuple[str, ...] = (*MASS_SETS, "mt_e_met")


def _selection() -> torch.Tensor:
    """(36, n_sets) 0/1 matrix summing the products p_a . p_b of each set."""
    n = layout.N_OBJECTS
    selection = torch.zeros(n * n, len(MASS_SETS))
    for column, members in enumerate(MASS_SETS.values()):
        for a in members:
            for b in members:
                selection[a * n + b, column] = 1.0
    return selection


_SELECTION = _selection()
_METRIC = torch.tensor([-1.0, -1.0, -1.0, 1.0])


def mass_features(x: torch.Tensor) -> torch.Tensor:
    """log(1 + m / GeV) of every jet pair and triplet, each electron-jet pair, the four
    jets, the whole event and the electron-MET transverse mass.

    Parameters
    ----------
    x : torch.Tensor
        (n, 24) detector-level events in GeV, in the X layout.

    Returns
    -------
    torch.Tensor
        (n, len(MASS_FEATURE_NAMES)) features, differentiable with respect to ``x``.
    """
    p4 = x.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)
    products = torch.bmm(p4 * _METRIC.to(x), p4.transpose(1, 2))  # (n, 6, 6) p_a . p_b
    m2 = products.flatten(1) @ _SELECTION.to(x)
    electron, met = p4[:, _ELECTRON, :2], p4[:, _MET, :2]
    mt2 = 2.0 * (
        torch.linalg.vector_norm(electron, dim=1) * torch.linalg.vector_norm(met, dim=1)
        - (electron * met).sum(1)
    )
    masses = torch.sqrt(torch.cat([m2, mt2.unsqueeze(1)], dim=1).clamp_min(0.0) + 1e-6)
    return torch.log1p(masses)
