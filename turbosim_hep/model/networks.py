"""Building blocks of the encoder and the decoder: MLPs, noise injection, output heads.

The Turbo-Sim framework does not fix the architecture of q_phi(z|x) and p_theta(x|z):
any `torch.nn.Module` mapping a standardised (n, 24) input and a standard-normal noise
tensor to the raw outputs of a head works. The default is the reference MLP with the
reference noise injection.

Output heads turn the raw network outputs into four-momenta that are physically valid
by construction:

- `XHead` ("physical"): the network predicts (px, py, pz) of the electron and of the
  four jets and (px, py) of the missing transverse momentum, in standardised units. Every
  object is massless (E = |p|), MET has pz = 0 and E = pT, and the jets are sorted by pT.
- `ZHead` ("physical"): (px, py, pz) of the six partons; E = sqrt(|p|^2 + m^2) with each
  parton's on-shell mass measured on the training data (`TurboSim.fit_standardisation`).
- `PtEtaPhiXHead` ("ptetaphi", X only): the same guarantees as `XHead`, from
  (log pT, eta, direction in the transverse plane) of each object.
- `ResponseXHead` ("response", X only): each object as the detector's response to the
  parton it comes from (`turbosim_hep.layout.X_SOURCES`): the electron and each jet as
  (log pT ratio, delta eta, delta phi) of its parton, the MET as the neutrino's transverse
  momentum plus what the detector mismeasured of the other objects, plus a residual. The
  same guarantees as `XHead`; the detector's resolution and the correlations between the
  objects of one event come from the partons, not from the network.
- `RadiationXHead` ("radiation", X only): `ResponseXHead` in which each jet is its
  quark's or, by a random choice with the probability measured on the training events,
  a radiation jet unbounded in angle (`n_noise` numbers of the event's noise).
- `turbosim_hep.model.chain.DecayChainZHead` ("chain", Z only): the six partons as the
  decay chains t -> W b, W -> f f' of a tt-bar pair, the resonance masses drawn from
  their training distributions with the event's noise (`n_noise` numbers of it).
- `LinearHead` ("linear"): the 24 standardised values as they come, as in the reference.

A head with ``uses_input`` True also takes the physical input of the network (the partons
for the decoder) in `physical` and `standardised`; one with ``n_noise`` above 0 takes that
many standard normals of the event's noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from turbosim_hep import layout
from turbosim_hep.model.chain import DecayChainZHead, invariant_mass

#: Noise-injection modes: how the standard-normal noise enters the network input.
NOISE_MODES = ("add", "cat", "mul", "none")
#: Output heads by name ("ptetaphi", "response" and "radiation": X only; "chain": Z only).
HEADS = ("physical", "ptetaphi", "response", "radiation", "chain", "linear")

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def mlp(
    in_features: int, hidden: Sequence[int], out_features: int, activation: str = "relu"
) -> nn.Sequential:
    """A fully connected network: ``Linear`` layers with ``activation`` between them.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths.
    hidden : sequence of int
        Widths of the hidden layers.
    activation : {"relu", "leaky_relu", "silu", "gelu"}
        Non-linearity after every hidden layer.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    widths = [in_features, *hidden]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), _ACTIVATIONS[activation]()]
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)


class NoisyMLP(nn.Module):
    """An MLP made stochastic by injecting Gaussian noise into its input.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths (the noise comes on top of the input).
    hidden : sequence of int
        Hidden-layer widths.
    noise_mode : {"add", "cat", "mul", "none"}
        ``add``: input + sigma * eps; ``mul``: input * (1 + sigma * eps); ``cat``: the
        input concatenated with sigma * eps of width ``noise_dim``; ``none``: deterministic.
    noise_sigma : float
        Scale of the noise (the input is standardised, so this is in units of its std).
    noise_dim : int, optional
        Width of the noise for ``cat`` (default: ``in_features``); ``add`` and ``mul``
        need one number per input feature.
    activation : str
        Non-linearity of the hidden layers.

    Attributes
    ----------
    noise_dim : int
        Width of the standard-normal noise `forward` expects (0 if deterministic).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        noise_mode: str = "add",
        noise_sigma: float = 0.05,
        noise_dim: int | None = None,
        activation: str = "relu",
    ):
        super().__init__()
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise mode {noise_mode!r}; choose from {NOISE_MODES}")
        if noise_mode != "none" and noise_sigma <= 0:
            noise_mode = "none"
        self.noise_mode = noise_mode
        self.noise_sigma = float(noise_sigma)
        if noise_mode == "none":
            self.noise_dim = 0
        elif noise_mode == "cat":
            self.noise_dim = int(noise_dim or in_features)
        else:
            self.noise_dim = in_features
        width = in_features + (self.noise_dim if noise_mode == "cat" else 0)
        self.net = mlp(width, hidden, out_features, activation)

    def forward(self, inputs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the network to ``inputs`` (n, in) with standard-normal ``noise`` (n, noise_dim).

        ``noise`` is drawn with the global torch generator when None. The input is never
        modified in place.
        """
        if self.noise_dim:
            if noise is None:
                noise = torch.randn(
                    inputs.shape[0], self.noise_dim, device=inputs.device, dtype=inputs.dtype
                )
            if self.noise_mode == "add":
                inputs = inputs + self.noise_sigma * noise
            elif self.noise_mode == "mul":
                inputs = inputs * (1.0 + self.noise_sigma * noise)
            else:
                inputs = torch.cat([inputs, self.noise_sigma * noise], dim=1)
        return self.net(inputs)


class Standardiser(nn.Module):
    """Per-feature standardisation (x - mean) / std, statistics kept as buffers.

    A feature with zero spread (MET pz is identically 0) gets std 1, so it maps to 0.
    """

    def __init__(self, n_features: int = layout.N_FEATURES):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, data: torch.Tensor) -> None:
        """Set mean and std from an (n, k) tensor (float64 accumulation)."""
        data = data.double()
        std = data.std(dim=0)
        std = torch.where(std > 1e-6 * data.abs().amax(dim=0).clamp_min(1.0), std, 1.0)
        self.mean.copy_(data.mean(dim=0))
        self.std.copy_(std)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        return (data - self.mean) / self.std

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Physical values from standardised ones."""
        return data * self.std + self.mean


class LinearHead(nn.Module):
    """The raw outputs are the 24 standardised features (the reference model)."""

    uses_input = False

    def __init__(self, scaler: Standardiser):
        super().__init__()
        self.scaler = scaler
        self.n_raw = layout.N_FEATURES

    def standardised(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def physical(self, raw: torch.Tensor) -> torch.Tensor:
        return self.scaler.inverse(raw)


class _MomentumHead(nn.Module):
    """Shared logic: raw outputs are standardised momentum components of some objects."""

    uses_input = False

    def __init__(self, scaler: Standardiser, columns: Sequence[int]):
        super().__init__()
        self.scaler = scaler
        self.n_raw = len(columns)
        self.register_buffer("columns", torch.tensor(list(columns), dtype=torch.long))

    def _momenta(self, raw: torch.Tensor) -> torch.Tensor:
        return raw * self.scaler.std[self.columns] + self.scaler.mean[self.columns]

    def standardised(self, raw: torch.Tensor) -> torch.Tensor:
        return self.scaler(self.physical(raw))


def _momentum_columns(objects: Sequence[str], space: str, skip_pz: Sequence[str] = ()) -> list[int]:
    columns = []
    for name in objects:
        start = layout.object_slice(space, name).start
        columns += [start, start + 1] + ([] if name in skip_pz else [start + 2])
    return columns


class XHead(_MomentumHead):
    """Massless electron and jets, MET with pz = 0, jets in decreasing pT order."""

    def __init__(self, scaler: Standardiser):
        super().__init__(scaler, _momentum_columns(layout.X_OBJECTS, "x", skip_pz=("met",)))

    def physical(self, raw: torch.Tensor) -> torch.Tensor:
        p = self._momenta(raw)  # electron (3), MET (2), jets (4 x 3)
        n = p.shape[0]
        electron = p[:, 0:3]
        met = p[:, 3:5]
        jets = p[:, 5:].reshape(n, layout.N_JETS, 3)
        jet_pt2 = jets[..., 0].square() + jets[..., 1].square()
        order = torch.argsort(jet_pt2, dim=1, descending=True)
        jets = torch.gather(jets, 1, order.unsqueeze(-1).expand(-1, -1, 3))
        zero = torch.zeros_like(met[:, :1])
        out = torch.cat(
            [
                electron,
                torch.linalg.vector_norm(electron, dim=1, keepdim=True),
                met,
                zero,
                torch.linalg.vector_norm(met, dim=1, keepdim=True),
                torch.cat([jets, torch.linalg.vector_norm(jets, dim=2, keepdim=True)], dim=2)
                .reshape(n, 4 * layout.N_JETS),
            ],
            dim=1,
        )
        return out


class ZHead(_MomentumHead):
    """Six on-shell partons: E = sqrt(|p|^2 + m^2) with per-parton masses (buffer ``mass``)."""

    def __init__(self, scaler: Standardiser):
        super().__init__(scaler, _momentum_columns(layout.Z_OBJECTS, "z"))
        self.register_buffer("mass", torch.zeros(layout.N_OBJECTS))

    @torch.no_grad()
    def fit_kinematics(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Set each parton's mass to the median invariant mass in an (n, 24) Z tensor
        (``x``, the paired detector events, is not used)."""
        p4 = z.double().reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)
        self.mass.copy_(invariant_mass(p4).median(dim=0).values)

    def physical(self, raw: torch.Tensor) -> torch.Tensor:
        p = self._momenta(raw).reshape(-1, layout.N_OBJECTS, 3)
        energy = torch.sqrt(p.square().sum(-1, keepdim=True) + self.mass.square().unsqueeze(-1))
        return torch.cat([p, energy], dim=2).reshape(-1, layout.N_FEATURES)


def _pt_eta_phi(p4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pT, eta and phi of (..., 4) four-vectors (px, py, pz, E)."""
    pt = torch.hypot(p4[..., 0], p4[..., 1]).clamp_min(1e-3)
    return pt, torch.asinh(p4[..., 2] / pt), torch.atan2(p4[..., 1], p4[..., 0])


def _massless(pt: torch.Tensor, eta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """(..., 4) massless four-vectors of pT, eta and phi."""
    eta = eta.clamp(-10.0, 10.0)
    return torch.stack(
        [pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)],
        dim=-1,
    )


class PtEtaPhiXHead(nn.Module):
    """Like `XHead`, from (log pT, eta, cos phi, sin phi) of each object (MET: no eta).

    The network predicts log pT and eta in units of their training spread and an
    unnormalised direction (a, b) in the transverse plane, phi = atan2(b, a); the
    four-vectors are massless by construction, MET has pz = 0 and the jets are pT-ordered.
    """

    uses_input = False

    def __init__(self, scaler: Standardiser):
        super().__init__()
        self.scaler = scaler
        self.n_raw = 4 + 3 + 4 * layout.N_JETS
        self.register_buffer("log_pt_mean", torch.zeros(layout.N_OBJECTS))
        self.register_buffer("log_pt_std", torch.ones(layout.N_OBJECTS))
        self.register_buffer("eta_std", torch.ones(layout.N_OBJECTS))

    @torch.no_grad()
    def fit_kinematics(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Set the log pT offsets and the scales of log pT and eta from an (n, 24) X tensor
        (``z``, the paired partons, is not used)."""
        pt, eta, _ = _pt_eta_phi(x.double().reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS))
        self.log_pt_mean.copy_(pt.log().mean(0))
        self.log_pt_std.copy_(pt.log().std(0).clamp_min(1e-3))
        self.eta_std.copy_(eta.std(0).clamp_min(1e-3))

    def _objects(self, raw: torch.Tensor, slot: slice, with_eta: bool) -> torch.Tensor:
        """(..., 4) massless four-vectors of the objects ``slot`` from their raw outputs."""
        log_pt = raw[..., 0] * self.log_pt_std[slot] + self.log_pt_mean[slot]
        pt = torch.exp(log_pt.clamp(max=12.0))
        a, b = (raw[..., 2], raw[..., 3]) if with_eta else (raw[..., 1], raw[..., 2])
        norm = torch.sqrt(a.square() + b.square() + 1e-12)
        px, py = pt * a / norm, pt * b / norm
        if not with_eta:
            return torch.stack([px, py, torch.zeros_like(pt), pt], dim=-1)
        eta = (raw[..., 1] * self.eta_std[slot]).clamp(-10.0, 10.0)
        return torch.stack([px, py, pt * torch.sinh(eta), pt * torch.cosh(eta)], dim=-1)

    def physical(self, raw: torch.Tensor) -> torch.Tensor:
        n = raw.shape[0]
        electron = self._objects(raw[:, 0:4], slice(0, 1), True).reshape(n, 4)
        met = self._objects(raw[:, 4:7], slice(1, 2), False).reshape(n, 4)
        jets = self._objects(raw[:, 7:].reshape(n, layout.N_JETS, 4), slice(2, 6), True)
        pt2 = jets[..., 0].square() + jets[..., 1].square()
        order = torch.argsort(pt2, dim=1, descending=True)
        jets = torch.gather(jets, 1, order.unsqueeze(-1).expand(-1, -1, 4))
        return torch.cat([electron, met, jets.reshape(n, 4 * layout.N_JETS)], dim=1)

    def standardised(self, raw: torch.Tensor) -> torch.Tensor:
        return self.scaler(self.physical(raw))


#: Scale of the raw outputs of `ResponseXHead` in log pT ratio and in radians of eta and
#: phi: a raw output of 1 is a response of 0.1, the order of the detector's resolution, so
#: that the untrained network starts near the partons.
RESPONSE_SCALE = 0.1
#: Largest change of eta and of phi between a parton and its object in `ResponseXHead`:
#: an object stays in its parton's cone (the jets' R is 0.5), so that the network cannot
#: turn a quark's jet into another quark's.
MAX_ANGLE_RESPONSE = 0.5


class ResponseXHead(nn.Module):
    """Detector objects as the detector's responses to the partons they come from.

    The raw outputs are, for the electron and each of the four jets, (log pT ratio,
    delta eta, delta phi) relative to its parton (`turbosim_hep.layout.X_SOURCES`), in
    units of `RESPONSE_SCALE`; and a residual of the missing transverse momentum in units
    of its spread (buffer ``met_scale``). The MET is the neutrino's transverse momentum
    plus the transverse momentum the detector lost or gained on the other objects (the
    partons' minus the objects'), plus that residual, as an energy-flow MET is. The
    objects are massless, the MET has pz = 0 and the jets are pT-ordered, as in `XHead`.

    A jet is made from one quark, so the masses of jet pairs and triplets are those of
    the W and top decays up to the responses: the peaks keep their widths whatever the
    network has learnt of the correlations.
    """

    uses_input = True

    def __init__(self, scaler: Standardiser):
        super().__init__()
        self.scaler = scaler
        self.n_raw = 3 + 2 + 3 * layout.N_JETS
        sources = [layout.Z_OBJECTS.index(name) for name in layout.X_SOURCES]
        self.register_buffer("sources", torch.tensor(sources, dtype=torch.long))
        self.register_buffer("met_scale", torch.ones(2))

    @torch.no_grad()
    def fit_kinematics(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Set the MET residual's scale from paired (n, 24) X and Z tensors: the spread of
        the MET about the neutrino plus the other objects' transverse mismeasurement."""
        self.met_scale.copy_(self._met_balance(x.double(), z.double()).std(0).clamp_min(1e-3))

    def _met_balance(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(n, 2) MET minus its expectation from the partons and the other objects."""
        parton = z.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)[:, self.sources, :2]
        objects = x.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)[..., :2]
        others = [i for i in range(layout.N_OBJECTS) if layout.X_OBJECTS[i] != "met"]
        met = layout.X_OBJECTS.index("met")
        lost = (parton[:, others] - objects[:, others]).sum(1)
        return objects[:, met] - parton[:, met] - lost

    def physical(self, raw: torch.Tensor, partons: torch.Tensor) -> torch.Tensor:
        """(n, 24) detector objects from raw outputs and (n, 24) physical partons."""
        return self._objects(self._responses(raw), partons, raw[:, 3:5])

    def standardised(self, raw: torch.Tensor, partons: torch.Tensor) -> torch.Tensor:
        return self.scaler(self.physical(raw, partons))

    @staticmethod
    def _responses(raw: torch.Tensor) -> torch.Tensor:
        """(n, 5, 3) responses (log pT ratio, delta eta, delta phi) of the electron and the
        four jets from the first 17 raw outputs (the MET's residual, raw 3:5, skipped)."""
        n = raw.shape[0]
        response = torch.cat([raw[:, 0:3], raw[:, 5:17]], dim=1).reshape(n, 1 + layout.N_JETS, 3)
        response = response * RESPONSE_SCALE
        angles = MAX_ANGLE_RESPONSE * torch.tanh(response[..., 1:] / MAX_ANGLE_RESPONSE)
        return torch.cat([response[..., :1], angles], dim=-1)

    def _objects(
        self, response: torch.Tensor, partons: torch.Tensor, met_residual: torch.Tensor
    ) -> torch.Tensor:
        """(n, 24) detector objects from the (n, 5, 3) responses of the electron and the
        jets to their partons and the (n, 2) raw residual of the MET."""
        n = response.shape[0]
        source = partons.reshape(n, layout.N_OBJECTS, layout.N_COMPONENTS)[:, self.sources]
        # the partons of the electron and the jets, by slices: indexing with a list would
        # copy host data inside a captured training step
        visible = torch.cat([source[:, :1], source[:, 2:]], dim=1)
        pt, eta, phi = _pt_eta_phi(visible)
        objects = _massless(
            pt * torch.exp(response[..., 0].clamp(max=5.0)),
            eta + response[..., 1],
            phi + response[..., 2],
        )
        lost = (visible[..., :2] - objects[..., :2]).sum(1)
        met_t = source[:, 1, :2] + lost + met_residual * self.met_scale
        met = torch.cat(
            [met_t, torch.zeros_like(met_t[:, :1]),
             torch.linalg.vector_norm(met_t, dim=1, keepdim=True)],
            dim=1,
        )
        jets = objects[:, 1:]
        order = torch.argsort(jets[..., 0].square() + jets[..., 1].square(), dim=1,
                              descending=True)
        jets = torch.gather(jets, 1, order.unsqueeze(-1).expand(-1, -1, 4))
        return torch.cat([objects[:, 0], met, jets.reshape(n, 4 * layout.N_JETS)], dim=1)


#: A quark "has its jet" when a detector jet lies within this delta R of it.
RADIATION_MATCH_RADIUS = 0.4
#: Bins of the table of `RadiationXHead`: quantiles of each quark's pT, and |eta| edges
#: (the tracker's end at 2.5, where Delphes cards change the jet response).
RADIATION_PT_BINS = 8
RADIATION_ETA_EDGES = (1.0, 1.8, 2.5)
#: Units of the raw outputs of a radiation jet: log pT ratio, eta and phi offsets from
#: its quark, with no bound (the spread of the truth's unmatched jets).
RADIATION_SCALE = (0.5, 1.0, 1.0)


class RadiationXHead(ResponseXHead):
    """`ResponseXHead` in which each jet is its quark's or a radiation jet.

    Among the four selected jets of an event, a quark's own jet is often missing (out of
    acceptance, merged or split) and a jet from initial- or final-state radiation is
    selected instead: in the detector truth 22-32 % of the quarks have no jet within
    delta R 0.4. A response bounded to its quark's cone cannot make such a jet, and a
    free one widens every quark's jet to imitate the mixture. Here each jet has both: the
    bounded response of its quark, and a radiation jet with unbounded log pT ratio and
    angles from the quark (`RADIATION_SCALE`). Which one an event gets is a Bernoulli
    draw, from one standard normal of the event's noise per jet (``n_noise``), with the
    probability measured on the training events (`fit_kinematics`) in bins of the
    quark's pT and |eta|, as a Delphes card tabulates efficiencies: a probability learnt
    by the network from the critics alone collapsed to 0 or 1 per quark. Raw outputs:
    those of `ResponseXHead`, then the radiation jets' three numbers per jet.
    """

    n_noise = layout.N_JETS

    def __init__(self, scaler: Standardiser):
        super().__init__(scaler)
        self.n_raw = 3 + 2 + 3 * layout.N_JETS + 3 * layout.N_JETS
        self.register_buffer("radiation_scale", torch.tensor(RADIATION_SCALE))
        self.register_buffer("eta_edges", torch.tensor(RADIATION_ETA_EDGES))
        self.register_buffer("pt_edges", torch.zeros(layout.N_JETS, RADIATION_PT_BINS - 1))
        self.register_buffer(
            "radiation_table",
            torch.zeros(layout.N_JETS, RADIATION_PT_BINS, len(RADIATION_ETA_EDGES) + 1),
        )

    def _quarks(self, partons: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """pT, eta and phi (n, 4) of the quark each jet comes from."""
        p4 = partons.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)
        return _pt_eta_phi(p4[:, self.sources[2:]])

    def _bins(self, pt: torch.Tensor, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 4) pT and |eta| bin of each quark in the table."""
        pt_bin = (pt.unsqueeze(-1) > self.pt_edges).sum(-1)
        return pt_bin, (eta.abs().unsqueeze(-1) > self.eta_edges).sum(-1)

    @torch.no_grad()
    def fit_kinematics(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Set the MET residual's scale (`ResponseXHead.fit_kinematics`) and the table of
        the fraction of quarks without a detector jet within `RADIATION_MATCH_RADIUS`,
        from paired (n, 24) X and Z tensors."""
        super().fit_kinematics(x, z)
        x, z = x.double(), z.double()
        pt, eta, phi = self._quarks(z)
        jets = x.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)[:, 2:]
        _, jet_eta, jet_phi = _pt_eta_phi(jets)
        d_eta = eta.unsqueeze(2) - jet_eta.unsqueeze(1)
        d_phi = torch.remainder(phi.unsqueeze(2) - jet_phi.unsqueeze(1) + torch.pi,
                                2 * torch.pi) - torch.pi
        distance = torch.hypot(d_eta, d_phi).amin(dim=2)  # (n, quark): to the nearest jet
        unmatched = (distance > RADIATION_MATCH_RADIUS).double()
        levels = torch.linspace(0, 1, RADIATION_PT_BINS + 1, dtype=torch.float64,
                                device=pt.device)[1:-1]
        self.pt_edges.copy_(torch.quantile(pt, levels, dim=0).T)
        pt_bin, eta_bin = self._bins(pt.float(), eta.float())
        n_eta = len(RADIATION_ETA_EDGES) + 1
        quark = torch.arange(layout.N_JETS, device=pt.device)
        cell = (quark * RADIATION_PT_BINS + pt_bin) * n_eta + eta_bin
        size = layout.N_JETS * RADIATION_PT_BINS * n_eta
        counts = torch.bincount(cell.flatten(), minlength=size).double()
        passed = torch.bincount(cell.flatten(), weights=unmatched.flatten(), minlength=size)
        # an empty cell takes the quark's fraction over all its cells
        overall = unmatched.mean(0).repeat_interleave(RADIATION_PT_BINS * n_eta)
        fraction = torch.where(counts > 0, passed / counts.clamp_min(1), overall)
        self.radiation_table.copy_(fraction.reshape(self.radiation_table.shape))

    def radiation_probability(self, partons: torch.Tensor) -> torch.Tensor:
        """(n, 4) probability that each quark's jet is replaced by a radiation jet."""
        pt, eta, _ = self._quarks(partons)
        pt_bin, eta_bin = self._bins(pt, eta)
        return self.radiation_table[torch.arange(layout.N_JETS, device=pt.device), pt_bin,
                                    eta_bin]

    def physical(
        self, raw: torch.Tensor, partons: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(n, 24) detector objects from raw outputs, (n, 24) physical partons and (n, 4)
        standard normals (drawn with torch when None)."""
        n = raw.shape[0]
        if noise is None:
            noise = torch.randn(n, self.n_noise, device=raw.device,
                                dtype=self.radiation_table.dtype)
        # the draw in the table's precision, whatever the network's (bfloat16 under amp)
        probability = self.radiation_probability(partons)
        choice = torch.special.ndtr(noise.to(probability.dtype)) < probability
        radiation = raw[:, 17:].reshape(n, layout.N_JETS, 3) * self.radiation_scale
        response = self._responses(raw)
        jets = torch.where(choice.unsqueeze(-1), radiation, response[:, 1:])
        return self._objects(torch.cat([response[:, :1], jets], dim=1), partons, raw[:, 3:5])

    def standardised(
        self, raw: torch.Tensor, partons: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.scaler(self.physical(raw, partons, noise))


def make_head(kind: str, space: str, scaler: Standardiser) -> nn.Module:
    """The output head ``kind`` (`HEADS`) of the Z or X space."""
    if kind == "linear":
        return LinearHead(scaler)
    if kind == "physical":
        return XHead(scaler) if space == "x" else ZHead(scaler)
    if kind == "ptetaphi" and space == "x":
        return PtEtaPhiXHead(scaler)
    if kind == "response" and space == "x":
        return ResponseXHead(scaler)
    if kind == "radiation" and space == "x":
        return RadiationXHead(scaler)
    if kind == "chain" and space == "z":
        return DecayChainZHead(scaler)
    raise ValueError(f"unknown output head {kind!r} for {space.upper()}; choose from {HEADS}")
