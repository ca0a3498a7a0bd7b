"""Settings of a training run: `TrainConfig`, what a resumed run may change, and the YAML
configuration file with the precedence of its sections and the command-line flags."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turbosim_hep import arguments
from turbosim_hep.errors import InputError, TurbosimError
from turbosim_hep.layout import BUILTIN_LAYOUTS, DEFAULT_LAYOUT, Layout, resolve_layout
from turbosim_hep.model.losses import LossConfig
from turbosim_hep.model.presets import DEFAULT_PRESET
from turbosim_hep.model.presets import loss_config as preset_loss_config
from turbosim_hep.model.turbosim import ModelConfig
from turbosim_hep.settings import Settings


@dataclass
class TrainConfig(Settings):
    """Settings of a training run (reference values by default).

    Attributes
    ----------
    epochs : int
        Number of passes over the training events.
    batch_size : int
        Events per optimiser step.
    lr, betas, weight_decay : float, tuple, float
        Adam settings of the encoder and the decoder (reference: 1e-4, (0.9, 0.7), 1e-3).
    critic_lr, critic_betas, critic_weight_decay : float, tuple, float
        Adam settings of the critics (reference: 1e-4, (0.9, 0.7), 1e-4).
    lr_final_fraction : float
        Cosine decay of both learning rates over the run: epoch ``e`` of ``E`` trains at
        ``lr * (f + (1 - f) * (1 + cos(pi * e / (E - 1))) / 2)`` with ``f`` this fraction,
        so the last epoch trains at ``f * lr``. 1 keeps the rates constant (the reference).
    critic_steps : int
        Critic updates per batch, each with fresh gradient-penalty points.
    gp_interval : int
        Lazy gradient penalty: the penalty enters every ``gp_interval``-th critic update
        with ``gp_interval`` times its weight, the same penalty on average for a fraction
        of its cost (StyleGAN2's lazy regularisation). 1 penalises every update, as the
        reference does.
    ema_decay : float, optional
        Validate and keep an exponential moving average of the encoder and decoder
        weights, updated after every step with this decay (for example 0.999: an
        average over the last ~1,000 steps). It smooths the oscillations of adversarial
        training (Yazici et al. 2019). None: the trained weights themselves.
    select_on_physics : bool
        Add the KS distances of the reconstructed tt-bar observables of x~ (m_tt, the W
        and top masses, ...; `turbosim_hep.physics`) to the per-feature KS sum that picks
        the best epoch. They are always logged (``ks_physics``).
    val_fraction : float
        Fraction of the events set aside for validation (a fixed, seed-independent split).
    val_max_events : int
        At most this many validation events are used for the per-epoch KS.
    seed : int
        Seed of the initial weights, the batching and the noise.
    patience : int, optional
        Stop when the validation KS sum has not improved for this many epochs.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    amp : bool
        Automatic mixed precision (bfloat16 autocast) on CUDA.
    graphs : bool
        On CUDA, run each optimisation step as the replay of a captured CUDA graph
        (`turbosim_hep.training.graphs`): the same computation without a launch from
        Python per kernel. False: eager steps. Ignored on the CPU.
    threads : int, optional
        CPU threads of torch's intra-op pool when training on the CPU. Default 1: at the
        reference batch size every operation is so small that a second thread costs
        more in synchronisation than it gains (and collapses when the cores are shared);
        try 2 for batches of 1,000 or more on an idle machine. 0 keeps torch's setting.
    channel : str, optional
        Which channel's events to train on: the layout's reference one (the default;
        ``electron`` for ``ejets``), its charge conjugate (CP-mirrored into the same
        slots, `turbosim_hep.layout.CHANNELS`), or ``both``.
    layout : str, mapping or Layout
        The final state of the events: a built-in layout's name (``ejets``, the default,
        or ``mujets``), a layout file (`turbosim_hep.layout.load_layout`) or a `Layout`;
        kept as the built-in's name or as its plain data (`Layout.to_dict`), so that a
        resumed run needs no file. The model stores the layout, and simulates and unfolds
        events of that layout only.
    acceptance : bool
        Also learn the detector acceptance (`turbosim_hep.training.acceptance`) when the
        files hold events the selection rejects; it is stored with the model.
    """

    kind = "training"

    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.7)
    weight_decay: float = 1e-3
    critic_lr: float = 1e-4
    critic_betas: tuple[float, float] = (0.9, 0.7)
    critic_weight_decay: float = 1e-4
    lr_final_fraction: float = 1.0
    critic_steps: int = 1
    gp_interval: int = 1
    ema_decay: float | None = None
    select_on_physics: bool = False
    val_fraction: float = 0.2
    val_max_events: int = 50_000
    seed: int = 0
    patience: int | None = None
    device: str = "auto"
    amp: bool = False
    graphs: bool = True
    threads: int | None = 1
    channel: str | None = None
    acceptance: bool = True
    layout: str | dict | Layout = DEFAULT_LAYOUT.name

    def __post_init__(self) -> None:
        """Check every setting as the command line's flags are checked
        (`turbosim_hep.arguments`; `ArgumentError` is a `ValueError`)."""
        self.betas = tuple(float(b) for b in self.betas)
        self.critic_betas = tuple(float(b) for b in self.critic_betas)
        for name in ("epochs", "batch_size", "critic_steps", "gp_interval", "val_max_events"):
            setattr(self, name, arguments.POSITIVE_INT.check(getattr(self, name), name))
        for name in ("lr", "critic_lr"):
            setattr(self, name, arguments.POSITIVE_NUMBER.check(getattr(self, name), name))
        for name in ("weight_decay", "critic_weight_decay"):
            setattr(self, name, arguments.NON_NEGATIVE_NUMBER.check(getattr(self, name), name))
        self.seed = arguments.SEED.check(self.seed, "seed")
        self.val_fraction = arguments.fraction(zero=False, one=False).check(
            self.val_fraction, "val_fraction"
        )
        self.lr_final_fraction = arguments.fraction(zero=False, one=True).check(
            self.lr_final_fraction, "lr_final_fraction"
        )
        if self.ema_decay is not None:
            self.ema_decay = arguments.fraction(zero=False, one=False).check(
                self.ema_decay, "ema_decay"
            )
        if self.patience is not None:
            self.patience = arguments.POSITIVE_INT.check(self.patience, "patience")
        if self.threads is not None:
            self.threads = arguments.NON_NEGATIVE_INT.check(self.threads, "threads")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")
        if not isinstance(self.graphs, bool):
            raise ValueError(f"graphs must be true or false, not {self.graphs!r}")
        if isinstance(self.layout, Mapping):
            event_layout = Layout.from_dict(self.layout)  # LayoutError naming the key
        else:  # a Layout, a name or a file: ArgumentError or InputError
            event_layout = resolve_layout(self.layout)
        builtin = BUILTIN_LAYOUTS.get(event_layout.name) == event_layout
        self.layout = event_layout.name if builtin else event_layout.to_dict()
        self.channel = self.channel or event_layout.reference_channel
        event_layout.channels_of(self.channel)  # ValueError naming the choices

    @property
    def event_layout(self) -> Layout:
        """The layout of ``layout``."""
        if isinstance(self.layout, Mapping):
            return Layout.from_dict(self.layout)
        return resolve_layout(self.layout)

    def lr_factor(self, epoch: int) -> float:
        """Factor of the learning rates in epoch ``epoch`` (0-based; see ``lr_final_fraction``)."""
        if self.lr_final_fraction == 1.0 or self.epochs == 1:
            return 1.0
        progress = min(epoch, self.epochs - 1) / (self.epochs - 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr_final_fraction + (1.0 - self.lr_final_fraction) * cosine

    def penalty_scales(self, critic_updates: int) -> tuple[float, ...]:
        """Factor of the gradient penalty in each critic update of a step (see
        ``gp_interval``), the run having made ``critic_updates`` updates before it."""
        k = self.gp_interval
        return tuple(
            float(k) if (critic_updates + i) % k == 0 else 0.0 for i in range(self.critic_steps)
        )


#: Training settings a resumed run may change; the others stay as stored. The command line
#: takes the flags of these settings with ``--resume`` (`turbosim_hep.cli.train_cmd`).
RESUMABLE_SETTINGS: tuple[str, ...] = ("epochs", "patience", "device", "graphs", "threads")


def resumed_train_config(
    payload: Mapping[str, Any], path: str | os.PathLike, changes: Mapping[str, Any]
) -> TrainConfig:
    """The stored training settings of a checkpoint with the allowed ``changes`` applied.

    Raises
    ------
    TurbosimError
        If ``changes`` names a setting outside `RESUMABLE_SETTINGS`, or a value is invalid.
    """
    fixed = sorted(set(changes) - set(RESUMABLE_SETTINGS))
    if fixed:
        raise TurbosimError(
            f"{os.fspath(path)}: a resumed run keeps its stored settings; only "
            f"{', '.join(RESUMABLE_SETTINGS)} can change, not {', '.join(fixed)}"
        )
    try:
        return TrainConfig.from_dict({**payload["train_config"], **changes})
    except (TypeError, ValueError) as err:
        raise TurbosimError(f"{os.fspath(path)}: {err}") from err


#: Top-level sections of a YAML training configuration.
CONFIG_SECTIONS = ("preset", "model", "loss", "train")


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML training configuration.

    The file may hold ``preset`` (a name), ``model`` (`ModelConfig` fields), ``loss``
    (`LossConfig` fields: ``weights``, ``divergence``, ``gp_weights``, ``p``, ...) and
    ``train`` (`TrainConfig` fields).

    Raises
    ------
    InputError
        If the file is missing, not YAML, or has unknown sections.
    """
    import yaml

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(path, "no such file")
    try:
        with open(path) as handle:
            content = yaml.safe_load(handle) or {}
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(content, dict):
        raise InputError(path, "must hold a mapping of sections")
    unknown = set(content) - set(CONFIG_SECTIONS)
    if unknown:
        raise InputError(
            path, f"unknown section(s) {sorted(unknown)}; known: {list(CONFIG_SECTIONS)}"
        )
    return content


def build_configs(
    file_config: Mapping[str, Any] | None = None,
    *,
    preset: str | None = None,
    weights: Mapping[str, float] | None = None,
    divergence: Mapping[str, str] | None = None,
    score: Mapping[str, str] | None = None,
    loss_overrides: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    source: str = "configuration",
) -> tuple[ModelConfig, LossConfig, TrainConfig]:
    """Model, loss and training settings from defaults, a config file and overrides.

    Precedence, lowest first: built-in defaults and the preset's weights, the file's
    ``loss`` section, then the explicit ``weights``/``divergence``/``score``/
    ``loss_overrides``/``train_overrides`` (the command-line flags; ``weights``,
    ``divergence`` and ``score`` replace the file's term by term). ``preset`` replaces
    the file's preset.

    Raises
    ------
    TurbosimError
        Naming ``source`` when a setting is unknown or invalid.
    """
    file_config = dict(file_config or {})
    try:
        model_config = ModelConfig.from_dict(file_config.get("model"))
        loss_section = {**dict(file_config.get("loss") or {}), **dict(loss_overrides or {})}
        loss_weights = {**dict(loss_section.pop("weights", None) or {}), **dict(weights or {})}
        loss_divergence = {
            **dict(loss_section.pop("divergence", None) or {}),
            **dict(divergence or {}),
        }
        loss_score = {**dict(loss_section.pop("score", None) or {}), **dict(score or {})}
        loss = preset_loss_config(
            preset or file_config.get("preset") or DEFAULT_PRESET,
            loss_weights,
            divergence=loss_divergence,
            score=loss_score,
            **loss_section,
        )
        train_values = {**dict(file_config.get("train") or {}), **dict(train_overrides or {})}
        train_config = TrainConfig.from_dict(train_values)
    except (TypeError, ValueError) as err:
        raise TurbosimError(f"{source}: {err}") from err
    return model_config, loss, train_config
