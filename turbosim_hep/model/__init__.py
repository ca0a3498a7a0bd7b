"""The Turbo-Sim model: networks, the eight-term objective, presets, the detector
acceptance and checkpoints.

This package knows nothing of files other than its own checkpoints; the trainer
(`turbosim_hep.training`) feeds it tensors.
"""

from turbosim_hep.model.acceptance import AcceptanceConfig, AcceptanceModel
from turbosim_hep.model.checkpoint import load_acceptance, load_model, save_checkpoint
from turbosim_hep.model.losses import TERMS, LossConfig, TurboSimObjective
from turbosim_hep.model.presets import PRESETS, loss_config, preset_names
from turbosim_hep.model.turbosim import ModelConfig, TurboSim

__all__ = [
    "AcceptanceConfig",
    "AcceptanceModel",
    "PRESETS",
    "TERMS",
    "LossConfig",
    "ModelConfig",
    "TurboSim",
    "TurboSimObjective",
    "load_acceptance",
    "load_model",
    "loss_config",
    "preset_names",
    "save_checkpoint",
]
