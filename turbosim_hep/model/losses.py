"""The eight terms of the Turbo-Sim objective (Quetant et al., NeurIPS ML4PS 2021, eqs. 2-8).

Direct direction, x -> z~ -> x^ (equation 4)::

    L_direct  = w_dzt L(z, z~) + w_Dzt D(p_z, q~_z) + w_dxh L(x, x^) + w_Dxh D(p_x, p^_x)

Reverse direction, z -> x~ -> z^ (equation 7)::

    L_reverse = w_dxt L(x, x~) + w_Dxt D(p_x, p~_x) + w_dzh L(z, z^) + w_Dzh D(p_z, q^_z)

and L_turbo = L_direct + L_reverse (equation 8, the paper's alpha, beta and gamma
absorbed into the eight weights). Lower-case ``d`` terms are supervised (paired) losses,
an l_p distance (p = 2, the mean squared error, by default); upper-case ``D`` terms are
divergences between a true marginal and a generated one, each estimated by its own
critic (``wgan-gp``: Wasserstein critic with gradient penalty; ``dre``: density-ratio
estimator, i.e. a sigmoid classifier trained with binary cross-entropy) or by the
critic-free kernel estimate ``mmd`` (maximum mean discrepancy).

Beyond the paper, an optional ``mass`` term (weight ``LossConfig.mass_weight``) compares
the invariant masses of x~ (jet pairs and triplets, lepton-jet combinations, m_tt and the
reconstructed W and top masses; `turbosim_hep.model.masses`) with those of the training
events through the one-dimensional Wasserstein distance of each mass. The W and top
peaks depend on these correlations, which the eight terms learn last (Butter, Plehn and
Winterhalder, "How to GAN LHC events", SciPost Phys. 7, 075 (2019), add a distance on
resonance masses for this; in one dimension the Wasserstein distance is
exact from sorted samples and costs little next to the networks, where a kernel MMD
would double the cost of a step).

With ``LossConfig.conditional`` the critics of the ``D`` terms on z~ = E(x) and on
x~ = D(z) see each generated event beside the true event it was generated from: the
critic of Dxt compares the pairs (x~, z) with the true pairs (x, z), that of Dzt (z~, x)
with (z, x). The divergences are then those of the joint distributions, which a decoder
matches only if it reproduces p(x | z) itself, the correlations between the objects of
one event and their partons included, where the marginal critics of the paper are blind
to which parton made which jet (a conditional GAN; the cycle terms' critics stay
marginal: x^ and z^ have no true partner).

Everything here works on standardised tensors. A term whose weight is zero is never
evaluated, and a critic exists only for a non-zero ``D`` term that needs one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from turbosim_hep import layout
from turbosim_hep.model.critics import CriticEnsemble
from turbosim_hep.model.masses import MASS_FEATURE_NAMES, mass_features

#: The eight terms, in the order of the paper's equations 4 and 7.
TERMS: tuple[str, ...] = ("dzt", "Dzt", "dxh", "Dxh", "dxt", "Dxt", "dzh", "Dzh")
SUPERVISED_TERMS: tuple[str, ...] = ("dzt", "dxh", "dxt", "dzh")
DISTRIBUTION_TERMS: tuple[str, ...] = ("Dzt", "Dxh", "Dxt", "Dzh")
#: The generated quantity each term looks at: z~ = E(x), x^ = D(E(x)), x~ = D(z), z^ = E(D(z)).
GENERATED: Mapping[str, str] = {t: t[1:] for t in TERMS}
#: The true space each generated quantity is compared with.
TARGET: Mapping[str, str] = {t: t[1] for t in TERMS}
#: Divergence estimators of the ``D`` terms.
DIVERGENCES: tuple[str, ...] = ("wgan-gp", "dre", "mmd")
#: Losses of the ``d`` terms: the paper's l_p distance, or the energy score.
SCORES: tuple[str, ...] = ("lp", "energy")
#: The second, independent draw of a generated quantity that an energy score needs.
SECOND_DRAW: Mapping[str, str] = {g: f"{g}2" for g in ("zt", "xh", "xt", "zh")}
#: The true quantity a conditional critic (``LossConfig.conditional``) sees beside each
#: generated one: the event it was generated from (none for the cycles' x^ and z^).
CONDITION: Mapping[str, str] = {"zt": "x", "xt": "z"}

#: Gradient-penalty weights of the reference run script.
REFERENCE_GP_WEIGHTS: Mapping[str, float] = {
    "Dzt": 1000.0,
    "Dxh": 1000.0,
    "Dxt": 10.0,
    "Dzh": 1000.0,
}


@dataclass
class LossConfig:
    """Weights and estimators of the eight terms.

    Attributes
    ----------
    weights : dict
        Weight of each of `TERMS` (missing ones are 0).
    divergence : dict
        Estimator of each ``D`` term: ``"wgan-gp"`` (default), ``"dre"`` or ``"mmd"``.
    gp_weights : dict
        Gradient-penalty weight of each ``wgan-gp`` critic (reference values by default).
    p : float
        Exponent of the supervised l_p loss, mean(|a - b|^p); 2 is the MSE.
    critic_hidden : list of int
        Hidden widths of every critic.
    mmd_bandwidths : list of float
        Gaussian-kernel widths of the MMD estimate, in units of the standardised data.
    mass_weight : float
        Weight of the ``mass`` term on x~ (0: off, the paper's objective).
    conditional : bool
        Critics of the joint distributions of z~ and x~ with the events they come from
        (see the module docstring; False: the paper's marginal critics).
    score : dict
        Loss of each ``d`` term: ``"lp"`` (default, the paper's) or ``"energy"``, the
        energy score of two independent draws (`energy_score`): a proper scoring rule,
        so its minimum is the generator's conditional distribution itself, where the
        l_p loss of one draw is minimal for a point (the conditional mean for p = 2).
    """

    weights: dict[str, float] = field(default_factory=dict)
    divergence: dict[str, str] = field(default_factory=dict)
    gp_weights: dict[str, float] = field(default_factory=lambda: dict(REFERENCE_GP_WEIGHTS))
    p: float = 2.0
    critic_hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    mmd_bandwidths: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0])
    mass_weight: float = 0.0
    conditional: bool = False
    score: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown loss term(s) {sorted(unknown)}; the terms are {TERMS}")
        self.weights = {t: float(self.weights.get(t, 0.0)) for t in TERMS}
        unknown = set(self.divergence) - set(DISTRIBUTION_TERMS)
        if unknown:
            raise ValueError(
                f"divergence given for {sorted(unknown)}; only {DISTRIBUTION_TERMS} have one"
            )
        self.divergence = {t: self.divergence.get(t, "wgan-gp") for t in DISTRIBUTION_TERMS}
        for term, kind in self.divergence.items():
            if kind not in DIVERGENCES:
                raise ValueError(
                    f"unknown divergence {kind!r} for {term}; choose from {DIVERGENCES}"
                )
        self.gp_weights = {t: float(self.gp_weights.get(t, 0.0)) for t in DISTRIBUTION_TERMS}
        if self.p <= 0:
            raise ValueError(f"the l_p exponent must be positive, not {self.p}")
        self.critic_hidden = [int(h) for h in self.critic_hidden]
        self.mmd_bandwidths = [float(b) for b in self.mmd_bandwidths]
        self.mass_weight = float(self.mass_weight)
        if self.mass_weight < 0:
            raise ValueError(f"mass_weight must not be negative, not {self.mass_weight}")
        if not isinstance(self.conditional, bool):
            raise ValueError(f"conditional must be true or false, not {self.conditional!r}")
        unknown = set(self.score) - set(SUPERVISED_TERMS)
        if unknown:
            raise ValueError(
                f"score given for {sorted(unknown)}; only {SUPERVISED_TERMS} have one"
            )
        self.score = {t: self.score.get(t, "lp") for t in SUPERVISED_TERMS}
        for term, kind in self.score.items():
            if kind not in SCORES:
                raise ValueError(f"unknown score {kind!r} for {term}; choose from {SCORES}")

    @property
    def active(self) -> tuple[str, ...]:
        """The terms with a non-zero weight."""
        return tuple(t for t in TERMS if self.weights[t] != 0.0)

    @property
    def critic_terms(self) -> tuple[str, ...]:
        """The active ``D`` terms estimated by a critic network."""
        active = self.active
        return tuple(
            t for t in DISTRIBUTION_TERMS if t in active and self.divergence[t] != "mmd"
        )


def lp_loss(target: torch.Tensor, generated: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Supervised l_p loss mean(|target - generated|^p) (p = 2: mean squared error)."""
    diff = generated - target
    if p == 2.0:
        return diff.square().mean()
    if p == 1.0:
        return diff.abs().mean()
    return diff.abs().pow(p).mean()


def energy_score(
    target: torch.Tensor, first: torch.Tensor, second: torch.Tensor
) -> torch.Tensor:
    """Energy score of a generator at its targets, from two independent draws per event.

    mean(|a - y| + |b - y|) / 2 - mean(|a - b|) / 2 with Euclidean norms over the
    features: an unbiased estimate of E|A - y| - E|A - A'| / 2 (Gneiting and Raftery,
    JASA 102 (2007) 359), which a generator minimises by producing the conditional
    distribution of y itself (distributional regression by "engression", Shen and
    Meinshausen, arXiv:2307.00835). Norms get a small floor for a finite gradient.
    """

    def norm(a: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(a.square().sum(1) + 1e-8)

    spread = norm(first - second)
    return ((norm(first - target) + norm(second - target)) / 2 - spread / 2).mean()


def marginal_wasserstein1(reference_sorted: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """One-dimensional Wasserstein-1 distance of every column of a sample to a reference
    distribution, averaged over the columns.

    In one dimension the distance is the mean absolute difference of the quantiles: the
    sample's sorted values against the reference's quantiles at the levels (i + 1/2) / n.
    Exact for a reference of the same size; with a large reference (the whole training
    set) the distance carries no noise from the reference side. The gradient reaches
    every sample value.

    Parameters
    ----------
    reference_sorted : torch.Tensor
        (N, k) reference values, each column sorted in increasing order.
    sample : torch.Tensor
        (n, k) values to compare.
    """
    if reference_sorted.shape[1:] != sample.shape[1:]:
        raise ValueError(
            f"a sample of shape {tuple(sample.shape)} cannot be compared with a reference "
            f"of shape {tuple(reference_sorted.shape)}"
        )
    n, n_reference = sample.shape[0], reference_sorted.shape[0]
    levels = torch.arange(n, device=sample.device, dtype=torch.float64).add_(0.5).div_(n)
    rows = (levels * n_reference).long().clamp_(max=n_reference - 1)
    return (torch.sort(sample, dim=0).values - reference_sorted[rows]).abs().mean()


def mmd2(real: torch.Tensor, fake: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Squared maximum mean discrepancy with a sum of Gaussian kernels (biased estimate).

    Parameters
    ----------
    real, fake : torch.Tensor
        Samples of shape (n, d) and (m, d).
    bandwidths : sequence of float
        Kernel widths h: k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2 d)), the squared
        distance divided by the dimension d so the widths do not depend on it.
    """
    both = torch.cat([real, fake])
    d2 = torch.cdist(both, both).square() / both.shape[1]
    kernel = sum(torch.exp(-d2 / (2.0 * h * h)) for h in bandwidths)
    n = real.shape[0]
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2.0 * kernel[:n, n:].mean()


class TurboSimObjective(nn.Module):
    """The weighted eight-term objective and the critics of its ``D`` terms.

    Parameters
    ----------
    config : LossConfig
        Weights and estimators.
    n_features : int
        Width of the Z and X spaces (24).
    """

    def __init__(self, config: LossConfig, n_features: int = layout.N_FEATURES):
        super().__init__()
        self.config = config
        self.active = config.active
        self.critic_terms = config.critic_terms
        width = 2 * n_features if config.conditional else n_features
        self.critics = (
            CriticEnsemble(len(self.critic_terms), width, config.critic_hidden)
            if self.critic_terms
            else None
        )
        kinds = [config.divergence[t] for t in self.critic_terms]
        self._wgan = [k == "wgan-gp" for k in kinds]
        self.register_buffer("_is_wgan", torch.tensor(self._wgan, dtype=torch.bool))
        self.register_buffer(
            "_gp_weights", torch.tensor([config.gp_weights[t] for t in self.critic_terms])
        )
        self._use_gp = any(
            wgan and config.gp_weights[t] > 0
            for wgan, t in zip(self._wgan, self.critic_terms, strict=True)
        )
        self.uses_mass = config.mass_weight > 0
        # scales of the mass term, set from the training data by `fit_mass_scale`
        n_masses = len(MASS_FEATURE_NAMES)
        self.register_buffer("_x_mean", torch.zeros(n_features), persistent=False)
        self.register_buffer("_x_std", torch.ones(n_features), persistent=False)
        self.register_buffer("_mass_mean", torch.zeros(n_masses), persistent=False)
        self.register_buffer("_mass_std", torch.ones(n_masses), persistent=False)
        self.register_buffer("_mass_reference", torch.zeros(1, n_masses), persistent=False)

    @property
    def term_names(self) -> tuple[str, ...]:
        """The terms that enter the objective: the active ones, then ``mass`` if on."""
        return self.active + (("mass",) if self.uses_mass else ())

    def weight(self, term: str) -> float:
        """Weight of a term of `term_names`."""
        return self.config.mass_weight if term == "mass" else self.config.weights[term]

    @torch.no_grad()
    def fit_mass_scale(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set what the mass term needs from the training events: the scale of every
        mass feature and their distribution (the sorted standardised features), which the
        generated batches are compared with.

        Parameters
        ----------
        x : torch.Tensor
            (n, 24) training events in GeV.
        mean, std : torch.Tensor
            The standardisation of X (``TurboSim.x_scaler``), to get GeV back from the
            standardised events the objective sees.
        """
        self._x_mean.copy_(mean)
        self._x_std.copy_(std)
        features = mass_features(x.float())
        self._mass_mean.copy_(features.mean(0))
        self._mass_std.copy_(features.std(0).clamp_min(1e-6))
        standardised = (features - self._mass_mean) / self._mass_std
        self._mass_reference = torch.sort(standardised, dim=0).values

    def _masses(self, standardised_x: torch.Tensor) -> torch.Tensor:
        features = mass_features(standardised_x * self._x_std + self._x_mean)
        return (features - self._mass_mean) / self._mass_std

    # --- which generated quantities are needed ---------------------------------------
    @property
    def needs(self) -> frozenset[str]:
        """The generated quantities (``zt``, ``xh``, ``xt``, ``zh``) the active terms use,
        and the second draws (`SECOND_DRAW`) of those an energy score compares."""
        second = {
            SECOND_DRAW[GENERATED[t]]
            for t in self.active
            if t[0] == "d" and self.config.score[t] == "energy"
        }
        return frozenset(GENERATED[t] for t in self.active) | second | (
            {"xt"} if self.uses_mass else set()
        )

    # --- critics ---------------------------------------------------------------------
    def _critic_inputs(
        self, samples: Mapping[str, torch.Tensor], real: Mapping[str, torch.Tensor], side: str
    ) -> torch.Tensor:
        """(critics, n, width) inputs of the critics: the true (``side`` "target") or the
        generated ("generated") quantity of each critic's term, beside the event it came
        from when the critics are conditional (zeros for the cycles' quantities)."""
        names = TARGET if side == "target" else GENERATED
        inputs = []
        for term in self.critic_terms:
            sample = samples[names[term]]
            if self.config.conditional:
                given = CONDITION.get(GENERATED[term])
                partner = real[given] if given else torch.zeros_like(sample)
                sample = torch.cat([sample, partner], dim=1)
            inputs.append(sample)
        return torch.stack(inputs)

    def _stacks(
        self, real: Mapping[str, torch.Tensor], fake: Mapping[str, torch.Tensor], detach: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        reals = self._critic_inputs(real, real, "target")
        fakes = self._critic_inputs(fake, real, "generated")
        return reals, (fakes.detach() if detach else fakes)

    def critic_loss(
        self,
        real: Mapping[str, torch.Tensor],
        fake: Mapping[str, torch.Tensor],
        generator: torch.Generator | None = None,
        penalty_scale: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of every critic on true data and detached fakes.

        ``generator`` draws the interpolation points of the gradient penalty, whose
        weights are multiplied by ``penalty_scale``; 0 leaves the penalty out and skips
        its cost (lazy regularisation: penalise every k-th update with k times the
        weight, as in StyleGAN2, Karras et al. 2020).

        Returns
        -------
        total : torch.Tensor
            Sum of the critic losses (the critics are independent, so one backward
            trains each on its own loss).
        per_critic : torch.Tensor
            Detached loss of each critic, in the order of ``critic_terms``.
        """
        reals, fakes = self._stacks(real, fake, detach=True)
        n = reals.shape[1]
        if self._use_gp and penalty_scale != 0.0:
            alpha = torch.rand(
                reals.shape[0], n, 1, device=reals.device, dtype=reals.dtype, generator=generator
            )
            mixed = torch.lerp(fakes, reals, alpha)
            scores, grad = self.critics.forward_with_input_gradient(
                torch.cat([reals, fakes, mixed], dim=1), grad_from=2 * n
            )
            norm = torch.sqrt(grad.square().sum(-1) + 1e-12)
            penalty = (norm - 1.0).square().mean(1)
        else:
            scores = self.critics(torch.cat([reals, fakes], dim=1))
            penalty = None
        real_scores, fake_scores = scores[:, :n], scores[:, n : 2 * n]
        losses = []
        if any(self._wgan):
            wgan = fake_scores.mean(1) - real_scores.mean(1)
            if penalty is not None:
                wgan = wgan + (penalty_scale * self._gp_weights) * penalty
            losses.append(wgan)
        if not all(self._wgan):
            dre = F.softplus(-real_scores).mean(1) + F.softplus(fake_scores).mean(1)
            losses.append(dre)
        per_critic = losses[0] if len(losses) == 1 else torch.where(self._is_wgan, *losses)
        return per_critic.sum(), per_critic.detach()

    def critic_parameters_frozen(self, frozen: bool) -> None:
        """Stop (or restart) gradients into the critics, for the generator update."""
        if self.critics is not None:
            for parameter in self.critics.parameters():
                parameter.requires_grad_(not frozen)

    # --- the generator objective -----------------------------------------------------
    def terms(
        self, real: Mapping[str, torch.Tensor], fake: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Value of every term of `term_names` (unweighted), as the networks see it."""
        values: dict[str, torch.Tensor] = {}
        for term in self.active:
            if term[0] == "d" and self.config.score[term] == "energy":
                generated = GENERATED[term]
                values[term] = energy_score(
                    real[TARGET[term]], fake[generated], fake[SECOND_DRAW[generated]]
                )
            elif term[0] == "d":
                values[term] = lp_loss(real[TARGET[term]], fake[GENERATED[term]], self.config.p)
            elif self.config.divergence[term] == "mmd":
                values[term] = mmd2(
                    real[TARGET[term]], fake[GENERATED[term]], self.config.mmd_bandwidths
                )
        if self.critic_terms:
            scores = self.critics(self._critic_inputs(fake, real, "generated"))
            losses = []
            if any(self._wgan):
                losses.append(-scores.mean(1))
            if not all(self._wgan):
                losses.append(F.softplus(-scores).mean(1))
            per_critic = losses[0] if len(losses) == 1 else torch.where(self._is_wgan, *losses)
            for k, term in enumerate(self.critic_terms):
                values[term] = per_critic[k]
        if self.uses_mass:
            values["mass"] = marginal_wasserstein1(self._mass_reference, self._masses(fake["xt"]))
        return values

    def total(self, values: Mapping[str, torch.Tensor | float]) -> torch.Tensor | float:
        """The weighted sum of the term values (tensors while training, floats in validation)."""
        return sum(self.weight(t) * values[t] for t in self.term_names)
