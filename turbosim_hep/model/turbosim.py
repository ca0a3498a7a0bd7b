"""The Turbo-Sim model: an encoder q_phi(z|x) and a decoder p_theta(x|z) with their data scaling.

`TurboSim` holds the two networks, the per-feature standardisation of both spaces and
the output heads, all as parameters and buffers of one `torch.nn.Module`, so a state
dict is the whole model. Its public paths work in physical units (GeV):

- `TurboSim.simulate`: parton-level Z -> detector-level X (the decoder);
- `TurboSim.unfold`: X -> Z (the encoder).

Training uses `TurboSim.encode` and `TurboSim.decode`, which work on standardised tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from turbosim_hep import layout
from turbosim_hep.model.networks import NoisyMLP, Standardiser, make_head
from turbosim_hep.settings import Settings


@dataclass
class ModelConfig(Settings):
    """Architecture of the encoder and the decoder.

    Attributes
    ----------
    encoder_hidden, decoder_hidden : list of int
        Hidden widths of the MLPs (reference: 256-128-64 and 64-128-256).
    activation : str
        Hidden-layer non-linearity ("relu" in the reference).
    noise_mode : {"add", "cat", "mul", "none"}
        How Gaussian noise enters each network's standardised input.
    noise_sigma : float
        Its scale (reference: 0.05).
    noise_dim : int, optional
        Width of the noise in ``cat`` mode (default 24).
    encoder_noise_mode, encoder_noise_sigma : optional
        The encoder's own ``noise_mode`` and ``noise_sigma`` (default: the shared ones):
        an encoder that samples a posterior q(z | x) needs noise of the order of the
        data's spread, where a decoder may need only a small perturbation.
    x_head, z_head : {"physical", "ptetaphi", "response", "chain", "linear"}
        Output heads: "physical" builds valid four-vectors by construction from
        (px, py, pz), "ptetaphi" (X only) from (log pT, eta, phi), "response" (X only)
        from the responses of the detector to each object's parton, "chain" (Z only) from
        the decay chains of the top and the anti-top with on-shell W and top masses,
        "linear" outputs the 24 standardised values (the reference).
    """

    kind = "model"

    encoder_hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    decoder_hidden: list[int] = field(default_factory=lambda: [64, 128, 256])
    activation: str = "relu"
    noise_mode: str = "add"
    noise_sigma: float = 0.05
    noise_dim: int | None = None
    encoder_noise_mode: str | None = None
    encoder_noise_sigma: float | None = None
    x_head: str = "physical"
    z_head: str = "physical"


class TurboSim(nn.Module):
    """Encoder q_phi(z|x), decoder p_theta(x|z) and the standardisation of Z and X.

    Parameters
    ----------
    config : ModelConfig or mapping, optional
        Architecture; the reference one by default.

    Attributes
    ----------
    encoder, decoder : NoisyMLP
        The networks, on standardised inputs; replace them with any module of the same
        call signature ``(inputs, noise) -> raw head outputs`` to change architecture.
    encoder_noise_dim, decoder_noise_dim : int
        Width of the standard-normal noise of each direction (0: deterministic): its
        network's, then its head's (``n_noise`` of the radiation and chain heads).
    """

    def __init__(self, config: ModelConfig | Mapping[str, object] | None = None):
        super().__init__()
        if not isinstance(config, ModelConfig):
            config = ModelConfig.from_dict(config)
        self.config = config
        n = layout.N_FEATURES
        self.x_scaler = Standardiser(n)
        self.z_scaler = Standardiser(n)
        self.x_head = make_head(config.x_head, "x", self.x_scaler)
        self.z_head = make_head(config.z_head, "z", self.z_scaler)
        noise = {
            "noise_mode": config.noise_mode,
            "noise_sigma": config.noise_sigma,
            "noise_dim": config.noise_dim,
            "activation": config.activation,
        }
        encoder_noise = noise | {
            "noise_mode": config.encoder_noise_mode or config.noise_mode,
            "noise_sigma": (config.noise_sigma if config.encoder_noise_sigma is None
                            else config.encoder_noise_sigma),
        }
        self.encoder = NoisyMLP(n, config.encoder_hidden, self.z_head.n_raw, **encoder_noise)
        self.decoder = NoisyMLP(n, config.decoder_hidden, self.x_head.n_raw, **noise)

    @classmethod
    def from_config(
        cls,
        config: ModelConfig | Mapping[str, object] | None = None,
        x: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
    ) -> TurboSim:
        """A new (untrained) model, with its standardisation fitted to ``x`` and ``z`` if given."""
        model = cls(config)
        if x is not None and z is not None:
            model.fit_standardisation(torch.as_tensor(x), torch.as_tensor(z))
        return model

    @property
    def encoder_noise_dim(self) -> int:
        """Width of the encoder's noise: its network's and then its head's."""
        return _noise_width(self.encoder, self.z_head)

    @property
    def decoder_noise_dim(self) -> int:
        """Width of the decoder's noise: its network's and then its head's."""
        return _noise_width(self.decoder, self.x_head)

    @torch.no_grad()
    def fit_standardisation(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Set the per-feature mean and std of both spaces (and the parton masses) from data.

        Parameters
        ----------
        x, z : torch.Tensor
            Training events, (n, 24) each, in physical units.
        """
        self.x_scaler.fit(x)
        self.z_scaler.fit(z)
        for head in (self.x_head, self.z_head):
            if hasattr(head, "fit_kinematics"):
                head.fit_kinematics(x, z)

    # --- standardised paths (training) ---------------------------------------------
    def encode(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised X -> standardised Z through the encoder."""
        return self.z_head.standardised(*_head_inputs(self.encoder, self.z_head, x, noise))

    def decode(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised Z -> standardised X through the decoder."""
        partons = self.z_scaler.inverse(z) if self.x_head.uses_input else None
        return self.x_head.standardised(*_head_inputs(self.decoder, self.x_head, z, noise,
                                                      partons))

    # --- physical paths (inference) -------------------------------------------------
    def simulate(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Detector-level events from parton-level ones.

        Parameters
        ----------
        z : torch.Tensor
            (n, 24) float32 parton four-momenta in GeV, on the model's device.
        noise : torch.Tensor, optional
            (n, decoder_noise_dim) standard-normal numbers; drawn with torch when None.

        Returns
        -------
        torch.Tensor
            (n, 24) reconstructed four-momenta in GeV.
        """
        return self.x_head.physical(*_head_inputs(self.decoder, self.x_head, self.z_scaler(z),
                                                  noise, z))

    def unfold(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Parton-level events from detector-level ones; as `simulate`, with the encoder."""
        return self.z_head.physical(*_head_inputs(self.encoder, self.z_head, self.x_scaler(x),
                                                  noise))

    def forward(self, z: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Same as `simulate`."""
        return self.simulate(z, noise)


def _noise_width(network: nn.Module, head: nn.Module) -> int:
    return int(getattr(network, "noise_dim", 0)) + getattr(head, "n_noise", 0)


def _head_inputs(
    network: nn.Module,
    head: nn.Module,
    inputs: torch.Tensor,
    noise: torch.Tensor | None,
    physical_inputs: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, ...]:
    """The arguments of ``head``: the raw outputs of ``network`` for the standardised
    ``inputs``; the physical inputs where the head uses them (``uses_input``); its share
    of ``noise`` where it takes one (``n_noise``: the last columns; None draws it)."""
    width = int(getattr(network, "noise_dim", 0))
    takes_noise = getattr(head, "n_noise", 0) > 0
    own = noise[:, :width] if takes_noise and noise is not None else noise
    args: tuple[torch.Tensor | None, ...] = (network(inputs, own),)
    if head.uses_input:
        args += (physical_inputs,)
    if takes_noise:
        args += (None if noise is None else noise[:, width:],)
    return args
