"""Named sets of loss weights: the model families the Turbo-Sim objective recovers.

Every preset is a `LossConfig` keyword set; any weight can be overridden afterwards
(`loss_config`). See ``docs/model.md`` for each preset beside the family it recovers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from turbosim_hep.model.losses import REFERENCE_GP_WEIGHTS, LossConfig

_PRESETS: dict[str, dict[str, object]] = {
    # The weights of the reference run script of the paper's code (Quetant et al., 2021).
    "turbosim": {
        "weights": {
            "dzt": 10, "Dzt": 1, "dxh": 10, "Dxh": 1, "dxt": 0, "Dxt": 10, "dzh": 100, "Dzh": 0
        },
    },
    # Adversarial autoencoder: latent critic on z~ plus l_p reconstruction of x^.
    "aae": {"weights": {"Dzt": 1, "dxh": 10}},
    # GAN with z as generator input: a classifier (density-ratio) critic on x~ alone.
    "gan": {"weights": {"Dxt": 1}, "divergence": {"Dxt": "dre"}},
    # Wasserstein GAN with gradient penalty: the same with a Wasserstein critic.
    "wgan-gp": {"weights": {"Dxt": 1}, "divergence": {"Dxt": "wgan-gp"}},
    # Cycle-consistent GAN, both directions: critics on z~ and x~, cycle losses on x^ and z^.
    "cycle": {"weights": {"Dzt": 1, "Dxt": 1, "dxh": 10, "dzh": 10}},
    # Supervised regression in both directions, no critic.
    "regression": {"weights": {"dzt": 1, "dxt": 1}},
}

#: The presets by name (read-only).
PRESETS: Mapping[str, Mapping[str, object]] = MappingProxyType(_PRESETS)
DEFAULT_PRESET = "turbosim"


def preset_names() -> tuple[str, ...]:
    """The preset names."""
    return tuple(_PRESETS)


def loss_config(
    preset: str = DEFAULT_PRESET,
    weights: Mapping[str, float] | None = None,
    **overrides: object,
) -> LossConfig:
    """The `LossConfig` of a preset, with some weights or settings overridden.

    Parameters
    ----------
    preset : str
        One of `preset_names`.
    weights : mapping, optional
        Term -> weight, replacing the preset's weight of those terms only.
    **overrides
        Other `LossConfig` fields; ``divergence``, ``gp_weights`` and ``score`` update
        the preset's mapping term by term.
    """
    if preset not in _PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(_PRESETS)}")
    base = _PRESETS[preset]
    merged_weights = dict(base.get("weights", {}))
    merged_weights.update(weights or {})
    settings = {k: v for k, v in base.items() if k != "weights"}
    for key, value in overrides.items():
        if key in ("divergence", "gp_weights", "score") and isinstance(value, Mapping):
            settings[key] = {**dict(settings.get(key, {})), **dict(value)}
        else:
            settings[key] = value
    if "gp_weights" in settings:
        settings["gp_weights"] = {**REFERENCE_GP_WEIGHTS, **settings["gp_weights"]}
    return LossConfig(weights=merged_weights, **settings)
