"""Training of a Turbo-Sim model on paired (Z, X) events.

`train` reads the events of some files, trains a model and writes it (and a JSON-lines
log) after every epoch; a killed or finished run can be resumed. `Trainer` holds a run
for use from Python; `TrainConfig` its settings.
"""

from turbosim_hep.training.config import (
    RESUMABLE_SETTINGS,
    TrainConfig,
    build_configs,
    read_config_file,
    resumed_train_config,
)
from turbosim_hep.training.data import PairedEvents, read_pairs
from turbosim_hep.training.trainer import Trainer, TrainResult, log_path_for, train

__all__ = [
    "RESUMABLE_SETTINGS",
    "PairedEvents",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_configs",
    "log_path_for",
    "read_config_file",
    "read_pairs",
    "resumed_train_config",
    "train",
]
