"""An encoder head that writes the six partons as the decay chain of a tt-bar pair.

`DecayChainZHead` ("chain", Z only) makes every unfolded event a tt-bar event: the
network predicts the top and anti-top momenta and three decay directions per top (of the
W in the top's rest frame and of the W's first daughter in the W's rest frame), and the
head builds t -> W b, W -> f f' by two-body decays and Lorentz boosts
(`turbosim_hep.layout.TOP_DECAYS`). The four resonance masses are not predicted: each is
drawn from its distribution on the training partons (stored as quantiles) with one
standard-normal number of the event's noise. The detector's resolution (10-20 GeV on a
top mass) is far wider than the resonances (1.5 GeV for the top, 2.1 GeV for the W), so
the mass of a resonance given the detector event is its distribution at parton level:
drawing it is the posterior, and the W and top peaks of the unfolded events are those
of the generator by construction. Every parton is on its mass shell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from turbosim_hep import layout

if TYPE_CHECKING:
    from turbosim_hep.model.networks import Standardiser

#: Quantiles kept of each resonance's mass distribution.
N_MASS_QUANTILES = 1025
#: Raw outputs per top decay: top momentum (3), W direction (3), W daughter direction (3).
_RAW_PER_DECAY = 9


def _boost(p4: torch.Tensor, parent: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """(n, 4) four-vectors given in the rest frame of ``parent`` (n, 4), of mass (n, 1),
    in the frame ``parent`` is given in."""
    beta = parent[:, :3] / parent[:, 3:]
    gamma = parent[:, 3:] / mass
    beta_p = (beta * p4[:, :3]).sum(1, keepdim=True)
    momentum = p4[:, :3] + beta * (gamma.square() / (gamma + 1.0) * beta_p + gamma * p4[:, 3:])
    return torch.cat([momentum, gamma * (p4[:, 3:] + beta_p)], dim=1)


def _two_body(
    parent: torch.Tensor,
    mass: torch.Tensor,
    direction: torch.Tensor,
    m1: torch.Tensor,
    m2: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Four-vectors of the decay products of ``parent`` (n, 4) of ``mass`` (n, 1): the
    first flies along the unit ``direction`` (n, 3) in the parent's rest frame, the
    second opposite; ``m1``, ``m2`` are their masses."""
    kallen = (mass.square() - (m1 + m2).square()) * (mass.square() - (m1 - m2).square())
    momentum = kallen.clamp_min(0.0).sqrt() / (2.0 * mass) * direction
    p2 = momentum.square().sum(1, keepdim=True)
    first = torch.cat([momentum, torch.sqrt(p2 + m1.square())], dim=1)
    second = torch.cat([-momentum, torch.sqrt(p2 + m2.square())], dim=1)
    return _boost(first, parent, mass), _boost(second, parent, mass)


class DecayChainZHead(nn.Module):
    """Six on-shell partons from the decay chains of the top and the anti-top.

    Raw outputs, per top decay of `turbosim_hep.layout.TOP_DECAYS` (9 each): the top's
    momentum in units of its training spread (buffers ``top_mean``, ``top_std``), an
    unnormalised direction of the W in the top's rest frame and one of the W's first
    daughter in the W's rest frame. The masses of t, W+, t-bar, W- come from the event's
    noise (`n_noise` standard normals) through the quantiles of their training
    distributions (buffer ``mass_quantiles``); the final-state partons have the median
    masses of the training partons (buffer ``mass``).
    """

    uses_input = False
    #: Standard normals of the event's noise the head uses: one per resonance mass.
    n_noise = 2 * len(layout.TOP_DECAYS)

    def __init__(self, scaler: Standardiser):
        super().__init__()
        self.scaler = scaler
        self.n_raw = _RAW_PER_DECAY * len(layout.TOP_DECAYS)
        self.register_buffer("mass", torch.zeros(layout.N_OBJECTS))
        self.register_buffer("mass_quantiles", torch.zeros(self.n_noise, N_MASS_QUANTILES))
        self.register_buffer("top_mean", torch.zeros(len(layout.TOP_DECAYS), 3))
        self.register_buffer("top_std", torch.ones(len(layout.TOP_DECAYS), 3))

    @staticmethod
    def resonances(z: torch.Tensor) -> torch.Tensor:
        """(n, 2 x decays, 4) four-vectors of each top and its W, in `TOP_DECAYS` order."""
        p4 = z.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)
        out = []
        for decay in layout.TOP_DECAYS:
            w = p4[:, list(decay.w_daughters)].sum(1)
            out += [w + p4[:, decay.b], w]
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def fit_kinematics(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Set the parton masses, the resonance mass quantiles and the top momentum scales
        from an (n, 24) Z tensor of training partons (``x`` is not used)."""
        z = z.double()
        p4 = z.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)
        self.mass.copy_(invariant_mass(p4).median(dim=0).values)
        resonances = self.resonances(z)
        levels = torch.linspace(0.0, 1.0, N_MASS_QUANTILES, dtype=torch.float64,
                                device=z.device)
        self.mass_quantiles.copy_(torch.quantile(invariant_mass(resonances), levels, dim=0).T)
        tops = resonances[:, 0::2, :3]
        self.top_mean.copy_(tops.mean(0))
        self.top_std.copy_(tops.std(0).clamp_min(1e-3))

    def resonance_masses(self, noise: torch.Tensor) -> torch.Tensor:
        """(n, 4) masses of t, W+, t-bar, W- from (n, 4) standard normals: the quantile
        function of each training distribution at Phi(noise), in the table's precision
        (a bfloat16 level cannot tell the table's last quantiles apart)."""
        level = torch.special.ndtr(noise.to(self.mass_quantiles.dtype)) * (N_MASS_QUANTILES - 1)
        low = level.floor().clamp(0, N_MASS_QUANTILES - 2)
        weight = level - low
        table = self.mass_quantiles.T.unsqueeze(0).expand(len(noise), -1, -1)
        lower = torch.gather(table, 1, low.long().unsqueeze(1)).squeeze(1)
        upper = torch.gather(table, 1, low.long().unsqueeze(1) + 1).squeeze(1)
        return lower + weight * (upper - lower)

    def physical(self, raw: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """(n, 24) partons from (n, `n_raw`) raw outputs and (n, `n_noise`) standard
        normals (drawn with torch when None)."""
        n = raw.shape[0]
        if noise is None:
            noise = torch.randn(n, self.n_noise, device=raw.device,
                                dtype=self.mass_quantiles.dtype)
        masses = self.resonance_masses(noise)
        partons: dict[int, torch.Tensor] = {}
        for k, decay in enumerate(layout.TOP_DECAYS):
            # the kinematics in the masses' precision (a bfloat16 direction is not a unit one)
            out = raw[:, _RAW_PER_DECAY * k:_RAW_PER_DECAY * (k + 1)].to(masses.dtype)
            m_top, m_w = masses[:, 2 * k:2 * k + 1], masses[:, 2 * k + 1:2 * k + 2]
            f1, f2 = decay.w_daughters
            m_b, m_f1, m_f2 = (self.mass[i].expand(n, 1) for i in (decay.b, f1, f2))
            # the W must fit in its top, and the W's daughters in it
            m_w = torch.minimum(m_w, m_top - m_b - 1e-2).clamp_min(m_f1 + m_f2 + 1e-2)
            top_p = out[:, 0:3] * self.top_std[k] + self.top_mean[k]
            top = torch.cat([top_p, torch.sqrt(top_p.square().sum(1, keepdim=True)
                                               + m_top.square())], dim=1)
            w_direction = F.normalize(out[:, 3:6], dim=1)
            w, partons[decay.b] = _two_body(top, m_top, w_direction, m_w, m_b)
            f1_direction = F.normalize(out[:, 6:9], dim=1)
            partons[f1], partons[f2] = _two_body(w, m_w, f1_direction, m_f1, m_f2)
        return torch.cat([partons[i] for i in range(layout.N_OBJECTS)], dim=1)

    def standardised(self, raw: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.scaler(self.physical(raw, noise))


def invariant_mass(p4: torch.Tensor) -> torch.Tensor:
    """Invariant masses of (..., 4) four-vectors (0 where the square is negative)."""
    return (p4[..., 3].square() - p4[..., :3].square().sum(-1)).clamp_min(0.0).sqrt()
