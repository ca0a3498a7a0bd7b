"""The public API at ``turbosim_hep.*`` and what importing each layer pulls in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import turbosim_hep


def imported_after(statement: str) -> set[str]:
    """Top-level module names imported by ``statement`` in a fresh interpreter."""
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}


def test_importing_the_package_is_cheap():
    modules = imported_after("import turbosim_hep")
    assert not modules & {"torch", "coffea", "awkward", "uproot", "numpy", "hist"}


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import turbosim_hep.io", {"torch", "coffea", "hist"}),
        ("import turbosim_hep.physics", {"torch", "coffea", "vector"}),
        ("import turbosim_hep.model", {"awkward", "uproot", "vector", "coffea"}),
        ("from turbosim_hep.coffea import FastSim", {"hist", "pylhe"}),
    ],
)
def test_each_layer_imports_only_what_it_uses(statement, absent):
    assert not imported_after(statement) & absent


def test_every_public_name_resolves_to_the_documented_object():
    from turbosim_hep.coffea import FastSim
    from turbosim_hep.io import EventWriter, open_events, read_events
    from turbosim_hep.io.samples import posterior_samples
    from turbosim_hep.layout import Layout, resolve_layout
    from turbosim_hep.model import load_model
    from turbosim_hep.pipeline import simulate_files, unfold_files
    from turbosim_hep.training import TrainConfig, train
    from turbosim_hep.validation import validate

    expected = {
        "EventWriter": EventWriter, "FastSim": FastSim, "TrainConfig": TrainConfig,
        "load_model": load_model, "open_events": open_events, "read_events": read_events,
        "posterior_samples": posterior_samples,
        "simulate_files": simulate_files, "train": train, "unfold_files": unfold_files,
        "validate": validate, "Layout": Layout, "resolve_layout": resolve_layout,
    }
    assert set(turbosim_hep.__all__) == {"__version__", *expected}
    for name, obj in expected.items():
        assert getattr(turbosim_hep, name) is obj, name
    assert set(expected) <= set(dir(turbosim_hep))
    with pytest.raises(AttributeError, match="no attribute 'simulate'"):
        turbosim_hep.simulate  # noqa: B018
