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
    """(..., 4) four-vectors given in the rest frame of ``parent`` (..., 4), of mass
    (..., 1), in the frame ``parent`` is given in (the shapes broadcast)."""
    beta = parent[..., :3] / parent[..., 3:]
    gamma = parent[..., 3:] / mass
    beta_p = (beta * p4[..., :3]).sum(-1, keepdim=True)
    momentum = p4[..., :3] + beta * (gamma.square() / (gamma + 1.0) * beta_p + gamma * p4[..., 3:])
    return torch.cat([momentum, gamma * (p4[..., 3:] + beta_p)], dim=-1)


def _two_body(
    parent: torch.Tensor,
    mass: torch.Tensor,
    direction: torch.Tensor,
    daughter_masses: torch.Tensor,
) -> torch.Tensor:
    """(..., 2, 4) four-vectors of the decay products of ``parent`` (..., 4) of ``mass``
    (..., 1): the first flies along the unit ``direction`` (..., 3) in the parent's rest
    frame, the second opposite; ``daughter_masses`` (..., 2, 1) are their masses.

    Every decay of a batch (both tops of an event, or both Ws) is one call: the head's
    cost is the number of its small operations, not their size."""
    m1, m2 = daughter_masses.unbind(-2)
    kallen = (mass.square() - (m1 + m2).square()) * (mass.square() - (m1 - m2).square())
    momentum = kallen.clamp_min(0.0).sqrt() / (2.0 * mass) * direction
    p2 = momentum.square().sum(-1, keepdim=True)
    energy = torch.sqrt(p2.unsqueeze(-2) + daughter_masses.square())
    daughters = torch.cat([torch.stack([momentum, -momentum], dim=-2), energy], dim=-1)
    return _boost(daughters, parent.unsqueeze(-2), mass.unsqueeze(-2))


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
        # not in the state dict: fixed by the layout. The Z positions of each decay's
        # (b, f1, f2), and where each parton of Z is among them, in a flat index
        made = [[decay.b, *decay.w_daughters] for decay in layout.TOP_DECAYS]
        flat = [i for decay in made for i in decay]
        self.register_buffer("_made", torch.tensor(made), persistent=False)
        self.register_buffer("_z_order", torch.tensor([flat.index(i) for i in
                                                       range(layout.N_OBJECTS)]),
                             persistent=False)

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
        normals (drawn with torch when None). Both decays are computed together, as
        (n, decays, ...) tensors."""
        n = raw.shape[0]
        if noise is None:
            noise = torch.randn(n, self.n_noise, device=raw.device,
                                dtype=self.mass_quantiles.dtype)
        masses = self.resonance_masses(noise).reshape(n, -1, 2, 1)
        # the kinematics in the masses' precision (a bfloat16 direction is not a unit one)
        out = raw.to(masses.dtype).reshape(n, -1, _RAW_PER_DECAY)
        m_top = masses[:, :, 0]
        made = self.mass[self._made].unsqueeze(-1)  # (decays, 3, 1): b, f1, f2
        m_b, m_f = made[:, 0], made[:, 1:]
        # the W must fit in its top, and the W's daughters in it
        m_w = torch.minimum(masses[:, :, 1], m_top - m_b - 1e-2).clamp_min(m_f.sum(1) + 1e-2)
        top_p = out[..., 0:3] * self.top_std + self.top_mean
        top = torch.cat([top_p, torch.sqrt(top_p.square().sum(-1, keepdim=True)
                                           + m_top.square())], dim=-1)
        directions = F.normalize(out[..., 3:9].reshape(n, -1, 2, 3), dim=-1)
        w_b = _two_body(top, m_top, directions[:, :, 0],
                        torch.stack([m_w, m_b.expand_as(m_w)], dim=-2))
        f1_f2 = _two_body(w_b[:, :, 0], m_w, directions[:, :, 1], m_f)
        partons = torch.cat([w_b[:, :, 1:], f1_f2], dim=2).reshape(n, -1, layout.N_COMPONENTS)
        return partons.index_select(1, self._z_order).reshape(n, layout.N_FEATURES)

    def standardised(self, raw: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.scaler(self.physical(raw, noise))


def invariant_mass(p4: torch.Tensor) -> torch.Tensor:
    """Invariant masses of (..., 4) four-vectors (0 where the square is negative)."""
    return (p4[..., 3].square() - p4[..., :3].square().sum(-1)).clamp_min(0.0).sqrt()
