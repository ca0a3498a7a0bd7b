"""Training of a Turbo-Sim model on paired (Z, X) events.

The events are held as standardised tensors on the device and batched by index (a
`torch.randperm` per epoch), with no per-sample data loader. Each batch makes one
forward pass through the encoder and the decoder; the critics are updated on the
detached fakes, then the encoder and decoder on the weighted eight-term objective.
Loss values are accumulated on the device and read once per epoch.

After every epoch the model is validated (sum of per-feature KS distances of the
generated marginals, fraction of physically valid events), the best model is kept and
a checkpoint is written holding the best weights and everything ``--resume`` needs.
With ``ema_decay`` set, the model validated and kept is an exponential moving average
of the trained weights (`torch.optim.swa_utils.AveragedModel`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from turbosim_hep.device import resolve_device
from turbosim_hep.errors import InputError, OutputError, TurbosimError, check_parent_directory
from turbosim_hep.model.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from turbosim_hep.model.losses import LossConfig, TurboSimObjective
from turbosim_hep.model.presets import loss_config as preset_loss_config
from turbosim_hep.model.turbosim import ModelConfig, TurboSim
from turbosim_hep.training.config import TrainConfig, resumed_train_config
from turbosim_hep.training.data import PairedEvents, read_pairs, to_device
from turbosim_hep.training.evaluation import ValidationSet, validate
from turbosim_hep.training.step import TrainStep, log_names


@dataclass
class TrainResult:
    """What `Trainer.fit` returns.

    Attributes
    ----------
    model : TurboSim
        The best model (lowest validation KS sum), in eval mode.
    history : list of dict
        One record per epoch (the lines of the JSON-lines log).
    best_epoch : int
        Epoch (1-based) of the best model.
    best_ks : float
        Its validation KS sum.
    """

    model: TurboSim
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_ks: float = math.inf


class Trainer:
    """Trains a `TurboSim` model with a `TurboSimObjective` on paired events.

    Parameters
    ----------
    model_config : ModelConfig
        Architecture of the encoder and decoder.
    loss_config : LossConfig
        Weights and estimators of the eight terms.
    train_config : TrainConfig
        Optimiser, batching, validation and device settings.
    """

    def __init__(
        self, model_config: ModelConfig, loss_config: LossConfig, train_config: TrainConfig
    ):
        self.model_config = model_config
        self.loss_config = loss_config
        self.config = train_config
        self.device = resolve_device(train_config.device)
        if train_config.threads and self.device.type == "cpu":
            torch.set_num_threads(train_config.threads)
        torch.manual_seed(train_config.seed)
        self.model = TurboSim(model_config).to(self.device)
        self.objective = TurboSimObjective(loss_config).to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(train_config.seed)
        if not self.objective.term_names:
            raise TurbosimError("every loss weight is zero: there is nothing to train")
        self.optimizer = torch.optim.Adam(
            self._trained_parameters(),
            lr=train_config.lr,
            betas=train_config.betas,
            weight_decay=train_config.weight_decay,
            fused=True,
        )
        self.critic_optimizer = (
            torch.optim.Adam(
                self.objective.critics.parameters(),
                lr=train_config.critic_lr,
                betas=train_config.critic_betas,
                weight_decay=train_config.critic_weight_decay,
                fused=True,
            )
            if self.objective.critics is not None
            else None
        )
        self._step = TrainStep(
            self.model,
            self.objective,
            self.optimizer,
            self.critic_optimizer,
            autocast=train_config.amp and self.device.type == "cuda",
        )
        self.history: list[dict[str, Any]] = []
        self.critic_updates = 0
        self.ema: AveragedModel | None = None
        self.epoch = 0
        self.best_ks = math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale_epochs = 0

    @property
    def evaluated_model(self) -> TurboSim:
        """The model validated and kept: the moving average if ``ema_decay`` is set."""
        return self.ema.module if self.ema is not None else self.model

    def _start_moving_average(self) -> None:
        """Begin the weight average (once the standardisation, a buffer, is fitted)."""
        if self.config.ema_decay is not None and self.ema is None:
            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay)
            ).eval()

    def _trained_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of the networks some active term reaches (the others stay untouched)."""
        needs = self.objective.needs
        params = []
        if needs & {"zt", "xh", "zh"}:
            params += list(self.model.encoder.parameters())
        if needs & {"xh", "xt", "zh"}:
            params += list(self.model.decoder.parameters())
        return params

    # --- one batch ------------------------------------------------------------------
    def step(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a standardised batch (`TrainStep`), with the penalty
        schedule of the run's critic-update count, then the moving average.

        Returns
        -------
        torch.Tensor
            Detached, on the device: the values named by `log_names`.
        """
        scales: tuple[float, ...] = ()
        if self.critic_optimizer is not None:
            scales = self.config.penalty_scales(self.critic_updates)
            self.critic_updates += len(scales)
        values = self._step(x, z, self.generator, scales)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return values

    @property
    def log_names(self) -> list[str]:
        """Names of the values `step` returns."""
        return log_names(self.objective)

    # --- validation -----------------------------------------------------------------
    def validate(self, events: ValidationSet) -> dict[str, Any]:
        """The validation record of the evaluated model (`evaluation.validate`)."""
        return validate(
            self.evaluated_model,
            self.objective,
            events,
            noise_seed=self.config.seed + 1,
            select_on_physics=self.config.select_on_physics,
        )

    # --- the loop -------------------------------------------------------------------
    def fit(
        self,
        train: PairedEvents,
        val: PairedEvents,
        *,
        checkpoint: str | os.PathLike | None = None,
        log_path: str | os.PathLike | None = None,
        progress: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> TrainResult:
        """Train until ``config.epochs`` (or early stopping), validating every epoch.

        Parameters
        ----------
        train, val : PairedEvents
            Training and validation events in physical units.
        checkpoint : path, optional
            Written after every epoch: the best weights plus what `resume` needs.
        log_path : path, optional
            JSON-lines log, one record per epoch (rewritten from the history on resume).
        progress : bool
            Show a tqdm progress bar.
        metadata : mapping, optional
            Stored in the checkpoint.
        """
        config = self.config
        x_train, z_train = to_device(train.x, self.device), to_device(train.z, self.device)
        if self.epoch == 0:
            self.model.fit_standardisation(x_train, z_train)
        self._start_moving_average()
        scaler = self.model.x_scaler
        if self.objective.uses_mass:
            self.objective.fit_mass_scale(x_train, scaler.mean, scaler.std)
        self._fingerprint = train.fingerprint() + val.fingerprint()
        x_train, z_train = scaler(x_train), self.model.z_scaler(z_train)
        validation = ValidationSet.from_events(val, self.device, config.val_max_events)
        batch = min(config.batch_size, len(train))
        if log_path is not None:
            _write_log(log_path, self.history)
        bar = tqdm(
            total=(config.epochs - self.epoch) * (len(train) // batch),
            disable=not progress,
            unit="batch",
            desc="train",
            dynamic_ncols=True,
        )
        # denormal floats (tiny gradients, Adam moments) slow CPU arithmetic down
        flush_denormal = self.device.type == "cpu" and torch.set_flush_denormal(True)
        try:
            with bar:
                while self.epoch < config.epochs:
                    if config.patience is not None and self.stale_epochs >= config.patience:
                        break
                    record = {"epoch": self.epoch + 1, "lr": self._set_learning_rates()}
                    record.update(self._train_epoch(x_train, z_train, batch, bar))
                    record.update(self.validate(validation))
                    self._end_epoch(record)
                    bar.set_postfix(
                        ks=f"{record['ks_sum']:.3f}", best=f"{self.best_ks:.3f}@{self.best_epoch}"
                    )
                    if checkpoint is not None:
                        self.save(checkpoint, metadata=metadata)
                    if log_path is not None:
                        _append_log(log_path, record)
        finally:
            if flush_denormal:
                torch.set_flush_denormal(False)
        best = TurboSim(self.model_config).to(self.device)
        best.load_state_dict(self.best_state or self.evaluated_model.state_dict())
        return TrainResult(best.eval(), list(self.history), self.best_epoch, self.best_ks)

    def _set_learning_rates(self) -> float:
        """Set the learning rates of the coming epoch (a function of the epoch, so a resumed
        run follows the same schedule); returns that of the encoder and the decoder."""
        factor = self.config.lr_factor(self.epoch)
        for optimizer, base in (
            (self.optimizer, self.config.lr),
            (self.critic_optimizer, self.config.critic_lr),
        ):
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = base * factor
        return self.config.lr * factor

    def _train_epoch(
        self, x_train: torch.Tensor, z_train: torch.Tensor, batch: int, bar: tqdm
    ) -> dict[str, Any]:
        """One pass over the (standardised) training events; mean of the logged values."""
        self.model.train()
        started = time.perf_counter()
        n = len(x_train)
        n_batches = n // batch
        names = self.log_names
        order = torch.randperm(n, device=self.device, generator=self.generator)
        totals = torch.zeros(len(names), device=self.device)
        for b in range(n_batches):
            index = order[b * batch : (b + 1) * batch]
            totals += self.step(x_train[index], z_train[index])
            if (b + 1) % 50 == 0:
                bar.update(50)
        bar.update(n_batches % 50)
        means = (totals / n_batches).tolist()  # the one host sync of the epoch
        elapsed = time.perf_counter() - started
        self.model.eval()
        return {
            "train": dict(zip(names, means, strict=True)),
            "seconds": elapsed,
            "events_per_second": n_batches * batch / elapsed,
        }

    def _end_epoch(self, record: dict[str, Any]) -> None:
        """Count the epoch, keep the best model, track early stopping, log the record."""
        self.epoch += 1
        record["best"] = record["ks_sum"] < self.best_ks
        if record["best"]:
            self.best_ks, self.best_epoch = record["ks_sum"], self.epoch
            self.stale_epochs = 0
            state = self.evaluated_model.state_dict()
            self.best_state = {k: v.detach().clone() for k, v in state.items()}
        else:
            self.stale_epochs += 1
        self.history.append(record)

    # --- checkpoints ----------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """Everything `resume` needs, as tensors and plain values."""
        return {
            "epoch": self.epoch,
            "critic_updates": self.critic_updates,
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema_state": (
                {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}
                if self.ema is not None
                else None
            ),
            "objective_state": {
                k: v.detach().cpu() for k, v in self.objective.state_dict().items()
            },
            "optimizer": self.optimizer.state_dict(),
            "critic_optimizer": (
                self.critic_optimizer.state_dict() if self.critic_optimizer else None
            ),
            "generator": self.generator.get_state(),
            "best_ks": self.best_ks,
            "best_epoch": self.best_epoch,
            "stale_epochs": self.stale_epochs,
            "fingerprint": self._fingerprint,
        }

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write the checkpoint: best weights, configuration, history and training state."""
        save_checkpoint(
            path,
            self.model,
            model_state=self.best_state,
            loss_config=asdict(self.loss_config),
            train_config=self.config.to_dict(),
            history=self.history,
            training_state=self.training_state(),
            metadata=metadata,
        )

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike,
        train: PairedEvents,
        val: PairedEvents,
        *,
        payload: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> Trainer:
        """A trainer continuing the run saved in ``path`` (on the same data).

        The run keeps its stored model, loss and training settings; only the settings in
        `RESUMABLE_SETTINGS` may change (for example a new total of ``epochs`` extends a
        finished run).

        Parameters
        ----------
        path : path
            A checkpoint written by `save` (``turbosim-hep train -o``).
        train, val : PairedEvents
            The same events as the original run.
        payload : mapping, optional
            The checkpoint's content, when the caller has already loaded it.
        **changes
            New values of `RESUMABLE_SETTINGS`.

        Raises
        ------
        InputError
            If ``path`` holds no training state, or the events are not those of the run.
        TurbosimError
            If ``changes`` names a setting that a resumed run cannot change.
        """
        payload = load_checkpoint(path) if payload is None else payload
        state = payload.get("training_state")
        if not state:
            raise InputError(path, "holds no training state to resume from")
        trainer = cls(
            ModelConfig.from_dict(payload["model_config"]),
            LossConfig(**payload["loss_config"]),
            resumed_train_config(payload, path, changes),
        )
        if list(state["fingerprint"]) != train.fingerprint() + val.fingerprint():
            raise InputError(
                path, "was trained on other events; give the same input files to resume"
            )
        device = trainer.device
        trainer.model.load_state_dict(state["model_state"])
        if state.get("ema_state"):
            trainer._start_moving_average()
            trainer.ema.load_state_dict(state["ema_state"])
        trainer.objective.load_state_dict(state["objective_state"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        if trainer.critic_optimizer is not None:
            trainer.critic_optimizer.load_state_dict(state["critic_optimizer"])
        trainer.generator.set_state(state["generator"])
        trainer.epoch = int(state["epoch"])
        trainer.critic_updates = int(state.get("critic_updates", 0))
        trainer.best_ks = float(state["best_ks"])
        trainer.best_epoch = int(state["best_epoch"])
        trainer.stale_epochs = int(state["stale_epochs"])
        trainer.history = [dict(h) for h in payload["history"]]
        best = model_from_checkpoint(payload, path)
        trainer.best_state = {k: v.to(device) for k, v in best.state_dict().items()}
        return trainer


def _write_log(path: str | os.PathLike, history: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w") as handle:
        for record in history:
            handle.write(json.dumps(record) + "\n")


def _append_log(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def log_path_for(output: str | os.PathLike) -> str:
    """The JSON-lines log written beside a model file (``model.pt`` -> ``model.log.jsonl``)."""
    root, _ = os.path.splitext(os.fspath(output))
    return root + ".log.jsonl"


def train(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    model_config: ModelConfig | None = None,
    loss_config: LossConfig | None = None,
    train_config: TrainConfig | None = None,
    resume: bool = False,
    resume_changes: Mapping[str, Any] | None = None,
    force: bool = False,
    progress: bool = True,
    events: PairedEvents | None = None,
) -> TrainResult:
    """Train a model on the events of ``paths`` and write it to ``output``.

    Parameters
    ----------
    paths : sequence of path
        ROOT files (Delphes or turbosim-hep) or HDF5 exports holding Z and X.
    output : path
        The model file; rewritten after every epoch. A JSON-lines log is written
        beside it (`log_path_for`).
    model_config, loss_config, train_config : optional
        Settings of a new run (defaults: the reference architecture, the ``turbosim``
        preset and the reference optimiser).
    resume : bool
        Continue the run saved in ``output`` (same files) with its stored settings.
    resume_changes : mapping, optional
        When resuming, new values of `RESUMABLE_SETTINGS`, e.g. ``{"epochs": 40}`` (the
        new total number of epochs).
    force : bool
        Overwrite an existing ``output`` when not resuming.
    progress : bool
        Show a progress bar.
    events : PairedEvents, optional
        Use these events instead of reading ``paths`` (which are then only recorded).

    Raises
    ------
    TurbosimError
        When resuming with new configurations, or with a change to a setting that a
        resumed run keeps.
    """
    output = os.fspath(output)
    if resume:
        if not os.path.exists(output):
            raise InputError(output, "no such file to resume from")
        if any(c is not None for c in (model_config, loss_config, train_config)):
            raise TurbosimError(
                f"{output}: a resumed run keeps its stored settings; give resume_changes, "
                "not new configurations"
            )
        payload = load_checkpoint(output)
        train_config = resumed_train_config(payload, output, resume_changes or {})
    else:
        if resume_changes:
            raise TurbosimError("resume_changes needs resume=True")
        if os.path.exists(output) and not force:
            raise OutputError(
                output, "exists; use --resume to continue it or --force to overwrite it"
            )
        train_config = train_config or TrainConfig()
    check_parent_directory(output)
    data = events if events is not None else read_pairs(paths)
    train_events, val_events = data.split(train_config.val_fraction)
    if len(train_events) < 2:
        source = paths[0] if paths else output
        raise InputError(source, f"only {len(data)} events: too few to train on")
    if resume:
        trainer = Trainer.resume(
            output, train_events, val_events, payload=payload, **(resume_changes or {})
        )
    else:
        trainer = Trainer(
            model_config or ModelConfig(), loss_config or preset_loss_config(), train_config
        )
    metadata = {
        "inputs": [os.path.basename(os.fspath(p)) for p in paths],
        "n_train": len(train_events),
        "n_val": len(val_events),
    }
    return trainer.fit(
        train_events,
        val_events,
        checkpoint=output,
        log_path=log_path_for(output),
        progress=progress,
        metadata=metadata,
    )


