"""Training of the acceptance classifier epsilon(z) on labelled parton-level events.

Every event with a complete parton record is an example (`LabelledPartons`): its label
says whether its detector-level event passed the reference selection, its weight how many
generated events it stands for. The classifier (`turbosim_hep.model.acceptance`) is
trained by weighted binary cross-entropy with Adam; the epoch of lowest validation loss
is kept, and its output is calibrated on the validation events (Platt scaling and
logit offsets in the electron's |eta|: `AcceptanceModel.calibrate`). Each
epoch's validation record holds the binary cross-entropy, the ROC AUC, the calibration
error and the predicted and observed (weighted) numbers of selected events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from turbosim_hep import metrics
from turbosim_hep.model.acceptance import AcceptanceConfig, AcceptanceModel
from turbosim_hep.settings import Settings
from turbosim_hep.training.data import LabelledPartons

#: Seed of the train/validation split of the acceptance examples.
SPLIT_SEED = 20211207


@dataclass
class AcceptanceSettings(Settings):
    """How the acceptance classifier is trained.

    Attributes
    ----------
    epochs : int
        Most passes over the training examples.
    batch_size : int
        Examples per Adam step.
    lr, weight_decay : float
        Adam settings.
    val_fraction : float
        Fraction of the examples held out for model selection and calibration.
    patience : int
        Stop when the validation loss has not improved for this many epochs.
    seed : int
        Seed of the initial weights and of the batching.
    """

    kind = "acceptance"

    epochs: int = 40
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.2
    patience: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.patience) < 1:
            raise ValueError("acceptance epochs, batch_size and patience must be at least 1")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"acceptance val_fraction must be in (0, 1), not {self.val_fraction}")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ValueError("acceptance lr must be positive and weight_decay non-negative")


def evaluate(
    model: AcceptanceModel, events: LabelledPartons, device: torch.device
) -> dict[str, float]:
    """Quality of the acceptance on ``events``: BCE, AUC, calibration error, yields."""
    with torch.no_grad():
        probability = model(torch.from_numpy(events.z).to(device)).double().cpu().numpy()
    weight = events.weight.astype(np.float64)
    return {
        "bce": metrics.binary_cross_entropy(probability, events.passed, weight),
        "auc": metrics.roc_auc(probability, events.passed, weight),
        "calibration_error": metrics.calibration_error(probability, events.passed, weight),
        "predicted_selected": float(np.sum(weight * probability)),
        "observed_selected": float(np.sum(weight * events.passed)),
    }


def fit_acceptance(
    events: LabelledPartons,
    settings: AcceptanceSettings | None = None,
    config: AcceptanceConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[AcceptanceModel, list[dict[str, Any]]]:
    """Train and calibrate an acceptance classifier.

    Parameters
    ----------
    events : LabelledPartons
        The examples; some must pass and some fail.
    settings : AcceptanceSettings, optional
        Training settings (defaults: `AcceptanceSettings()`).
    config : AcceptanceConfig, optional
        Architecture (defaults: `AcceptanceConfig()`).
    device : torch.device or str
        Where to train.
    progress : bool
        Show a progress bar over the epochs.

    Returns
    -------
    model : AcceptanceModel
        The calibrated classifier of the best epoch, in eval mode.
    history : list of dict
        One validation record per epoch, then the record of the calibrated model
        (``"epoch": "calibrated"``).

    Raises
    ------
    ValueError
        If the examples do not hold both outcomes.
    """
    settings = settings or AcceptanceSettings()
    device = torch.device(device)
    if not events.has_both_outcomes:
        raise ValueError("the acceptance needs events that pass and events that fail")
    # the global random state is left as it was: a model trained beside the acceptance
    # gets the same weights as one trained without it
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return _fit(events, settings, config, device, progress)


def _fit(
    events: LabelledPartons,
    settings: AcceptanceSettings,
    config: AcceptanceConfig | None,
    device: torch.device,
    progress: bool,
) -> tuple[AcceptanceModel, list[dict[str, Any]]]:
    """`fit_acceptance` once its arguments are checked."""
    train, val = events.split(settings.val_fraction, SPLIT_SEED)
    torch.manual_seed(settings.seed)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    model = AcceptanceModel(config).to(device)
    z, passed, weight = (
        torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)
        for a in (train.z, train.passed, train.weight)
    )
    model.fit_standardisation(z, weight)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    batch = min(settings.batch_size, len(train))
    n_batches = len(train) // batch
    history: list[dict[str, Any]] = []
    best_loss, best_state, stale = math.inf, None, 0
    epochs = tqdm(range(settings.epochs), desc="acceptance", unit="epoch", disable=not progress)
    for epoch in epochs:
        model.train()
        order = torch.randperm(len(train), device=device, generator=generator)
        total = torch.zeros((), device=device)
        for b in range(n_batches):
            index = order[b * batch : (b + 1) * batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model.logits(z[index]), passed[index], weight=weight[index], reduction="sum"
            ) / weight[index].sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        model.eval()
        record = {"epoch": epoch + 1, "train_bce": float(total) / n_batches}
        record |= evaluate(model, val, device)
        history.append(record)
        if record["bce"] < best_loss:
            best_loss, stale = record["bce"], 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break
    model.load_state_dict(best_state)
    model.calibrate(
        *(torch.from_numpy(np.ascontiguousarray(a)).to(device)
          for a in (val.z, val.passed, val.weight))
    )
    history.append({"epoch": "calibrated"} | evaluate(model, val, device))
    return model.eval(), history
