"""One optimisation step: the critic updates, then the update of the encoder and decoder.

`TrainStep` is a function of its inputs alone: the networks, the objective and the two
optimisers it is built with, a standardised batch, the random generator that draws the
noise and the penalty interpolates, and the penalty scale of each critic update. It makes
no host synchronisation and keeps no Python state that depends on tensor values; the
schedules (which critic update carries the lazy penalty, the learning rate of the epoch)
and the moving average of the weights are the caller's. That makes it the unit to
capture with CUDA graphs or ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from turbosim_hep.model.losses import TurboSimObjective
from turbosim_hep.model.turbosim import TurboSim

#: ``noise(n, width)``: an (n, width) standard normal tensor, or None for width 0.
Noise = Callable[[int, int], torch.Tensor | None]


def gaussian_noise(generator: torch.Generator) -> Noise:
    """The noise of the networks, drawn from ``generator`` on its device."""

    def noise(n: int, width: int) -> torch.Tensor | None:
        if width == 0:
            return None
        return torch.randn(n, width, device=generator.device, generator=generator)

    return noise


def generated_quantities(
    model: TurboSim,
    needs: frozenset[str],
    x: torch.Tensor,
    z: torch.Tensor,
    noise: Noise,
) -> dict[str, torch.Tensor]:
    """The generated quantities of a standardised batch that the active terms need.

    z~ = E(x) (``zt``), x^ = D(z~) (``xh``), x~ = D(z) (``xt``) and z^ = E(x~)
    (``zh``), each computed only if it is in ``needs`` or another needed one is made
    from it (`TurboSimObjective.needs`); and the second draws ``zt2``, ``xh2``, ``xt2``,
    ``zh2`` of the same network from the same input with new noise, where needed. The
    quantities of one stage (z~; x^ and x~; z^) come from one call of their network on
    the concatenated inputs, with the noise drawn in that order.
    """
    n = x.shape[0]
    fake: dict[str, torch.Tensor] = {}

    def draw(network: Callable, width: int, inputs: dict[str, torch.Tensor]) -> None:
        # one call of the network for every quantity of a stage: fewer, larger operations
        if inputs:
            outputs = network(torch.cat(list(inputs.values())), noise(len(inputs) * n, width))
            fake.update(zip(inputs, outputs.split(n), strict=True))

    first = {name: x for name in ("zt", "zt2") if name in needs or (name == "zt" and "xh" in needs)}
    draw(model.encode, model.encoder_noise_dim, first)
    decoded = {"xh": fake.get("zt"), "xt": z, "xh2": fake.get("zt"), "xt2": z}
    needed = needs | ({"xt"} if "zh" in needs else set())
    draw(model.decode, model.decoder_noise_dim,
         {name: decoded[name] for name in ("xh", "xt", "xh2", "xt2") if name in needed})
    draw(model.encode, model.encoder_noise_dim,
         {name: fake["xt"] for name in ("zh", "zh2") if name in needs})
    return fake


def log_names(objective: TurboSimObjective) -> list[str]:
    """Names of the values a step returns: the total, each term, each critic's loss."""
    return (
        ["total"]
        + list(objective.term_names)
        + [f"critic_{t}" for t in objective.critic_terms]
    )


class TrainStep:
    """One optimisation step of a model and the critics of its objective.

    Parameters
    ----------
    model : TurboSim
        The encoder and decoder being trained.
    objective : TurboSimObjective
        The weighted terms and their critics.
    optimizer : torch.optim.Optimizer
        Of the encoder and decoder parameters some active term reaches.
    critic_optimizer : torch.optim.Optimizer, optional
        Of the critics; None when no active term has a critic.
    autocast : bool
        Run the forward passes under bfloat16 autocast.
    """

    def __init__(
        self,
        model: TurboSim,
        objective: TurboSimObjective,
        optimizer: torch.optim.Optimizer,
        critic_optimizer: torch.optim.Optimizer | None,
        autocast: bool = False,
    ):
        self.model = model
        self.objective = objective
        self.optimizer = optimizer
        self.critic_optimizer = critic_optimizer
        self.autocast = autocast
        self.needs = objective.needs

    def __call__(
        self,
        x: torch.Tensor,
        z: torch.Tensor,
        generator: torch.Generator,
        penalty_scales: Sequence[float],
    ) -> torch.Tensor:
        """Update the critics once per entry of ``penalty_scales``, then the networks.

        Parameters
        ----------
        x, z : torch.Tensor
            A standardised batch of paired events.
        generator : torch.Generator
            Draws the noise of the networks and the gradient-penalty interpolates.
        penalty_scales : sequence of float
            Factor of the gradient-penalty weights in each critic update (0: no penalty
            in that update; `TrainConfig.penalty_scales`). Ignored without critics.

        Returns
        -------
        torch.Tensor
            Detached, on the device: the total objective, the value of each active term
            and the loss of each critic in the last critic update (see `log_names`).
        """
        objective = self.objective
        real = {"x": x, "z": z}
        # no cache of cast weights: the critic updates change the weights in place within
        # the region, and a cached cast would give the next update the old ones
        with torch.autocast(
            x.device.type, dtype=torch.bfloat16, enabled=self.autocast, cache_enabled=False
        ):
            fake = generated_quantities(self.model, self.needs, x, z, gaussian_noise(generator))
            critic_losses = []
            if self.critic_optimizer is not None:
                if not penalty_scales:
                    raise ValueError("a step with critics makes at least one critic update")
                for scale in penalty_scales:
                    loss, per_critic = objective.critic_loss(real, fake, generator, scale)
                    self.critic_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.critic_optimizer.step()
                critic_losses = [per_critic]
            objective.critic_parameters_frozen(True)
            values = objective.terms(real, fake)
            total = objective.total(values)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        objective.critic_parameters_frozen(False)
        return torch.cat(
            [torch.stack([total.detach()] + [values[t].detach() for t in objective.term_names])]
            + critic_losses
        )
