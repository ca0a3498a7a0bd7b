"""The critics of the four distribution terms, evaluated together as one ensemble.

Each distribution term (``Dzt``, ``Dxh``, ``Dxt``, ``Dzh``) compares a true marginal with
a generated one through its own critic network. All four take a standardised 24-vector
and share the reference shape (MLP 24 -> 256 -> 128 -> 64 -> 1), so `CriticEnsemble`
stores K critics as stacked weights of shape (K, in, out) and evaluates them with one
batched matrix product per layer (`torch.baddbmm`) instead of K separate networks.

`CriticEnsemble.forward_with_input_gradient` also returns the gradient of each critic's
output with respect to its input, computed in closed form by back-propagating through
the piecewise-linear layers. The gradient penalty built on it needs only first-order
autograd (no ``create_graph=True`` double backward), which is exact for (leaky) ReLU
networks and several times cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class CriticEnsemble(nn.Module):
    """K independent MLP critics ``R^in -> R`` with leaky-ReLU activations.

    Parameters
    ----------
    n_critics : int
        Number K of critics.
    in_features : int
        Input width of every critic.
    hidden : sequence of int
        Hidden-layer widths (the reference: 256, 128, 64).
    negative_slope : float
        Slope of the leaky ReLU for negative inputs.
    """

    def __init__(
        self,
        n_critics: int,
        in_features: int,
        hidden: Sequence[int] = (256, 128, 64),
        negative_slope: float = 0.2,
    ):
        super().__init__()
        self.n_critics = n_critics
        self.negative_slope = float(negative_slope)
        widths = [in_features, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            bound = 1.0 / math.sqrt(n_in)  # the default initialisation of nn.Linear
            weight = torch.empty(n_critics, n_in, n_out).uniform_(-bound, bound)
            bias = torch.empty(n_critics, 1, n_out).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Critic outputs (K, n) for inputs (K, n, in): critic k sees ``inputs[k]``."""
        h = inputs
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias, h, weight)
            if i < last:
                h = nn.functional.leaky_relu(h, self.negative_slope)
        return h.squeeze(-1)

    def forward_with_input_gradient(
        self, inputs: torch.Tensor, grad_from: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic outputs (K, n) and their input gradients for the rows ``grad_from:``.

        Returns the outputs for all n rows of ``inputs`` (K, n, in) and the gradients of
        each critic's output with respect to rows ``grad_from`` onwards, shape
        (K, n - grad_from, in). The gradient is a differentiable function of the weights,
        so a penalty on its norm trains the critics with ordinary first-order autograd.
        """
        h = inputs
        slopes = []
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias, h, weight)
            if i < last:
                # derivative of the leaky ReLU: 1 above zero, negative_slope below
                positive = (h[:, grad_from:] > 0).to(h.dtype)
                slopes.append(positive.mul_(1.0 - self.negative_slope).add_(self.negative_slope))
                h = nn.functional.leaky_relu(h, self.negative_slope)
        grad = self.weights[-1].transpose(1, 2)  # (K, 1, hidden[-1]), broadcast over n
        for weight, slope in zip(reversed(self.weights[:-1]), reversed(slopes), strict=True):
            grad = torch.bmm(grad * slope, weight.transpose(1, 2))
        return h.squeeze(-1), grad
