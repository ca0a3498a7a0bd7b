"""The state of a training run: `Trainer`.

A `Trainer` holds what a run trains and what it has done so far: the model, the objective
with its critics, both optimisers, the random generator, the moving average of the
weights, the counters (epochs, critic updates, early stopping), the best epoch's weights,
the per-epoch history and the fingerprint of its events. `Trainer.state_dict` returns all
of it as tensors and plain values and `Trainer.load_state_dict` restores it, so a resumed
run continues bit for bit where the saved one stopped. The epoch loop that drives a
trainer is `turbosim_hep.training.loop`.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from turbosim_hep.device import resolve_device
from turbosim_hep.errors import InputError, TurbosimError
from turbosim_hep.model.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from turbosim_hep.model.losses import LossConfig, TurboSimObjective
from turbosim_hep.model.turbosim import ModelConfig, TurboSim
from turbosim_hep.training.config import TrainConfig, resumed_train_config
from turbosim_hep.training.data import PairedEvents, to_device
from turbosim_hep.training.evaluation import ValidationSet, validate
from turbosim_hep.training.graphs import CapturedSteps, graphs_unavailable
from turbosim_hep.training.step import TrainStep, log_names


class Trainer:
    """A training run of a `TurboSim` model with a `TurboSimObjective`.

    Parameters
    ----------
    model_config : ModelConfig
        Architecture of the encoder and decoder.
    loss_config : LossConfig
        Weights and estimators of the eight terms.
    train_config : TrainConfig
        Optimiser, batching, validation and device settings.

    Raises
    ------
    TurbosimError
        If every loss weight is zero.
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
        #: The step as CUDA graphs (`turbosim_hep.training.graphs`); None: eager steps.
        self.captured_steps = self._captured_steps()
        self.ema: AveragedModel | None = None
        self.epoch = 0
        self.critic_updates = 0
        self.best_ks = math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale_epochs = 0
        self.history: list[dict[str, Any]] = []
        #: Identifies the training and validation events once `prepare` has seen them.
        self.fingerprint: list[float] | None = None
        #: The detector acceptance learnt beside the model (`train`), stored with it:
        #: ``config``, ``state``, ``settings`` and its validation ``history``.
        self.acceptance: dict[str, Any] | None = None

    def _captured_steps(self) -> CapturedSteps | None:
        """Captured steps on CUDA when ``graphs`` is set (and possible; else one warning)."""
        if not self.config.graphs or self.device.type != "cuda":
            return None
        reason = graphs_unavailable(self.device)
        if reason is not None:
            warnings.warn(f"training without CUDA graphs: {reason}", stacklevel=3)
            return None
        return CapturedSteps(self._step, self.generator, self.config.ema_decay)

    def _trained_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of the networks some active term reaches (the others stay untouched)."""
        needs = self.objective.needs
        params = []
        if needs & {"zt", "xh", "zh"}:
            params += list(self.model.encoder.parameters())
        if needs & {"xh", "xt", "zh"}:
            params += list(self.model.decoder.parameters())
        return params

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

    def prepare(
        self, train: PairedEvents, val: PairedEvents
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bind the run to its events before the first epoch (of a new or resumed run).

        Fits the standardisation (in a new run) and the scale of the mass term to the
        training events, begins the moving average and records the events' fingerprint.

        Returns
        -------
        x, z : torch.Tensor
            The standardised training events on the device.
        """
        x, z = to_device(train.x, self.device), to_device(train.z, self.device)
        if self.captured_steps is not None:
            self.captured_steps.reset()  # the mass term's reference is made anew
        if self.epoch == 0:
            self.model.fit_standardisation(x, z)
        self._start_moving_average()
        scaler = self.model.x_scaler
        if self.objective.uses_mass:
            self.objective.fit_mass_scale(x, scaler.mean, scaler.std)
        self.fingerprint = train.fingerprint() + val.fingerprint()
        return scaler(x), self.model.z_scaler(z)

    # --- one batch ------------------------------------------------------------------
    def step(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a standardised batch, then the moving average.

        The step (`TrainStep`) gets the penalty scale of each critic update from the
        run's count of critic updates (`TrainConfig.penalty_scales`). On CUDA with
        ``graphs`` the step and the average are one replay of a captured graph.

        Returns
        -------
        torch.Tensor
            Detached, on the device: the values named by `log_names`.
        """
        scales: tuple[float, ...] = ()
        if self.critic_optimizer is not None:
            scales = self.config.penalty_scales(self.critic_updates)
            self.critic_updates += len(scales)
        if self.captured_steps is not None:
            return self.captured_steps(x, z, scales, self.ema)
        values = self._step(x, z, self.generator, scales)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return values

    @property
    def log_names(self) -> list[str]:
        """Names of the values `step` returns."""
        return log_names(self.objective)

    # --- one epoch's end ------------------------------------------------------------
    def validate(self, events: ValidationSet) -> dict[str, Any]:
        """The validation record of the evaluated model (`evaluation.validate`)."""
        return validate(
            self.evaluated_model,
            self.objective,
            events,
            noise_seed=self.config.seed + 1,
            select_on_physics=self.config.select_on_physics,
        )

    def end_epoch(self, record: dict[str, Any]) -> None:
        """Count the epoch, keep the best model, track early stopping, add the record
        (marked ``best`` when its ``ks_sum`` is the lowest so far) to the history."""
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

    def best_model(self) -> TurboSim:
        """The best epoch's model (the evaluated one before any epoch), in eval mode."""
        best = TurboSim(self.model_config).to(self.device)
        best.load_state_dict(self.best_state or self.evaluated_model.state_dict())
        return best.eval()

    # --- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors (on the CPU) and plain values.

        The keys are those of a checkpoint's ``training_state`` (`save`) and
        ``best_state`` and ``history``, which a checkpoint stores as its ``model_state``
        (the weights `load_model` reads) and its ``history``.
        """

        def on_cpu(module_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.detach().cpu() for k, v in module_state.items()}

        return {
            "epoch": self.epoch,
            "critic_updates": self.critic_updates,
            "model_state": on_cpu(self.model.state_dict()),
            "ema_state": on_cpu(self.ema.state_dict()) if self.ema is not None else None,
            "objective_state": on_cpu(self.objective.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "critic_optimizer": (
                self.critic_optimizer.state_dict() if self.critic_optimizer else None
            ),
            "generator": self.generator.get_state(),
            "best_ks": self.best_ks,
            "best_epoch": self.best_epoch,
            "stale_epochs": self.stale_epochs,
            "fingerprint": self.fingerprint,
            "best_state": on_cpu(self.best_state) if self.best_state is not None else None,
            "history": [dict(record) for record in self.history],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned (of a trainer with the same configurations).

        The values are copied: ``state`` and this trainer share no tensor afterwards.
        """
        if self.captured_steps is not None:
            self.captured_steps.reset()  # the optimisers get new state tensors
        self.model.load_state_dict(state["model_state"])
        if state.get("ema_state"):
            self._start_moving_average()
            self.ema.load_state_dict(state["ema_state"])
        self.objective.load_state_dict(state["objective_state"])
        # an optimiser would keep the given tensors as its own state
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if self.critic_optimizer is not None:
            self.critic_optimizer.load_state_dict(copy.deepcopy(state["critic_optimizer"]))
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.critic_updates = int(state.get("critic_updates", 0))
        self.best_ks = float(state["best_ks"])
        self.best_epoch = int(state["best_epoch"])
        self.stale_epochs = int(state["stale_epochs"])
        fingerprint = state.get("fingerprint")
        self.fingerprint = [float(f) for f in fingerprint] if fingerprint is not None else None
        best = state.get("best_state")
        self.best_state = (
            {k: v.to(self.device, copy=True) for k, v in best.items()} if best is not None else None
        )
        self.history = [dict(record) for record in state["history"]]

    def save(
        self,
        path: str | os.PathLike,
        metadata: Mapping[str, Any] | None = None,
        *,
        force: bool = True,
    ) -> None:
        """Write the checkpoint: best weights, configurations, history and training state.

        ``force`` False refuses to replace an existing file (`save_checkpoint`).
        """
        state = self.state_dict()
        best_state, history = state.pop("best_state"), state.pop("history")
        save_checkpoint(
            path,
            self.model,
            model_state=best_state,
            loss_config=asdict(self.loss_config),
            train_config=self.config.to_dict(),
            history=history,
            training_state=state,
            metadata=metadata,
            acceptance=self.acceptance,
            layout=self.config.event_layout,
            force=force,
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
        """A trainer continuing the run saved in ``path`` (on the same events).

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
        stored = state.get("fingerprint")
        if stored is not None and list(stored) != train.fingerprint() + val.fingerprint():
            raise InputError(
                path, "was trained on other events; give the same input files to resume"
            )
        best = model_from_checkpoint(payload, path).state_dict()
        trainer.load_state_dict({**state, "best_state": best, "history": payload["history"]})
        trainer.acceptance = payload.get("acceptance")
        return trainer
