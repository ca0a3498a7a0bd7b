"""The training loop: `train` (events of files -> a model file) and `fit` (the epochs).

The events are held as standardised tensors on the device and batched by index (one
`torch.randperm` per epoch), with no per-sample data loader. Each batch is one
optimisation step (`turbosim_hep.training.step`); the loss values are accumulated on the
device and read once per epoch. After every epoch the model is validated
(`turbosim_hep.training.evaluation`), the best one is kept, and the checkpoint and the
JSON-lines log are written, so a killed run loses at most the epoch in progress.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from turbosim_hep.device import flush_denormals
from turbosim_hep.errors import InputError, OutputError, TurbosimError, check_parent_directory
from turbosim_hep.model.acceptance import AcceptanceConfig
from turbosim_hep.model.checkpoint import acceptance_from_checkpoint, load_checkpoint
from turbosim_hep.model.losses import LossConfig
from turbosim_hep.model.presets import loss_config as preset_loss_config
from turbosim_hep.model.turbosim import ModelConfig, TurboSim
from turbosim_hep.outputs import AtomicOutput, check_not_an_input
from turbosim_hep.training.acceptance import AcceptanceSettings, fit_acceptance, learnable
from turbosim_hep.training.config import TrainConfig, resumed_train_config
from turbosim_hep.training.data import LabelledPartons, PairedEvents, read_labelled, read_pairs
from turbosim_hep.training.evaluation import ValidationSet
from turbosim_hep.training.state import Trainer


@dataclass
class TrainResult:
    """What `fit` and `train` return.

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
    acceptance : dict or None
        The record of the calibrated acceptance stored with the model, on the
        out-of-fold predictions of its training examples (BCE, AUC, calibration error,
        predicted and observed selected events), None if the model has none.
    config : TrainConfig or None
        The training settings of the run (None: not recorded).
    """

    model: TurboSim
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_ks: float = math.inf
    acceptance: dict[str, Any] | None = None
    config: TrainConfig | None = None


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
    labelled: LabelledPartons | None = None,
    acceptance_settings: AcceptanceSettings | None = None,
) -> TrainResult:
    """Train a model on the events of ``paths`` and write it to ``output``.

    Before the first epoch of a new run, the detector acceptance is learnt from every
    event of the files with the six partons, selected or not (`read_labelled`), when
    ``train_config.acceptance`` is set and the files hold rejected events; it is stored
    in ``output`` with the model and recorded at the top of the log.

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
    labelled : LabelledPartons, optional
        The acceptance's examples, instead of reading them from ``paths`` (with
        ``events`` given and ``labelled`` not, no acceptance is learnt).
    acceptance_settings : AcceptanceSettings, optional
        How the acceptance is trained (default: `AcceptanceSettings()`).

    Raises
    ------
    InputError
        If a file cannot be read or holds too few events, or the checkpoint to resume
        is missing or was trained on other events.
    OutputError
        If ``output`` exists and neither ``resume`` nor ``force`` is given.
    TurbosimError
        When resuming with new configurations, or with a change to a setting that a
        resumed run keeps.
    """
    output = os.fspath(output)
    for written in (output, log_path_for(output)):
        check_not_an_input(written, paths)
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
    data = events if events is not None else read_pairs(
        paths, train_config.channel, train_config.event_layout
    )
    train_events, val_events = data.split(train_config.val_fraction)
    if len(train_events) < 2:
        source = paths[0] if paths else output
        raise InputError(source, f"only {len(data)} events: too few to train on")
    if resume:
        trainer = Trainer.resume(
            output, train_events, val_events, payload=payload, **(resume_changes or {})
        )
        _warn_if_finished(trainer, output)
        try:
            acceptance_from_checkpoint(payload, output)
        except InputError:  # another version's acceptance, which simulate refuses
            trainer.acceptance = None  # learnt again below
    else:
        trainer = Trainer(
            model_config or ModelConfig(), loss_config or preset_loss_config(), train_config
        )
    metadata = {
        "inputs": [os.path.basename(os.fspath(p)) for p in paths],
        "n_train": len(train_events),
        "n_val": len(val_events),
    }
    # the acceptance is learnt before the first epoch of a new run, and by a resumed run
    # whose checkpoint has none (a run on given events, or another version's), which
    # stores it at once
    if train_config.acceptance and trainer.acceptance is None:
        if labelled is None and events is None:
            labelled = read_labelled(paths, train_config.channel, train_config.event_layout)
        trainer.acceptance = learn_acceptance(
            labelled, acceptance_settings, trainer.device, progress
        )
        if resume and trainer.acceptance is not None:
            _store(trainer, output, log_path_for(output), metadata, force=True)
    return fit(
        trainer,
        train_events,
        val_events,
        checkpoint=output,
        log_path=log_path_for(output),
        progress=progress,
        metadata=metadata,
        force=force or resume,
    )


def fit(
    trainer: Trainer,
    train: PairedEvents,
    val: PairedEvents,
    *,
    checkpoint: str | os.PathLike | None = None,
    log_path: str | os.PathLike | None = None,
    progress: bool = True,
    metadata: Mapping[str, Any] | None = None,
    force: bool = True,
) -> TrainResult:
    """Train until ``trainer.config.epochs`` (or early stopping), validating every epoch.

    Parameters
    ----------
    trainer : Trainer
        A new run, or one resumed (`Trainer.resume`) on the same events.
    train, val : PairedEvents
        Training and validation events in physical units.
    checkpoint : path, optional
        Written after every epoch: the best weights plus what `Trainer.resume` needs.
    log_path : path, optional
        JSON-lines log, one record per epoch; rewritten whole (atomically) after each
        checkpoint, so it always matches the checkpoint and a failed run leaves none.
    progress : bool
        Show a tqdm progress bar.
    metadata : mapping, optional
        Stored in the checkpoint.
    force : bool
        Let the first checkpoint replace an existing file. False (a new run without
        ``--force``): a file that appeared since the start, a concurrent run's output,
        is not replaced; the run fails instead.
    """
    config = trainer.config
    x, z = trainer.prepare(train, val)
    validation = ValidationSet.from_events(val, trainer.device, config.val_max_events)
    batch = min(config.batch_size, len(train))
    bar = tqdm(
        total=(config.epochs - trainer.epoch) * (len(train) // batch),
        disable=not progress,
        unit="batch",
        desc="train",
        dynamic_ncols=True,
    )
    # denormal floats (tiny gradients, Adam moments) slow CPU arithmetic down
    cpu = trainer.device.type == "cpu"
    with bar, flush_denormals() if cpu else contextlib.nullcontext():
        while trainer.epoch < config.epochs and (
            config.patience is None or trainer.stale_epochs < config.patience
        ):
            record = {"epoch": trainer.epoch + 1, "lr": _set_learning_rates(trainer)}
            record.update(train_epoch(trainer, x, z, batch, bar))
            record.update(trainer.validate(validation))
            trainer.end_epoch(record)
            bar.set_postfix(
                ks=f"{record['ks_sum']:.3f}", best=f"{trainer.best_ks:.3f}@{trainer.best_epoch}"
            )
            _store(trainer, checkpoint, log_path, metadata, force)
            force = True  # the file is this run's own from now on
    acceptance = trainer.acceptance["history"][-1] if trainer.acceptance else None
    return TrainResult(
        trainer.best_model(), list(trainer.history), trainer.best_epoch, trainer.best_ks,
        acceptance, config,
    )


def _store(
    trainer: Trainer,
    checkpoint: str | os.PathLike | None,
    log_path: str | os.PathLike | None,
    metadata: Mapping[str, Any] | None,
    force: bool,
) -> None:
    """Write the run's checkpoint and its log (each where a path is given)."""
    if checkpoint is not None:
        trainer.save(checkpoint, metadata=metadata, force=force)
    if log_path is not None:
        _write_log(log_path, _acceptance_log(trainer.acceptance) + trainer.history)


def _warn_if_finished(trainer: Trainer, output: str) -> None:
    """Warn that a resumed run has nothing to do: it has the epochs asked for already, or
    stopped early for want of improvement."""
    config = trainer.config
    if trainer.epoch >= config.epochs:
        warnings.warn(
            f"{output}: the run has {trainer.epoch} epochs already, as many as or more than "
            f"the {config.epochs} asked for; nothing to train (give a larger --epochs to "
            "continue it)",
            stacklevel=3,
        )
    elif config.patience is not None and trainer.stale_epochs >= config.patience:
        warnings.warn(
            f"{output}: the run stopped early at epoch {trainer.epoch}, {trainer.stale_epochs} "
            f"epochs without improvement (--patience {config.patience}); nothing to train "
            "(give a larger --patience to continue it)",
            stacklevel=3,
        )


def learn_acceptance(
    labelled: LabelledPartons | None,
    settings: AcceptanceSettings | None,
    device: torch.device,
    progress: bool,
) -> dict[str, Any] | None:
    """The acceptance record of a model file, or None when nothing can be learnt.

    The record holds the calibrated classifier (``config``, ``state``), its training
    ``settings``, the number of ``examples`` and its training ``history``. Events
    that all pass the selection (files of selected events only), or too few of either
    outcome to fill every fold of its cross-fitting, teach no acceptance.
    """
    settings = settings or AcceptanceSettings()
    if labelled is None or not learnable(labelled, AcceptanceConfig().members):
        return None
    model, history = fit_acceptance(labelled, settings, device=device, progress=progress)
    return {
        "config": model.config.to_dict(),
        "state": model.state_dict(),
        "settings": settings.to_dict(),
        "examples": len(labelled),
        "history": history,
    }


def train_epoch(
    trainer: Trainer, x: torch.Tensor, z: torch.Tensor, batch: int, bar: tqdm
) -> dict[str, Any]:
    """One pass over the standardised training events ``x``, ``z`` in batches of ``batch``.

    Returns the mean of each logged value (``train``) and the epoch's duration and rate.
    """
    trainer.model.train()
    started = time.perf_counter()
    n = len(x)
    n_batches = n // batch
    names = trainer.log_names
    order = torch.randperm(n, device=trainer.device, generator=trainer.generator)
    totals = torch.zeros(len(names), device=trainer.device)
    for b in range(n_batches):
        index = order[b * batch : (b + 1) * batch]
        totals += trainer.step(x[index], z[index])
        if (b + 1) % 50 == 0:
            bar.update(50)
    bar.update(n_batches % 50)
    means = (totals / n_batches).tolist()  # the one host sync of the epoch
    elapsed = time.perf_counter() - started
    trainer.model.eval()
    return {
        "train": dict(zip(names, means, strict=True)),
        "seconds": elapsed,
        "events_per_second": n_batches * batch / elapsed,
    }


def _set_learning_rates(trainer: Trainer) -> float:
    """Set the learning rates of the coming epoch (a function of the epoch, so a resumed
    run follows the same schedule); returns that of the encoder and the decoder."""
    config = trainer.config
    factor = config.lr_factor(trainer.epoch)
    for optimizer, base in (
        (trainer.optimizer, config.lr),
        (trainer.critic_optimizer, config.critic_lr),
    ):
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = base * factor
    return config.lr * factor


def _acceptance_log(acceptance: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The log's first record: the acceptance's training history (none without one)."""
    if not acceptance:
        return []
    return [{"acceptance": {"examples": acceptance["examples"], "history": acceptance["history"]}}]


def _write_log(path: str | os.PathLike, history: Sequence[Mapping[str, Any]]) -> None:
    """The JSON-lines log of ``history``, replacing the previous one atomically."""
    text = "".join(json.dumps(record) + "\n" for record in history)
    with AtomicOutput(path, force=True) as output:
        output.write_bytes(text.encode())


def log_path_for(output: str | os.PathLike) -> str:
    """The JSON-lines log written beside a model file (``model.pt`` -> ``model.log.jsonl``)."""
    root, _ = os.path.splitext(os.fspath(output))
    return root + ".log.jsonl"
