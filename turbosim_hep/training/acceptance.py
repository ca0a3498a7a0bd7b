"""Training of the acceptance classifier epsilon(z) on labelled parton-level events.

Every event with a complete parton record is an example (`LabelledPartons`): its label
says whether its detector-level event passed the reference selection, its weight how many
generated events it stands for. The examples are cut into as many folds as the
classifier (`turbosim_hep.model.acceptance`) has members; each member is trained by
weighted binary cross-entropy with Adam on every fold but its own, and the epoch of
lowest loss on its own fold is kept. Every example then has a logit from a member that
never learnt it, and the calibration (Platt scaling and logit offsets in the electron's
|eta|: `AcceptanceModel.calibrate`) is fitted on all of those. Each epoch's record holds
the member's binary cross-entropy, ROC AUC, calibration error and predicted and observed
(weighted) numbers of selected events on its own fold; the last record holds the same of
the calibrated out-of-fold predictions of every example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from turbosim_hep import metrics
from turbosim_hep.model.acceptance import AcceptanceConfig, AcceptanceModel, parton_features
from turbosim_hep.settings import Settings
from turbosim_hep.training.data import LabelledPartons

#: Seed of the assignment of the acceptance examples to folds.
FOLD_SEED = 20211207


@dataclass
class AcceptanceSettings(Settings):
    """How the acceptance classifier is trained.

    Attributes
    ----------
    epochs : int
        Most passes of a member over its training examples.
    batch_size : int
        Examples per Adam step.
    lr, weight_decay : float
        Adam settings.
    patience : int
        Stop a member when the loss on its own fold has not improved for this many epochs.
    seed : int
        Seed of the initial weights and of the batching.
    """

    kind = "acceptance"

    epochs: int = 40
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-5
    patience: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.patience) < 1:
            raise ValueError("acceptance epochs, batch_size and patience must be at least 1")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise ValueError("acceptance lr must be positive and weight_decay non-negative")


def quality(probability: np.ndarray, events: LabelledPartons) -> dict[str, float]:
    """How well probabilities of ``events`` predict their labels.

    Parameters
    ----------
    probability : numpy.ndarray
        (n,) predicted probability of passing for each event.
    events : LabelledPartons
        The events, with their labels and weights.

    Returns
    -------
    dict
        ``bce``, ``auc``, ``calibration_error`` (all weighted), and the weighted
        ``predicted_selected`` and ``observed_selected`` yields.
    """
    probability = probability.astype(np.float64)
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
    """Train the members of an acceptance classifier, cross-fitted, and calibrate it.

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
        The calibrated classifier, each member at its best epoch, in eval mode.
    history : list of dict
        One record per epoch of each member (``"member"``, ``"epoch"``, its training
        loss and its quality on its own fold), then that of the calibrated out-of-fold
        predictions of every example (``"epoch": "calibrated"``).

    Raises
    ------
    ValueError
        If the examples, or those of a fold, do not hold both outcomes.
    """
    settings = settings or AcceptanceSettings()
    device = torch.device(device)
    members = (config or AcceptanceConfig()).members
    if not learnable(events, members):
        raise ValueError(
            f"the acceptance needs events that pass and events that fail in each of its "
            f"{members} folds"
        )
    # the global random state is left as it was: a model trained beside the acceptance
    # gets the same weights as one trained without it
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return _fit(events, settings, config, device, progress)


def fold_of(n_events: int, folds: int) -> np.ndarray:
    """The fold of each example: a fixed permutation, dealt in turn.

    Parameters
    ----------
    n_events : int
        Number of examples.
    folds : int
        Number of folds (the acceptance's members).

    Returns
    -------
    numpy.ndarray
        int (n_events,): fold of each example, 0 to ``folds - 1``; the folds differ in size
        by at most one, and do not depend on any seed.
    """
    return np.random.default_rng(FOLD_SEED).permutation(n_events) % folds


def learnable(events: LabelledPartons, folds: int) -> bool:
    """Whether each of the ``folds`` folds of ``events`` (`fold_of`) holds events that pass
    and events that fail: what every member needs to learn and to stop."""
    fold = fold_of(len(events), folds)
    return all(
        events.passed[fold == k].any() and not events.passed[fold == k].all()
        for k in range(folds)
    )


def _fit(
    events: LabelledPartons,
    settings: AcceptanceSettings,
    config: AcceptanceConfig | None,
    device: torch.device,
    progress: bool,
) -> tuple[AcceptanceModel, list[dict[str, Any]]]:
    """`fit_acceptance` once its arguments are checked."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    model = AcceptanceModel(config).to(device)
    fold = fold_of(len(events), len(model.members))
    z, passed, weight = (
        torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)
        for a in (events.z, events.passed, events.weight)
    )
    model.fit_standardisation(z, weight)
    features = parton_features(z)
    predictor = torch.from_numpy(fold).to(device)  # each example's out-of-fold member
    history: list[dict[str, Any]] = []
    for k in range(len(model.members)):
        own = predictor == k
        history += _fit_member(
            model, k, (features[~own], passed[~own], weight[~own]),
            (features[own], events.subset(np.flatnonzero(fold == k))),
            settings, generator, progress,
        )
    model.calibrate(z, passed, predictor, weight)
    with torch.no_grad():
        out_of_fold = model.held_out_probabilities(z, predictor).cpu().numpy()
    history.append({"epoch": "calibrated"} | quality(out_of_fold, events))
    return model.eval(), history


def _fit_member(
    model: AcceptanceModel,
    member: int,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    own_fold: tuple[torch.Tensor, LabelledPartons],
    settings: AcceptanceSettings,
    generator: torch.Generator,
    progress: bool,
) -> list[dict[str, Any]]:
    """Train one member on ``train`` (features, labels, weights) with early stopping on
    its own fold ``own_fold`` (features, examples); its best epoch's weights are kept.

    Returns one record per epoch.
    """
    network = model.members[member]
    features, passed, weight = train
    held_features, held_events = own_fold
    optimizer = torch.optim.Adam(
        network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    batch = min(settings.batch_size, len(features))
    n_batches = len(features) // batch
    history: list[dict[str, Any]] = []
    # the initial weights stand until an epoch has a finite loss on the member's own fold
    best_loss, stale = math.inf, 0
    best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    label = f"acceptance {member + 1}/{len(model.members)}"
    for epoch in tqdm(range(settings.epochs), desc=label, unit="epoch", disable=not progress):
        network.train()
        order = torch.randperm(len(features), device=features.device, generator=generator)
        total = torch.zeros((), device=features.device)
        for b in range(n_batches):
            index = order[b * batch : (b + 1) * batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model.member_logits(features[index], member), passed[index],
                weight=weight[index], reduction="sum",
            ) / weight[index].sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        network.eval()
        with torch.no_grad():
            probability = torch.sigmoid(model.member_logits(held_features, member))
        record = {"member": member + 1, "epoch": epoch + 1, "train_bce": float(total) / n_batches}
        record |= quality(probability.cpu().numpy(), held_events)
        history.append(record)
        if record["bce"] < best_loss:
            best_loss, stale = record["bce"], 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break
    network.load_state_dict(best_state)
    return history
