"""The quantities the validation histograms and compares, in report order.

The 24 detector-level features (``x_<component>_<object>``), the 24 parton-level
features (``z_<component>_<parton>``) of a layout, the reconstructed tt-bar observables of
`turbosim_hep.physics`, and the observables any layout has (`object_observables`: the pT
and eta of each object, HT, the masses of the pairs of objects), all as
`turbosim_hep.physics.Observable`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping

import numpy as np

from turbosim_hep import kinematics, physics
from turbosim_hep.layout import DEFAULT_LAYOUT, N_COMPONENTS, Layout
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


def _pairs(layout: Layout) -> list[tuple[int, int]]:
    """Positions of every pair of X objects that have a direction (not the MET)."""
    located = [i for i, o in enumerate(layout.objects) if o.kind != "met"]
    return list(itertools.combinations(located, 2))


@functools.cache
def object_observables(layout: Layout = DEFAULT_LAYOUT) -> tuple[Observable, ...]:
    """The detector-level observables of any layout, whatever its reconstruction.

    ``pt_<object>`` of every object (``pt_met`` is the MET), ``eta_<object>`` of every
    object but the MET, ``ht`` (the scalar sum of the jets' pT) and ``m_<a>_<b>``, the
    invariant mass of every pair of objects but the MET.
    """
    observables = []
    for obj in layout.objects:
        symbol = _symbol(layout, "x", obj.name)
        observables.append(Observable(
            f"pt_{obj.name}", rf"detector $p_{{T}}^{{{symbol}}}$ [GeV]", (0.0, 500.0), "x"
        ))
        if obj.kind != "met":
            observables.append(
                Observable(f"eta_{obj.name}", rf"detector $\eta^{{{symbol}}}$", (-5.0, 5.0), "x")
            )
    observables.append(Observable("ht", r"detector $H_{T}$ [GeV]", (0.0, 1500.0), "x"))
    for a, b in _pairs(layout):
        names = (layout.x_objects[a], layout.x_objects[b])
        pair = "".join(_symbol(layout, "x", n) for n in names)
        observables.append(Observable(
            f"m_{names[0]}_{names[1]}", rf"detector $m_{{{pair}}}$ [GeV]", (0.0, 1000.0), "x"
        ))
    return tuple(observables)


def object_values(x: np.ndarray, layout: Layout = DEFAULT_LAYOUT) -> dict[str, np.ndarray]:
    """The values of `object_observables` of (n, 24) X arrays.

    Parameters
    ----------
    x : numpy.ndarray
        The events in the layout's X space.
    layout : turbosim_hep.layout.Layout
        Their layout (default ``ejets``).

    Returns
    -------
    dict of str to numpy.ndarray
        float32 (n,) values by observable name, in the order of `object_observables`.
    """
    p4 = np.asarray(x, dtype=np.float64).reshape(len(x), len(layout.objects), N_COMPONENTS)
    pt, eta, _, _ = kinematics.ptetaphim_from_p4(p4)
    values = {}
    for i, obj in enumerate(layout.objects):
        values[f"pt_{obj.name}"] = pt[:, i]
        if obj.kind != "met":
            values[f"eta_{obj.name}"] = eta[:, i]
    jets = [i for i, o in enumerate(layout.objects) if o.kind == "jet"]
    values["ht"] = pt[:, jets].sum(axis=1)
    for a, b in _pairs(layout):
        mass = kinematics.ptetaphim_from_p4(p4[:, a] + p4[:, b])[3]
        values[f"m_{layout.x_objects[a]}_{layout.x_objects[b]}"] = mass
    return {name: v.astype(np.float32) for name, v in values.items()}


@functools.cache
def layout_quantities(layout: Layout = DEFAULT_LAYOUT) -> tuple[Observable, ...]:
    """Every quantity the validation processor histograms for a layout, in report order."""
    return (
        tuple(feature("x", c, layout) for c in layout.x_columns)
        + tuple(feature("z", c, layout) for c in layout.z_columns)
        + physics.OBSERVABLES
        + object_observables(layout)
    )


def quantity_by_name(layout: Layout = DEFAULT_LAYOUT) -> Mapping[str, Observable]:
    """`layout_quantities` by name."""
    return {q.name: q for q in layout_quantities(layout)}


#: Every quantity of ``ejets`` (the paper's), in report order, and by name.
QUANTITIES: tuple[Observable, ...] = layout_quantities(DEFAULT_LAYOUT)
QUANTITY_BY_NAME: Mapping[str, Observable] = quantity_by_name(DEFAULT_LAYOUT)

__all__ = [
    "QUANTITIES", "QUANTITY_BY_NAME", "feature", "layout_quantities", "object_observables",
    "object_values", "quantity_by_name",
]
