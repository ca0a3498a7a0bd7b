"""The quantities the validation histograms and compares, in report order.

The 24 detector-level features (``x_<component>_<object>``), the 24 parton-level
features (``z_<component>_<parton>``) of a layout and the reconstructed tt-bar
observables of `turbosim_hep.physics`, all as `turbosim_hep.physics.Observable`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from turbosim_hep import physics
from turbosim_hep.layout import DEFAULT_LAYOUT, Layout
from turbosim_hep.physics import Observable

#: LaTeX of the objects and partons of the built-in layouts; others are set upright.
_SYMBOLS = {
    "e-": "e^{-}", "mu-": r"\mu^{-}", "met": r"\mathrm{miss}", "b": "b", "bbar": r"\bar{b}",
    "u": "u", "dbar": r"\bar{d}",
}
_NEUTRINO_FLAVOURS = {"electron": "e", "muon": r"\mu"}
_COMPONENT_LABELS = {"px": "p_{x}", "py": "p_{y}", "pz": "p_{z}", "E": "E"}
_COMPONENT_RANGES = {
    "px": (-300.0, 300.0), "py": (-300.0, 300.0), "pz": (-1200.0, 1200.0), "E": (0.0, 1200.0)
}
_LEVEL = {"x": "detector", "z": "parton"}


def _symbol(layout: Layout, space: str, name: str) -> str:
    """LaTeX of an object (``x``) or parton (``z``) of a layout."""
    if space == "x" and name.startswith("jet") and name[3:].isdigit():
        return rf"\mathrm{{jet}}_{{{name[3:]}}}"
    if space == "z" and name == layout.x_sources[layout.x_objects.index("met")]:
        return rf"\bar{{\nu}}_{{{_NEUTRINO_FLAVOURS[layout.lepton.kind]}}}"
    return _SYMBOLS.get(name, rf"\mathrm{{{name}}}")


def feature(space: str, column: str, layout: Layout = DEFAULT_LAYOUT) -> Observable:
    """The observable of one X or Z column of a layout.

    Parameters
    ----------
    space : {"x", "z"}
        Detector or parton level.
    column : str
        Column name as in the layout's ``x_columns`` or ``z_columns`` (``"E_jet1"``).
    layout : turbosim_hep.layout.Layout
        The final state (default ``ejets``).

    Returns
    -------
    Observable
        Named ``<space>_<column>`` (``"x_E_jet1"``), with a LaTeX axis label.
    """
    component, obj = column.split("_", 1)
    symbol = rf"{_COMPONENT_LABELS[component]}^{{{_symbol(layout, space, obj)}}}"
    label = rf"{_LEVEL[space]} ${symbol}$ [GeV]"
    return Observable(f"{space}_{column}", label, _COMPONENT_RANGES[component], space)


@functools.cache
def layout_quantities(layout: Layout = DEFAULT_LAYOUT) -> tuple[Observable, ...]:
    """Every quantity the validation processor histograms for a layout, in report order."""
    return (
        tuple(feature("x", c, layout) for c in layout.x_columns)
        + tuple(feature("z", c, layout) for c in layout.z_columns)
        + physics.OBSERVABLES
    )


def quantity_by_name(layout: Layout = DEFAULT_LAYOUT) -> Mapping[str, Observable]:
    """`layout_quantities` by name."""
    return {q.name: q for q in layout_quantities(layout)}


#: Every quantity of ``ejets`` (the paper's), in report order, and by name.
QUANTITIES: tuple[Observable, ...] = layout_quantities(DEFAULT_LAYOUT)
QUANTITY_BY_NAME: Mapping[str, Observable] = quantity_by_name(DEFAULT_LAYOUT)

__all__ = ["QUANTITIES", "QUANTITY_BY_NAME", "feature", "layout_quantities", "quantity_by_name"]
