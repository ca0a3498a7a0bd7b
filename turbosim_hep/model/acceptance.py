"""The detector acceptance: a calibrated classifier of epsilon(z) = P(selected | partons).

Turbo-Sim's decoder learns p(x | z) on events that pass the reference selection. A raw
parton sample also holds the events a detector would reject; `AcceptanceModel` gives, for
every parton-level event, the probability that its detector-level event passes the
selection, as the efficiency networks beside CMS FlashSim's generative model do.

The classifier sees features derived from Z that the selection depends on: the
transverse momentum (log), the pseudorapidity and its absolute value of each parton and
the angular distance Delta R of every pair of partons (isolation of the electron, merging
of jets). The azimuth itself is left out: the detector is symmetric in it. The electron's
direction and momentum are measured almost exactly, so the detector's edges are sharp in
the parton electron's |eta| (the end of the tracker, the step of the electron
efficiency); a small MLP on |eta| alone smooths such steps over several tenths of a unit.
The electron therefore also gets a thermometer code, |eta| below each of `ETA_STEPS`,
which lets the classifier place an edge anywhere on a grid finer than the detector's
without knowing the card. Beyond the last step (`ELECTRON_MAX_ETA`, half a unit past
the end of the tracker) the electron leaves nothing the selection sees, and an event
passes only through another electron: its features take the electron at that |eta|, so
the few such events are pooled instead of extrapolated. (The same codes for every parton
fitted the noise of the training events, and codes of the electron's pT biased the
reconstructed m_tt of the kept events: benchmarks/acceptance_features.md.) The features
are standardised with statistics of the training events, stored as buffers.

The classifier is an ensemble of `AcceptanceConfig.members` small networks, cross-fitted:
each learns from all folds of the examples but its own, so every example has a logit
from a network that never saw it, and one calibration is fitted on all of those (rather
than on a held-out part only): a Platt scaling (a slope and an offset of the logit) and
an offset of the logit for each step of the electron's thermometer code. The networks,
trained by stochastic gradient descent with early stopping, round the detector's steps
in the electron's |eta| (a single one predicted a third too many selected events just
beyond the tracker); the offsets are fitted exactly, by a convex fit of a few dozen
numbers, and restore the steps while leaving every other dependence to the networks.
epsilon is the mean of the members' calibrated probabilities. Everything is a parameter
or a buffer of one module: a state dict is the whole acceptance.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from turbosim_hep import layout
from turbosim_hep.model.networks import mlp
from turbosim_hep.settings import Settings

#: Pairs of partons (Z-order indices) whose Delta R is a feature.
PARTON_PAIRS: tuple[tuple[int, int], ...] = tuple(
    itertools.combinations(range(layout.N_OBJECTS), 2)
)
#: Thresholds of the electron's thermometer code: |eta| below each.
ETA_STEPS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 31))
#: Largest |eta| of the electron in the features (the last step of its code): the
#: reference card's tracker ends at 2.5, and an electron beyond 3 is never the one
#: selected, so its exact direction carries no information.
ELECTRON_MAX_ETA = ETA_STEPS[-1]
#: The parton with a thermometer code (Z-order index).
_ELECTRON = layout.Z_OBJECTS.index("e-")
#: Ridge penalty on the calibration's |eta| offsets (per unit of the mean binary
#: cross-entropy): it keeps the offset of an |eta| range without any selected event
#: finite, and is too small to shrink the steps the networks leave (a stronger one, even
#: chosen by cross-validation, brought the rounding back:
#: benchmarks/acceptance_features.md).
OFFSET_RIDGE = 1e-6
#: Names of the features of `parton_features`, in column order.
FEATURE_NAMES: tuple[str, ...] = (
    *(f"logpt_{name}" for name in layout.Z_OBJECTS),
    *(f"eta_{name}" for name in layout.Z_OBJECTS),
    *(f"dr_{layout.Z_OBJECTS[a]}_{layout.Z_OBJECTS[b]}" for a, b in PARTON_PAIRS),
    *(f"abseta_{name}" for name in layout.Z_OBJECTS),
    *(f"abseta_e-_below_{step}" for step in ETA_STEPS),
)
N_FEATURES = len(FEATURE_NAMES)

#: Smallest transverse momentum (GeV) the features take: keeps log pT and eta finite.
_MIN_PT = 1e-3
#: Bound of |eta| in the features (far outside any detector).
_MAX_ETA = 10.0


def parton_features(z: torch.Tensor) -> torch.Tensor:
    """Acceptance features of parton-level events.

    The electron's pseudorapidity is bounded by ±`ELECTRON_MAX_ETA` (every parton's by
    ±10, far outside any detector) before any feature is computed from it.

    Parameters
    ----------
    z : torch.Tensor
        Shape (n, 24): (px, py, pz, E) of the six partons in Z order, GeV.

    Returns
    -------
    torch.Tensor
        Shape (n, `N_FEATURES`): log pT and eta of every parton, Delta R of every pair
        (`PARTON_PAIRS`), |eta| of every parton, then the electron's thermometer code
        (1.0 or 0.0: |eta| below each of `ETA_STEPS`), in the order of `FEATURE_NAMES`.
    """
    p4 = z.reshape(-1, layout.N_OBJECTS, layout.N_COMPONENTS)
    px, py, pz = p4[..., 0], p4[..., 1], p4[..., 2]
    pt = torch.hypot(px, py).clamp_min(_MIN_PT)
    bound = torch.full((layout.N_OBJECTS,), _MAX_ETA, dtype=z.dtype, device=z.device)
    bound[_ELECTRON] = ELECTRON_MAX_ETA
    eta = torch.maximum(torch.minimum(torch.asinh(pz / pt), bound), -bound)
    phi = torch.atan2(py, px)
    first = torch.tensor([a for a, _ in PARTON_PAIRS], device=z.device)
    second = torch.tensor([b for _, b in PARTON_PAIRS], device=z.device)
    d_eta = eta[:, first] - eta[:, second]
    d_phi = torch.remainder(phi[:, first] - phi[:, second] + torch.pi, 2 * torch.pi) - torch.pi
    delta_r = torch.hypot(d_eta, d_phi)
    abs_eta = eta.abs()
    eta_steps = torch.tensor(ETA_STEPS, dtype=z.dtype, device=z.device)
    electron_eta = (abs_eta[:, _ELECTRON, None] < eta_steps).to(z.dtype)
    return torch.cat([torch.log(pt), eta, delta_r, abs_eta, electron_eta], dim=1)


@dataclass
class AcceptanceConfig(Settings):
    """Architecture of the acceptance classifier.

    Attributes
    ----------
    hidden : list of int
        Hidden widths of each member's MLP.
    activation : str
        Hidden-layer non-linearity (see `turbosim_hep.model.networks.mlp`).
    members : int
        Networks of the cross-fitted ensemble, and folds of its training examples.
    """

    kind = "acceptance"

    hidden: list[int] = field(default_factory=lambda: [32, 32])
    activation: str = "relu"
    members: int = 5

    def __post_init__(self) -> None:
        if self.members < 2:
            raise ValueError(
                f"acceptance members must be at least 2 (cross-fitting), not {self.members}"
            )


class AcceptanceModel(nn.Module):
    """epsilon(z): the probability that an event with partons z passes the selection.

    Parameters
    ----------
    config : AcceptanceConfig, optional
        Architecture (default: `AcceptanceConfig()`).
    """

    def __init__(self, config: AcceptanceConfig | None = None):
        super().__init__()
        self.config = config or AcceptanceConfig()
        self.members = nn.ModuleList(
            mlp(N_FEATURES, self.config.hidden, 1, self.config.activation)
            for _ in range(self.config.members)
        )
        self.register_buffer("feature_mean", torch.zeros(N_FEATURES))
        self.register_buffer("feature_std", torch.ones(N_FEATURES))
        # Platt scaling of the logit: slope, offset (identity until `calibrate`).
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))
        # offsets of the logit per step of the electron's |eta| code (0 until `calibrate`)
        self.register_buffer("eta_offsets", torch.zeros(len(ETA_STEPS)))

    @torch.no_grad()
    def fit_standardisation(
        self, z: torch.Tensor, weight: torch.Tensor | None = None
    ) -> None:
        """Set the feature standardisation from (weighted) training events."""
        features = parton_features(z).double()
        w = torch.ones(len(features), dtype=features.dtype, device=features.device)
        if weight is not None:
            w = weight.to(features.dtype)
        w = w / w.sum()
        mean = (w[:, None] * features).sum(0)
        var = (w[:, None] * (features - mean) ** 2).sum(0)
        std = var.sqrt()
        self.feature_mean.copy_(mean.float())
        # a feature constant over the training events (a code no event reaches) stays 0
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).float())

    def member_logits(self, features: torch.Tensor, member: int) -> torch.Tensor:
        """Uncalibrated logits of one member.

        Parameters
        ----------
        features : torch.Tensor
            (n, `N_FEATURES`) features of `parton_features`.
        member : int
            Which member.

        Returns
        -------
        torch.Tensor
            Shape (n,).
        """
        return self._run(member, self._standardise(features))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Calibrated acceptance probabilities, shape (n,), in [0, 1]: the mean over the
        members."""
        features = parton_features(z)
        standardised = self._standardise(features)
        logits = torch.stack([self._run(k, standardised) for k in range(len(self.members))])
        return torch.sigmoid(self._calibrated(logits, features)).mean(0)

    def held_out_probabilities(self, z: torch.Tensor, predictor: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities of each event from one member only.

        Parameters
        ----------
        z : torch.Tensor
            (n, 24) parton-level events.
        predictor : torch.Tensor
            (n,) integer: the member that predicts each event. With the member that did
            not learn each training example, these are the out-of-fold predictions that
            judge the acceptance on its own examples.

        Returns
        -------
        torch.Tensor
            Shape (n,), in [0, 1].
        """
        features = parton_features(z)
        return torch.sigmoid(self._calibrated(self._logits_of(features, predictor), features))

    @torch.no_grad()
    def calibrate(
        self,
        z: torch.Tensor,
        passed: torch.Tensor,
        predictor: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> None:
        """Fit the calibration by weighted binary cross-entropy on out-of-fold logits.

        The Platt slope and offset and the electron's |eta| offsets are fitted together
        (L-BFGS; the loss is convex in them), with the tiny ridge `OFFSET_RIDGE` on the
        offsets.

        Parameters
        ----------
        z : torch.Tensor
            (n, 24) parton-level events.
        passed : torch.Tensor
            (n,) whether each event passed the selection (bool or 0/1).
        predictor : torch.Tensor
            (n,) integer: the member whose logit each event contributes, one that did not
            learn it.
        weight : torch.Tensor, optional
            (n,) event weights (for example the ``genWeight`` of a thinned sample).
        """
        features = parton_features(z)
        logits = self._logits_of(features, predictor).double()
        eta_code = self._eta_code(features).double()
        target = passed.to(logits.dtype)
        w = torch.ones_like(logits) if weight is None else weight.to(logits.dtype)
        scale, offsets = _fit_calibration(logits, eta_code, target, w, OFFSET_RIDGE)
        self.calibration.copy_(scale.float())
        self.eta_offsets.copy_(offsets.float())

    def _calibrated(self, logits: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Calibrated logits: the Platt scaling of ``logits`` (shape (..., n)) plus the
        offsets of the events' |eta| steps."""
        slope, offset = self.calibration
        return slope * logits + (offset + self._eta_code(features) @ self.eta_offsets)

    def _standardise(self, features: torch.Tensor) -> torch.Tensor:
        """Features in the units the members take."""
        return (features - self.feature_mean) / self.feature_std

    def _run(self, member: int, standardised: torch.Tensor) -> torch.Tensor:
        """One member's logits, shape (n,), of standardised features."""
        return self.members[member](standardised).squeeze(-1)

    def _logits_of(self, features: torch.Tensor, predictor: torch.Tensor) -> torch.Tensor:
        """The logit of each event from the member ``predictor`` names for it, shape (n,).

        Raises
        ------
        ValueError
            If ``predictor`` names a member the model does not have.
        """
        if len(predictor) and not 0 <= int(predictor.min()) <= int(predictor.max()) < len(
            self.members
        ):
            raise ValueError(f"predictor must name members 0 to {len(self.members) - 1}")
        standardised = self._standardise(features)
        logits = torch.empty(len(features), dtype=features.dtype, device=features.device)
        for k in range(len(self.members)):
            rows = predictor == k
            logits[rows] = self._run(k, standardised[rows])
        return logits

    @staticmethod
    def _eta_code(features: torch.Tensor) -> torch.Tensor:
        """The electron's thermometer code: the last `ETA_STEPS` columns of the features."""
        return features[:, -len(ETA_STEPS):]


def _fit_calibration(
    logits: torch.Tensor,
    eta_code: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    ridge: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Platt (slope, offset) and the |eta| offsets minimising the weighted mean
    binary cross-entropy plus ``ridge`` times the sum of the squared offsets."""
    w = weight / weight.sum()
    scale = torch.tensor([1.0, 0.0], dtype=logits.dtype, device=logits.device)
    offsets = torch.zeros(eta_code.shape[1], dtype=logits.dtype, device=logits.device)
    scale.requires_grad_(True)
    offsets.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [scale, offsets], lr=1.0, max_iter=500, tolerance_grad=1e-9,
        tolerance_change=1e-12, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        with torch.enable_grad():
            calibrated = scale[0] * logits + scale[1] + eta_code @ offsets
            loss = nn.functional.binary_cross_entropy_with_logits(
                calibrated, target, weight=w, reduction="sum"
            ) + ridge * offsets.square().sum()
            loss.backward()
        return loss

    optimizer.step(closure)
    return scale.detach(), offsets.detach()


def acceptance_from_state(
    config: Mapping[str, object], state: Mapping[str, torch.Tensor]
) -> AcceptanceModel:
    """An `AcceptanceModel` from a stored configuration and state dict, in eval mode."""
    model = AcceptanceModel(AcceptanceConfig.from_dict(config))
    model.load_state_dict(state)
    return model.eval()


__all__: Sequence[str] = [
    "ELECTRON_MAX_ETA",
    "ETA_STEPS",
    "FEATURE_NAMES",
    "N_FEATURES",
    "OFFSET_RIDGE",
    "PARTON_PAIRS",
    "AcceptanceConfig",
    "AcceptanceModel",
    "acceptance_from_state",
    "parton_features",
]
