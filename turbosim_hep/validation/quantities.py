"""The quantities the validation histograms and compares, in report order.

The 24 detector-level features (``x_<component>_<object>``), the 24 parton-level
features (``z_<component>_<parton>``) and the reconstructed tt-bar observables of
`turbosim_hep.physics`, all as `turbosim_hep.physics.Observable`.
"""

from __future__ import annotations

from collections.abc import Mapping

from turbosim_hep import layout, physics
from turbosim_hep.physics import Observable

_OBJECT_LABELS = {
    "x": {
        "e-": "e^{-}",
        "met": r"\mathrm{miss}",
        **{f"jet{i}": rf"\mathrm{{jet}}_{{{i}}}" for i in range(1, layout.N_JETS + 1)},
    },
    "z": {
        "e-": "e^{-}", "nubar": r"\bar{\nu}_{e}", "b": "b", "bbar": r"\bar{b}", "u": "u",
        "dbar": r"\bar{d}",
    },
}
_COMPONENT_LABELS = {"px": "p_{x}", "py": "p_{y}", "pz": "p_{z}", "E": "E"}
_COMPONENT_RANGES = {
    "px": (-300.0, 300.0), "py": (-300.0, 300.0), "pz": (-1200.0, 1200.0), "E": (0.0, 1200.0)
}
_LEVEL = {"x": "detector", "z": "parton"}


def feature(space: str, column: str) -> Observable:
    """The observable of one X or Z column.

    Parameters
    ----------
    space : {"x", "z"}
        Detector or parton level.
    column : str
        Column name as in `turbosim_hep.layout.X_COLUMNS` or ``Z_COLUMNS`` (``"E_jet1"``).

    Returns
    -------
    Observable
        Named ``<space>_<column>`` (``"x_E_jet1"``), with a LaTeX axis label.
    """
    component, obj = column.split("_", 1)
    symbol = rf"{_COMPONENT_LABELS[component]}^{{{_OBJECT_LABELS[space][obj]}}}"
    label = rf"{_LEVEL[space]} ${symbol}$ [GeV]"
    return Observable(f"{space}_{column}", label, _COMPONENT_RANGES[component], space)


#: Every quantity the validation processor histograms, in report order.
QUANTITIES: tuple[Observable, ...] = (
    tuple(feature("x", c) for c in layout.X_COLUMNS)
    + tuple(feature("z", c) for c in layout.Z_COLUMNS)
    + physics.OBSERVABLES
)
QUANTITY_BY_NAME: Mapping[str, Observable] = {q.name: q for q in QUANTITIES}

__all__ = ["QUANTITIES", "QUANTITY_BY_NAME", "feature"]
