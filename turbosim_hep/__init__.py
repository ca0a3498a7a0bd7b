"""turbosim-hep: Turbo-Sim fast simulation and unfolding for collider events.

The public API, imported on first use so that ``import turbosim_hep`` stays cheap (it
loads neither torch nor coffea; a coffea worker that only reads files never imports the
model)::

    import turbosim_hep as ts

    events, cutflow = ts.read_events("delphes.root")          # selected Z and X arrays
    mu, _ = ts.read_events("mujets.root", layout="mujets")     # another final state
    layout = ts.resolve_layout("my_layout.toml")               # a Layout (docs/layouts.md)
    ts.train(["sample.root"], "model.pt", train_config=ts.TrainConfig(epochs=20))
    model = ts.load_model("model.pt")                          # a torch module
    ts.simulate_files("model.pt", ["partons.lhe.gz"], "sim.root")
    ts.unfold_files("model.pt", ["detector.root"], "unfolded.root")
    ts.unfold_files("model.pt", ["detector.root"], "posterior.root", samples=100)
    samples = ts.posterior_samples("posterior.root")           # z: (events, 100, 24)
    metrics = ts.validate("truth.root", "sim.root", "report")  # Table 1, plots
    fastsim = ts.FastSim("model.pt")                           # inside a coffea processor

See docs/api.md for one example per entry point.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("turbosim-hep")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

#: The public names and the module each comes from.
_EXPORTS: dict[str, str] = {
    "EventWriter": "turbosim_hep.io",
    "FastSim": "turbosim_hep.coffea",
    "Layout": "turbosim_hep.layout",
    "TrainConfig": "turbosim_hep.training",
    "load_model": "turbosim_hep.model",
    "open_events": "turbosim_hep.io",
    "posterior_samples": "turbosim_hep.io.samples",
    "read_events": "turbosim_hep.io",
    "resolve_layout": "turbosim_hep.layout",
    "simulate_files": "turbosim_hep.pipeline",
    "train": "turbosim_hep.training",
    "unfold_files": "turbosim_hep.pipeline",
    "validate": "turbosim_hep.validation",
}

__all__ = [
    "EventWriter",
    "FastSim",
    "Layout",
    "TrainConfig",
    "__version__",
    "load_model",
    "open_events",
    "posterior_samples",
    "read_events",
    "resolve_layout",
    "simulate_files",
    "train",
    "unfold_files",
    "validate",
]

if TYPE_CHECKING:
    from turbosim_hep.coffea import FastSim
    from turbosim_hep.io import EventWriter, open_events, read_events
    from turbosim_hep.io.samples import posterior_samples
    from turbosim_hep.layout import Layout, resolve_layout
    from turbosim_hep.model import load_model
    from turbosim_hep.pipeline import simulate_files, unfold_files
    from turbosim_hep.training import TrainConfig, train
    from turbosim_hep.validation import validate


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
