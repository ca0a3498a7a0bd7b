"""Training of a Turbo-Sim model on paired (Z, X) events.

`train` reads the events of some files, trains a model and writes it (and a JSON-lines
log) after every epoch; a killed or finished run can be resumed. From Python, `fit` trains
a `Trainer` (the state of a run) on in-memory `PairedEvents`; `TrainConfig` holds the
settings of a run and `build_configs` assembles all three configurations.

Modules: ``config`` (settings, resume policy, YAML file), ``data`` (paired events),
``step`` (one optimisation step), ``evaluation`` (the validation record), ``state``
(`Trainer`, its state dict, save and resume), ``loop`` (`fit` and `train`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The public names and the module of each, imported on first use: the command line reads
#: the resume policy of ``config`` without loading the loop and its analysis imports.
_EXPORTS: dict[str, str] = {
    "RESUMABLE_SETTINGS": "config",
    "TrainConfig": "config",
    "build_configs": "config",
    "read_config_file": "config",
    "resumed_train_config": "config",
    "PairedEvents": "data",
    "read_pairs": "data",
    "Trainer": "state",
    "TrainResult": "loop",
    "fit": "loop",
    "log_path_for": "loop",
    "train": "loop",
}

__all__ = [
    "RESUMABLE_SETTINGS",
    "PairedEvents",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_configs",
    "fit",
    "log_path_for",
    "read_config_file",
    "read_pairs",
    "resumed_train_config",
    "train",
]

if TYPE_CHECKING:
    from turbosim_hep.training.config import (
        RESUMABLE_SETTINGS,
        TrainConfig,
        build_configs,
        read_config_file,
        resumed_train_config,
    )
    from turbosim_hep.training.data import PairedEvents, read_pairs
    from turbosim_hep.training.loop import TrainResult, fit, log_path_for, train
    from turbosim_hep.training.state import Trainer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
