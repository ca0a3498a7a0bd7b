"""Validation of a model after each epoch: the record that picks the best epoch.

The record holds the value of every active term on the validation events, the sums of
the per-feature KS distances of the simulation x~ = D(z) and of the unfolding z~ = E(x)
against the truth, the KS distances of the reconstructed tt-bar observables of x~
(`turbosim_hep.physics`) and the fraction of physically valid events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from turbosim_hep import metrics, physics
from turbosim_hep.model.losses import TurboSimObjective
from turbosim_hep.model.turbosim import TurboSim
from turbosim_hep.training.data import PairedEvents, to_device
from turbosim_hep.training.step import gaussian_noise, generated_quantities

#: Events per chunk when the validation set is pushed through the model.
VALIDATION_CHUNK = 2048


@dataclass
class ValidationSet:
    """Validation events, on the device and as NumPy arrays, with their reconstruction.

    Attributes
    ----------
    x, z : torch.Tensor
        The events on the device, in GeV.
    x_true, z_true : np.ndarray
        The same events.
    observed : dict of np.ndarray
        ``physics.reconstruct(x_true)``: the truth of the physics KS distances.
    """

    x: torch.Tensor
    z: torch.Tensor
    x_true: np.ndarray
    z_true: np.ndarray
    observed: dict[str, np.ndarray]

    @classmethod
    def from_events(
        cls, events: PairedEvents, device: torch.device, max_events: int | None = None
    ) -> ValidationSet:
        """The first ``max_events`` (all by default) of ``events``, staged on ``device``."""
        n = len(events) if max_events is None else min(len(events), max_events)
        x_true, z_true = events.x[:n], events.z[:n]
        return cls(
            to_device(x_true, device),
            to_device(z_true, device),
            x_true,
            z_true,
            physics.reconstruct(x_true),
        )


@torch.no_grad()
def validate(
    model: TurboSim,
    objective: TurboSimObjective,
    events: ValidationSet,
    *,
    noise_seed: int,
    select_on_physics: bool = False,
) -> dict[str, Any]:
    """The validation record of ``model``.

    Parameters
    ----------
    model : TurboSim
        The model validated.
    objective : TurboSimObjective
        The terms evaluated (and weighted into ``val["total"]``).
    events : ValidationSet
        The validation events.
    noise_seed : int
        Seed of the noise, drawn from a generator seeded anew at every call, so two
        epochs differ only by their weights.
    select_on_physics : bool
        Add the physics KS distances to ``ks_sum``, the figure that picks the best epoch.

    Returns
    -------
    dict
        ``val`` (each term and the weighted total), ``ks_x``, ``ks_z``, ``ks_physics``
        (by observable), ``ks_sum`` and ``valid_fraction``.
    """
    generator = torch.Generator(device=events.x.device)
    generator.manual_seed(noise_seed)
    noise = gaussian_noise(generator)
    needs = objective.needs
    sums = {t: 0.0 for t in objective.term_names}
    x_tilde, z_tilde = [], []
    n_total = len(events.x)
    for start in range(0, n_total, VALIDATION_CHUNK):
        xp = events.x[start : start + VALIDATION_CHUNK]
        zp = events.z[start : start + VALIDATION_CHUNK]
        x, z = model.x_scaler(xp), model.z_scaler(zp)
        fake = generated_quantities(model, needs, x, z, noise)
        values = objective.terms({"x": x, "z": z}, fake)
        weight = len(xp) / n_total
        for term, value in values.items():
            sums[term] += float(value) * weight
        x_tilde.append(model.simulate(zp, noise(len(zp), model.decoder_noise_dim)))
        z_tilde.append(model.unfold(xp, noise(len(xp), model.encoder_noise_dim)))
    x_gen = torch.cat(x_tilde).float().cpu().numpy()
    z_gen = torch.cat(z_tilde).float().cpu().numpy()
    ks_x = metrics.ks_per_feature(x_gen, events.x_true)
    ks_z = metrics.ks_per_feature(z_gen, events.z_true)
    generated = physics.reconstruct(x_gen)
    ks_physics = {
        name: metrics.ks_distance(generated[name], events.observed[name])
        for name in physics.OBSERVABLE_NAMES
    }
    features = float(np.nansum(ks_x) + np.nansum(ks_z))
    reconstructed = float(np.nansum(list(ks_physics.values())))
    sums["total"] = float(objective.total(sums))
    return {
        "val": sums,
        "ks_x": float(np.nansum(ks_x)),
        "ks_z": float(np.nansum(ks_z)),
        "ks_physics": ks_physics,
        "ks_sum": features + (reconstructed if select_on_physics else 0.0),
        "valid_fraction": metrics.valid_fraction(x_gen),
    }
