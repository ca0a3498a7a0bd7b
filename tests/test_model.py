"""The Turbo-Sim model: heads, noise, critics, the eight terms, presets, checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from turbosim_hep import layout, metrics, physics
from turbosim_hep.errors import InputError
from turbosim_hep.inference import FusedMLP, fuse_for_inference
from turbosim_hep.kinematics import ptetaphim_from_p4
from turbosim_hep.model import (
    TERMS,
    ModelConfig,
    TurboSim,
    load_model,
    loss_config,
    masses,
    save_checkpoint,
)
from turbosim_hep.model.checkpoint import load_checkpoint
from turbosim_hep.model.critics import CriticEnsemble
from turbosim_hep.model.losses import (
    DISTRIBUTION_TERMS,
    LossConfig,
    TurboSimObjective,
    energy_score,
    lp_loss,
    marginal_wasserstein1,
    mmd2,
)
from turbosim_hep.model.masses import MASS_FEATURE_NAMES, mass_features
from turbosim_hep.model.presets import preset_names
from turbosim_hep.training import TrainConfig, Trainer
from turbosim_hep.training.step import gaussian_noise, generated_quantities

from _ttbar import smear, ttbar_partons


@pytest.fixture(scope="module")
def events() -> tuple[torch.Tensor, torch.Tensor]:
    z = ttbar_partons(2000, seed=3)
    return torch.from_numpy(z), torch.from_numpy(smear(z, seed=4))


@pytest.fixture
def model(events) -> TurboSim:
    z, x = events
    torch.manual_seed(0)
    return TurboSim.from_config(None, x=x, z=z)


@pytest.mark.parametrize("x_head", ["physical", "ptetaphi", "response"])
def test_physical_heads_give_valid_events(events, x_head):
    z, x = events
    model = TurboSim.from_config({"x_head": x_head}, x=x, z=z)
    with torch.inference_mode():
        x_gen = model.simulate(z).numpy()
        z_gen = model.unfold(x).numpy()
    assert x_gen.shape == z_gen.shape == (len(z), 24)
    assert metrics.valid_fraction(x_gen) == 1.0
    # the head can represent the truth: standardised true values map back onto it
    if x_head == "physical":
        raw = model.x_scaler(x)[:, model.x_head.columns]
        assert torch.allclose(model.x_head.physical(raw), x, rtol=1e-4, atol=1e-2)
    p4 = z_gen.reshape(-1, 6, 4).astype(np.float64)
    assert np.all(p4[..., 3] >= np.linalg.norm(p4[..., :3], axis=-1) * (1 - 1e-6))
    # b quarks keep their on-shell mass, the other partons are massless
    mass = np.sqrt(np.maximum(p4[..., 3] ** 2 - (p4[..., :3] ** 2).sum(-1), 0))
    assert np.allclose(np.median(mass, axis=0), [0, 0, 4.7, 4.7, 0, 0], atol=0.05)


def test_the_response_head_builds_each_object_from_its_parton(events):
    """Zero responses give the partons themselves (massless), the MET the neutrino's pT,
    jets in pT order and the W and top masses of the partons; responses move each object
    from its parton, and the MET takes up what the others lost."""
    z, x = events
    model = TurboSim.from_config({"x_head": "response"}, x=x, z=z)
    head = model.x_head
    assert head.uses_input and head.n_raw == 17
    with torch.no_grad():
        same = head.physical(torch.zeros(len(z), head.n_raw), z).double()
        scaled = torch.zeros(len(z), head.n_raw)
        scaled[:, 5] = 10.0  # the first quark's jet: log pT ratio +1 (RESPONSE_SCALE 0.1)
        harder = head.physical(scaled, z).double()
    zz = z.double().reshape(-1, 6, 4)
    p4 = same.reshape(-1, 6, 4)
    torch.testing.assert_close(p4[:, 0, :3], zz[:, 0, :3], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(p4[:, 1, :2], zz[:, 1, :2], rtol=1e-4, atol=1e-3)
    pt = torch.hypot(p4[:, 2:, 0], p4[:, 2:, 1])
    assert torch.all(pt[:, :-1] >= pt[:, 1:])
    assert metrics.valid_fraction(same.float().numpy()) == 1.0
    w_jets = ptetaphim_from_p4((zz[:, 4] + zz[:, 5]).numpy())[3]  # u d-bar
    quark_pts = torch.hypot(zz[:, 2:, 0], zz[:, 2:, 1])
    jet_of = torch.argsort(torch.argsort(quark_pts, dim=1, descending=True), dim=1)
    w_pair = torch.gather(p4[:, 2:], 1, jet_of[:, 2:].unsqueeze(-1).expand(-1, -1, 4)).sum(1)
    np.testing.assert_allclose(ptetaphim_from_p4(w_pair.numpy())[3], w_jets, rtol=1e-3)
    b = harder.reshape(-1, 6, 4)
    b_pt = torch.hypot(zz[:, 2, 0], zz[:, 2, 1])
    assert torch.allclose(torch.hypot(b[:, 2:, 0], b[:, 2:, 1]).max(1).values,
                          torch.maximum(b_pt * np.e, pt.max(1).values), rtol=1e-4)
    lost = (zz[:, 2, :2] - (b_pt * np.e).unsqueeze(1) * zz[:, 2, :2] / b_pt.unsqueeze(1))
    torch.testing.assert_close(b[:, 1, :2], zz[:, 1, :2] + lost, rtol=1e-4, atol=1e-2)


def test_the_radiation_head_chooses_each_jet_from_its_quark_or_radiation(events):
    """The probability that a quark's jet is a radiation jet is the fraction of quarks
    without a jet within delta R 0.4 in the training events; each jet is then its quark's
    bounded response or a radiation jet far from the quark, by the event's noise."""
    z, x = events
    # the b quark's jet is thrown away from it in half of the events
    moved = x.clone().reshape(-1, 6, 4)
    quarks = z.double().reshape(-1, 6, 4)[:, 2:]
    pt = torch.hypot(quarks[..., 0], quarks[..., 1])
    jet_of_b = torch.argmax(-torch.cdist(quarks[:, :1, :3].float(), moved[:, 2:, :3]), dim=2)
    half = torch.arange(len(x)) % 2 == 0
    rows = torch.arange(len(x))[half]
    moved[rows, 2 + jet_of_b[half, 0], :3] *= torch.tensor([-1.0, -1.0, 1.0])  # phi + pi
    model = TurboSim.from_config({"x_head": "radiation"}, x=moved.reshape(-1, 24), z=z)
    head = model.x_head
    assert head.n_noise == 4 and head.n_raw == 29
    assert model.decoder_noise_dim == model.decoder.noise_dim + 4
    probability = head.radiation_probability(z)
    np.testing.assert_allclose(probability.mean(0), [0.5, 0.0, 0.0, 0.0], atol=0.03)
    n = len(z)
    raw = torch.zeros(n, head.n_raw)
    raw[:, 17:] = torch.tensor([0.0, 3.0, 0.0]).repeat(4)  # radiation jets: eta + 3
    noise = torch.randn(n, head.n_noise)
    with torch.no_grad():
        x_gen = head.physical(raw, z, noise).double()
        assert torch.equal(x_gen, head.physical(raw, z, noise).double())
    assert metrics.valid_fraction(x_gen.float().numpy()) == 1.0
    # each quark has a jet at its own (eta, phi) or at eta + 3, one of the two
    jets = x_gen.reshape(n, 6, 4)[:, 2:]
    jet_eta = torch.asinh(jets[..., 2] / torch.hypot(jets[..., 0], jets[..., 1]))
    quark_eta = torch.asinh(quarks[..., 2] / pt)
    shift = jet_eta.unsqueeze(1) - quark_eta.unsqueeze(2)  # (n, quark, jet)
    dphi = torch.atan2(jets[..., 1], jets[..., 0]).unsqueeze(1) - torch.atan2(
        quarks[..., 1], quarks[..., 0]).unsqueeze(2)
    same_phi = torch.cos(dphi) > 1 - 1e-6
    near = ((shift.abs() < 1e-3) & same_phi).any(2)
    far = (((shift - 3.0).abs() < 1e-3) & same_phi).any(2)
    assert torch.all(near ^ far)
    np.testing.assert_allclose(far.double().mean(0), probability.mean(0), atol=0.04)


def test_the_chain_head_unfolds_to_tt_bar_decay_chains(events):
    """Whatever the network outputs, the partons are on shell, each top is its W plus
    its b, each W its two daughters, and the four resonance masses are those the event's
    noise draws from the training distributions (same noise, same event)."""
    z, x = events
    torch.manual_seed(1)
    model = TurboSim.from_config({"z_head": "chain"}, x=x, z=z)
    head = model.z_head
    assert model.encoder_noise_dim == model.encoder.noise_dim + head.n_noise == 24 + 4
    noise = torch.randn(len(x), model.encoder_noise_dim)
    with torch.inference_mode():
        z_gen = model.unfold(x, noise)
        assert torch.equal(z_gen, model.unfold(x, noise))
        drawn = head.resonance_masses(noise[:, -head.n_noise:]).double()
        # any raw output gives a tt-bar event (in float64: boosts of TeV tops lose the
        # mass to float32 rounding)
        raw = torch.randn(len(x), head.n_raw, dtype=torch.float64) * 3.0
        wild = copy.deepcopy(head).double().physical(raw, noise[:, -head.n_noise:].double())
    for partons in (z_gen, wild):
        p4 = partons.double().reshape(-1, 6, 4)
        assert torch.isfinite(p4).all() and torch.all(p4[..., 3] > 0)
        mass = (p4[..., 3] ** 2 - (p4[..., :3] ** 2).sum(-1)).clamp_min(0).sqrt()
        np.testing.assert_allclose(mass.median(0).values, [0, 0, 4.7, 4.7, 0, 0], atol=0.02)
        resonances = head.resonances(partons.double())
        masses_out = (resonances[..., 3] ** 2 - (resonances[..., :3] ** 2).sum(-1)).sqrt()
        np.testing.assert_allclose(masses_out, drawn, rtol=2e-3)
    # the drawn masses follow the training partons' W and top distributions
    true_masses = head.resonances(z.double())
    true_masses = (true_masses[..., 3] ** 2 - (true_masses[..., :3] ** 2).sum(-1)).sqrt()
    for k in range(head.n_noise):
        assert metrics.ks_distance(true_masses[:, k].numpy(), drawn[:, k].numpy()) < 0.05


def test_the_noise_taking_heads_run_under_bfloat16_autocast(events):
    """Under amp the networks' outputs are bfloat16: the heads draw in their tables'
    precision (a bfloat16 quantile level ran past the table's end) and the radiation
    head mixes a bfloat16 response with a float32 radiation jet."""
    z, x = events
    torch.manual_seed(2)
    model = TurboSim.from_config({"x_head": "radiation", "z_head": "chain"}, x=x, z=z)
    head = model.z_head
    noise = torch.randn(len(x), model.encoder_noise_dim)
    noise[0, -head.n_noise:] = 8.0  # Phi = 1 in float32: the last quantile
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_gen = model.decode(model.z_scaler(z), torch.randn(len(z), model.decoder_noise_dim))
        z_gen = head.physical(model.encoder(model.x_scaler(x), noise[:, :-head.n_noise]),
                              noise[:, -head.n_noise:])
    assert torch.isfinite(x_gen).all() and torch.isfinite(z_gen).all()
    resonances = head.resonances(z_gen.double())
    masses = (resonances[..., 3] ** 2 - (resonances[..., :3] ** 2).sum(-1)).sqrt()
    drawn = head.resonance_masses(noise[:, -head.n_noise:]).double()
    np.testing.assert_allclose(masses.detach(), drawn, rtol=1e-3)


def test_linear_head_is_not_constrained(events):
    z, x = events
    model = TurboSim.from_config({"x_head": "linear", "z_head": "linear"}, x=x, z=z)
    with torch.inference_mode():
        assert metrics.valid_fraction(model.simulate(z).numpy()) < 0.5


def test_fused_inference_model_matches_the_trained_one(model, events):
    z, x = events
    fused = fuse_for_inference(model)
    assert all(isinstance(m.net, FusedMLP) for m in (fused.encoder, fused.decoder))
    fused.decoder.net.block_rows = 512  # several blocks and a ragged last one
    noise = torch.randn(len(z), model.decoder_noise_dim)
    with torch.inference_mode():
        assert torch.allclose(fused.simulate(z, noise), model.simulate(z, noise), atol=1e-3)
        assert torch.allclose(fused.unfold(x, noise), model.unfold(x, noise), atol=1e-3)
    assert next(model.parameters()).requires_grad  # the original is left as it was


def test_standardisation_statistics(model, events):
    z, x = events
    met_pz = layout.column_index("x", "pz_met")
    assert model.x_scaler.std[met_pz] == 1.0  # zero spread guarded
    assert torch.allclose(model.z_scaler.mean, z.double().mean(0).float(), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("mode", ["add", "cat", "mul", "none"])
def test_noise_injection(events, mode):
    z, x = events
    model = TurboSim.from_config({"noise_mode": mode, "noise_dim": 8}, x=x, z=z)
    expected = {"add": 24, "mul": 24, "cat": 8, "none": 0}[mode]
    assert model.decoder_noise_dim == model.encoder_noise_dim == expected
    z_in = z[:50].clone()
    noise = torch.randn(50, expected) if expected else None
    with torch.inference_mode():
        a = model.simulate(z_in, noise)
        b = model.simulate(z_in, noise)
        c = model.simulate(z_in, torch.randn(50, expected) if expected else None)
    assert torch.equal(z_in, z[:50])  # never modified in place
    assert torch.equal(a, b)
    assert torch.equal(a, c) == (mode == "none")


def test_the_encoder_may_have_noise_of_its_own(events):
    """A posterior sampler needs noise of the data's scale in the encoder only."""
    z, x = events
    model = TurboSim.from_config(
        {"encoder_noise_mode": "cat", "encoder_noise_sigma": 1.0, "noise_dim": 8}, x=x, z=z
    )
    assert (model.encoder.noise_mode, model.encoder.noise_sigma) == ("cat", 1.0)
    assert (model.decoder.noise_mode, model.decoder.noise_sigma) == ("add", 0.05)
    assert (model.encoder_noise_dim, model.decoder_noise_dim) == (8, 24)
    with torch.inference_mode():
        draws = torch.stack([model.unfold(x[:200]) for _ in range(2)])
    assert not torch.equal(draws[0], draws[1])


def test_critic_input_gradient_matches_autograd():
    critics = CriticEnsemble(3, 24, (32, 16))
    inputs = torch.randn(3, 10, 24, requires_grad=True)
    (grad,) = torch.autograd.grad(critics(inputs).sum(), inputs)
    scores, closed_form = critics.forward_with_input_gradient(inputs, grad_from=4)
    assert torch.allclose(scores, critics(inputs))
    assert torch.allclose(closed_form, grad[:, 4:], atol=1e-6)
    # the penalty built on it trains the weights with first-order autograd
    closed_form.square().sum().backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in critics.weights)


def test_conditional_critics_see_each_generated_event_beside_its_source(events):
    """With ``conditional`` the critic of Dxt compares (x~, z) with (x, z), that of Dzt
    (z~, x) with (z, x); the cycles' critics see zeros beside x^ and z^. A critic that
    sees the partons can tell a decoder that ignores them from the detector: swapping the
    partons of a batch changes its score, which a marginal critic's cannot."""
    z, x = events
    config = LossConfig(weights={t: 1.0 for t in ("Dzt", "Dxh", "Dxt")}, conditional=True)
    trainer = Trainer(ModelConfig(), config, TrainConfig(batch_size=64, seed=1, device="cpu"))
    objective = trainer.objective
    assert objective.critics.weights[0].shape[-2:] in {(48, 256), (256, 48)}
    real = {"x": x[:8], "z": z[:8]}
    fake = {"zt": z[8:16], "xh": x[8:16], "xt": x[16:24]}
    reals, fakes = objective._stacks(real, fake, detach=True)
    by_term = dict(zip(objective.critic_terms, range(3), strict=True))
    torch.testing.assert_close(reals[by_term["Dxt"]], torch.cat([x[:8], z[:8]], 1))
    torch.testing.assert_close(fakes[by_term["Dxt"]], torch.cat([x[16:24], z[:8]], 1))
    torch.testing.assert_close(fakes[by_term["Dzt"]], torch.cat([z[8:16], x[:8]], 1))
    torch.testing.assert_close(fakes[by_term["Dxh"]], torch.cat([x[8:16], 0 * x[:8]], 1))
    values = trainer.step(trainer.model.x_scaler(x[:64]), trainer.model.z_scaler(z[:64]))
    assert torch.isfinite(values).all()
    shuffled = {"x": x[:8], "z": z[:8].flip(0)}
    assert not torch.equal(objective.terms(real, fake)["Dxt"],
                           objective.terms(shuffled, fake)["Dxt"])
    with pytest.raises(ValueError, match="conditional must be true or false"):
        LossConfig(conditional="yes")


# Which networks each term reaches: z~ = E(x), x^ = D(E(x)), x~ = D(z), z^ = E(D(z)).
REACHES = {
    "dzt": {"encoder"}, "Dzt": {"encoder"},
    "dxh": {"encoder", "decoder"}, "Dxh": {"encoder", "decoder"},
    "dxt": {"decoder"}, "Dxt": {"decoder"},
    "dzh": {"encoder", "decoder"}, "Dzh": {"encoder", "decoder"},
}
CASES = (
    [(t, "wgan-gp") for t in TERMS]
    + [(t, k) for t in ("Dzt", "Dxt") for k in ("dre", "mmd")]
    + [(t, "energy") for t in ("dzt", "dxh", "dxt", "dzh")]
)


@pytest.mark.parametrize(("term", "divergence"), CASES)
def test_each_term_alone_moves_only_its_networks(events, term, divergence):
    z, x = events
    divergences = {term: divergence} if term[0] == "D" else {}
    scores = {term: divergence} if term[0] == "d" and divergence == "energy" else {}
    config = LossConfig(weights={term: 1.0}, divergence=divergences, score=scores)
    trainer = Trainer(ModelConfig(), config, TrainConfig(batch_size=64, seed=1, device="cpu"))
    model = trainer.model
    model.fit_standardisation(x, z)
    xs, zs = model.x_scaler(x[:64]), model.z_scaler(z[:64])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    critics_before = [p.clone() for p in trainer.objective.parameters()]
    values = trainer.step(xs, zs)
    assert torch.isfinite(values).all()
    after = model.state_dict()
    for net in ("encoder", "decoder"):
        moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net + "."))
        assert moved == (net in REACHES[term]), f"{term} {'moved' if moved else 'left'} the {net}"
    assert all(torch.equal(before[k], after[k]) for k in before if "scaler" in k or "mass" in k)
    has_critic = term[0] == "D" and divergence != "mmd"
    assert trainer.objective.critic_terms == ((term,) if has_critic else ())
    if has_critic:
        after_critics = trainer.objective.parameters()
        pairs = zip(critics_before, after_critics, strict=True)
        assert any(not torch.equal(a, b) for a, b in pairs)
    # only what the term needs is computed
    noise = gaussian_noise(torch.Generator().manual_seed(0))
    fake = generated_quantities(trainer.model, trainer.objective.needs, xs, zs, noise)
    second = {f"{term[1:]}2"} if scores else set()
    assert set(fake) <= {"zt", "xh", "xt", "zh"} | second and term[1:] in fake
    assert len(fake) == {"zt": 1, "xt": 1, "xh": 2, "zh": 2}[term[1:]] + len(second)
    if scores:  # two independent draws of the same network from the same input
        assert not torch.equal(fake[term[1:]], fake[f"{term[1:]}2"])


def test_the_energy_score_is_minimal_at_the_true_distribution():
    """A proper scoring rule: with targets from N(mu, 1) in three dimensions, draws of
    N(mu, s) score lowest at s = 1 (the l_p loss of one draw at s = 0)."""
    generator = torch.Generator().manual_seed(0)
    n = 200_000
    mu = torch.tensor([1.0, -2.0, 0.5])
    target = mu + torch.randn(n, 3, generator=generator)

    def score(spread: float) -> float:
        draws = [mu + spread * torch.randn(n, 3, generator=generator) for _ in range(2)]
        return float(energy_score(target, *draws))

    scores = {s: score(s) for s in (0.0, 0.5, 0.8, 1.0, 1.25, 2.0)}
    assert min(scores, key=scores.get) == 1.0
    assert scores[0.0] > scores[0.5] > scores[1.0] < scores[2.0]
    with pytest.raises(ValueError, match="unknown score 'crps' for dzt"):
        LossConfig(score={"dzt": "crps"})
    with pytest.raises(ValueError, match=r"score given for \['Dzt'\]"):
        LossConfig(score={"Dzt": "energy"})


def test_critics_train_on_detached_fakes(model, events):
    z, x = events
    objective = TurboSimObjective(loss_config("turbosim"))
    xs, zs = model.x_scaler(x[:32]), model.z_scaler(z[:32])
    zt = model.encode(xs)
    xt = model.decode(zs)
    fake = {"zt": zt, "xh": model.decode(zt), "xt": xt, "zh": model.encode(xt)}
    loss, per_critic = objective.critic_loss({"x": xs, "z": zs}, fake)
    loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in objective.critics.parameters())
    assert per_critic.shape == (3,)  # Dzt, Dxh, Dxt; Dzh has weight 0 in the preset


def test_lazy_gradient_penalty_scales_or_skips_the_penalty(model, events):
    z, x = events
    objective = TurboSimObjective(loss_config("turbosim"))
    xs, zs = model.x_scaler(x[:64]), model.z_scaler(z[:64])
    with torch.no_grad():
        zt, xt = model.encode(xs), model.decode(zs)
        fake = {"zt": zt, "xh": model.decode(zt), "xt": xt}
    real = {"x": xs, "z": zs}

    def per_critic(scale: float) -> torch.Tensor:
        generator = torch.Generator().manual_seed(1)  # the same interpolates every time
        return objective.critic_loss(real, fake, generator, penalty_scale=scale)[1]

    plain = per_critic(0.0)  # Wasserstein estimate alone
    penalty = per_critic(1.0) - plain
    assert torch.all(penalty > 0)
    assert torch.allclose(per_critic(4.0) - plain, 4.0 * penalty, rtol=1e-4)
    stacked = [torch.cat([real[t[1]], fake[t[1:]]]) for t in objective.critic_terms]
    scores = objective.critics(torch.stack(stacked))
    assert torch.allclose(plain, scores[:, 64:].mean(1) - scores[:, :64].mean(1), atol=1e-6)


def test_all_eight_terms_are_optimised(events):
    z, x = events
    weights = dict.fromkeys(TERMS, 1.0)
    objective = TurboSimObjective(LossConfig(weights=weights))
    model = TurboSim.from_config(None, x=x, z=z)
    xs, zs = model.x_scaler(x[:32]), model.z_scaler(z[:32])
    zt, xt = model.encode(xs), model.decode(zs)
    fake = {"zt": zt, "xh": model.decode(zt), "xt": xt, "zh": model.encode(xt)}
    values = objective.terms({"x": xs, "z": zs}, fake)
    assert set(values) == set(TERMS)
    for term in TERMS:  # every term has a gradient reaching the networks
        grads = torch.autograd.grad(
            values[term], list(model.parameters()), allow_unused=True, retain_graph=True
        )
        assert any(g is not None and g.abs().sum() > 0 for g in grads), term


def documented_presets() -> dict[str, tuple[dict[str, float], str]]:
    """The presets table of docs/model.md: name -> (weights, estimator cell)."""
    text = (Path(__file__).parents[1] / "docs" / "model.md").read_text()
    table = text.split("\n## Presets\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            weights = dict(item.split() for item in cells[1].split(","))
            rows[cells[0].strip("`")] = ({t: float(w) for t, w in weights.items()}, cells[2])
    return rows


@pytest.mark.parametrize("name", preset_names())
def test_presets_are_those_documented(name):
    documented = documented_presets()
    assert set(documented) == set(preset_names())
    weights, estimator = documented[name]
    config = loss_config(name)
    assert config.weights == {t: weights.get(t, 0.0) for t in TERMS}
    kinds = {config.divergence[t] for t in config.active if t in DISTRIBUTION_TERMS}
    assert kinds == (set() if estimator == "none" else {estimator.split(",")[0]})
    if "GP" in estimator:  # "GP a/b/c/d": the penalty weights of Dzt, Dxh, Dxt, Dzh
        penalties = map(float, estimator.split("GP")[1].split("/"))
        assert config.gp_weights == dict(zip(DISTRIBUTION_TERMS, penalties, strict=True))


#: What each model family is, in terms of the Turbo-Sim objective (docs/model.md, "Presets").
FAMILIES = {
    # adversarial autoencoder: a latent critic on z~ = E(x) and the reconstruction of x
    "aae": {"Dzt", "dxh"},
    # GAN and Wasserstein GAN: a generator D(z) judged on x~ alone
    "gan": {"Dxt"},
    "wgan-gp": {"Dxt"},
    # cycle-consistent GAN: critics in both spaces and both cycles, no paired loss
    "cycle": {"Dzt", "Dxt", "dxh", "dzh"},
    # regression: the paired losses in both directions, nothing else
    "regression": {"dzt", "dxt"},
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_preset_recovers_its_family(name):
    config = loss_config(name)
    assert set(config.active) == FAMILIES[name]
    if name in ("gan", "wgan-gp"):  # a classifier critic, a Wasserstein critic
        assert config.divergence["Dxt"] == {"gan": "dre", "wgan-gp": "wgan-gp"}[name]
    if name == "cycle":  # unpaired: neither supervised term between z and x
        assert not {"dzt", "dxt"} & set(config.active)


@pytest.mark.parametrize("name", preset_names())
def test_each_preset_trains_only_the_networks_its_terms_reach(events, name):
    z, x = events
    config = loss_config(name)
    trainer = Trainer(ModelConfig(), config, TrainConfig(batch_size=64, seed=1, device="cpu"))
    reached = set().union(*(REACHES[t] for t in config.active))
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    for net in ("encoder", "decoder"):
        parameters = {id(p) for p in getattr(trainer.model, net).parameters()}
        assert (parameters <= optimised) == (net in reached), net
        assert (parameters & optimised) == (parameters if net in reached else set()), net
    critic_based = [t for t in config.active if t[0] == "D" and config.divergence[t] != "mmd"]
    assert trainer.objective.critic_terms == tuple(critic_based)
    assert (trainer.critic_optimizer is None) == (not critic_based)
    model = trainer.model
    model.fit_standardisation(x, z)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.step(model.x_scaler(x[:64]), model.z_scaler(z[:64]))
    after = model.state_dict()
    for net in ("encoder", "decoder"):
        moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net))
        assert moved == (net in reached), net


def test_preset_overrides_and_errors():
    config = loss_config("turbosim", {"dxt": 2.5}, divergence={"Dxt": "mmd"}, p=1.0)
    assert config.weights["dxt"] == 2.5 and config.weights["dzh"] == 100
    assert config.divergence["Dxt"] == "mmd" and config.critic_terms == ("Dzt", "Dxh")
    with pytest.raises(ValueError, match="unknown preset"):
        loss_config("vae")
    with pytest.raises(ValueError, match="unknown loss term"):
        loss_config("turbosim", {"Dxx": 1})
    with pytest.raises(ValueError, match="unknown divergence"):
        loss_config("turbosim", divergence={"Dzt": "kl"})


def test_supervised_and_mmd_estimates():
    a, b = torch.zeros(10, 3), torch.full((10, 3), 2.0)
    assert lp_loss(a, b) == 4.0 and lp_loss(a, b, p=1.0) == 2.0 and lp_loss(a, b, p=3.0) == 8.0
    torch.manual_seed(0)
    sample = torch.randn(200, 24)
    same = mmd2(sample[:100], sample[100:], [1.0])
    shifted = mmd2(sample[:100], sample[100:] + 1.0, [1.0])
    assert shifted > 10 * abs(same)


def test_checkpoint_round_trip(tmp_path, model, events):
    z, _ = events
    path = tmp_path / "model.pt"
    history = [{"epoch": 1, "ks_sum": 1.5}]
    save_checkpoint(path, model, history=history, loss_config={"weights": {"Dxt": 1.0}})
    loaded = load_model(path)
    assert not loaded.training and loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    noise = torch.randn(100, model.decoder_noise_dim)
    with torch.inference_mode():
        assert torch.equal(loaded.simulate(z[:100], noise), model.simulate(z[:100], noise))
    payload = torch.load(path, weights_only=True)
    assert payload["history"] == history and payload["layout_version"] == layout.LAYOUT_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind


def test_bad_checkpoints_give_clear_errors(tmp_path, model):
    with pytest.raises(InputError, match="missing.pt: no such file"):
        load_model(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(InputError, match="corrupt.pt: not a readable turbosim-hep model"):
        load_model(corrupt)
    text = tmp_path / "text.pt"
    text.write_text("garbage\n")
    with pytest.raises(InputError, match="text.pt: not a turbosim-hep model file"):
        load_model(text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match="foreign.pt: not a turbosim-hep model file"):
        load_model(foreign)
    path = tmp_path / "old.pt"
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=True)
    payload["layout_version"] = layout.LAYOUT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(InputError, match="old.pt: model was trained for event layout version"):
        load_model(path)
    truncated = tmp_path / "truncated.pt"
    save_checkpoint(truncated, model)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(InputError, match="truncated.pt"):
        load_checkpoint(truncated)


def test_mass_features_match_vector(events):
    import vector

    _, x = events
    features = mass_features(x[:200].double()).numpy()
    p4 = x[:200].double().numpy().reshape(-1, 6, 4)

    def lorentz(i):
        px, py, pz, e = (p4[:, i, k] for k in range(4))
        return vector.array({"px": px, "py": py, "pz": pz, "E": e})

    electron, met, jets = lorentz(0), lorentz(1), [lorentz(i) for i in range(2, 6)]
    expected = {
        "m_j1j3": (jets[0] + jets[2]).mass,
        "m_j2j3j4": (jets[1] + jets[2] + jets[3]).mass,
        "m_ej4": (electron + jets[3]).mass,
        "m_4j": (jets[0] + jets[1] + jets[2] + jets[3]).mass,
        "m_all": (electron + met + jets[0] + jets[1] + jets[2] + jets[3]).mass,
        "mt_e_met": np.sqrt(
            2 * (electron.pt * met.pt - electron.px * met.px - electron.py * met.py)
        ),
    }
    # the neutrino and the tt-bar system as the validation reconstructs them
    observed = physics.reconstruct(p4.reshape(-1, 24))
    for name in ("m_tt", "m_W_had", "m_t_had", "m_t_lep"):
        expected[name] = observed[name]
    nu_pz = masses.neutrino_pz(x[:200, 0:4].double(), x[:200, 4:6].double()).numpy()
    assert np.allclose(nu_pz, observed["neutrino_pz"], rtol=1e-4, atol=0.05)
    assert features.shape == (200, len(MASS_FEATURE_NAMES)) == (200, 25)
    for name, mass in expected.items():
        column = features[:, MASS_FEATURE_NAMES.index(name)]
        assert np.allclose(np.expm1(column), mass, rtol=1e-4, atol=0.05), name
    # finite gradients everywhere, also where the neutrino roots are complex
    x_grad = x[:200].clone().requires_grad_(True)
    mass_features(x_grad).sum().backward()
    assert torch.isfinite(x_grad.grad).all()


def test_marginal_wasserstein_matches_scipy():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(300, 3, generator=generator)
    fake = 0.5 + 2.0 * torch.randn(300, 3, generator=generator)
    reference = torch.sort(real, dim=0).values
    expected = np.mean([metrics.wasserstein1(real[:, j], fake[:, j]) for j in range(3)])
    assert marginal_wasserstein1(reference, fake).item() == pytest.approx(expected, rel=1e-5)
    # against a large reference: the distance to the reference distribution itself
    large = torch.sort(torch.randn(300_000, 3, generator=generator), dim=0).values
    normal = torch.distributions.Normal(0.0, 1.0)
    levels = (torch.arange(300) + 0.5) / 300
    exact = (torch.sort(fake, dim=0).values - normal.icdf(levels)[:, None]).abs().mean()
    assert marginal_wasserstein1(large, fake).item() == pytest.approx(exact.item(), rel=1e-2)
    with pytest.raises(ValueError, match="cannot be compared"):
        marginal_wasserstein1(reference, fake[:, :2])


def test_mass_term_trains_the_decoder_only_and_is_logged(events):
    z, x = events
    config = LossConfig(weights={}, mass_weight=1.0)
    with pytest.raises(ValueError, match="must not be negative"):
        LossConfig(mass_weight=-1.0)
    trainer = Trainer(ModelConfig(), config, TrainConfig(batch_size=64, seed=1, device="cpu"))
    model = trainer.model
    model.fit_standardisation(x, z)
    trainer.objective.fit_mass_scale(x, model.x_scaler.mean, model.x_scaler.std)
    assert trainer.log_names == ["total", "mass"]
    xs, zs = model.x_scaler(x[:64]), model.z_scaler(z[:64])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    values = trainer.step(xs, zs)
    assert torch.isfinite(values).all() and values[1] > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    # the term is the distance to the masses of the training events: zero for themselves
    objective = trainer.objective
    everything = {"x": model.x_scaler(x), "z": model.z_scaler(z)}
    assert objective.terms(everything, {"xt": everything["x"]})["mass"].item() < 1e-5
    assert objective.terms({"x": xs, "z": zs}, {"xt": xs})["mass"].item() > 1e-3


class _CreatesAFile:
    """Unpickling this calls ``open(path, "w")``: what a malicious checkpoint would do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_a_checkpoint_is_never_unpickled(tmp_path):
    """Loading reads tensors and plain values only: a pickled object is refused, not run."""
    marker = tmp_path / "unpickled"
    path = tmp_path / "malicious.pt"
    torch.save({"format": "turbosim-hep-model", "payload": _CreatesAFile(marker)}, path)
    with pytest.raises(InputError, match="malicious.pt: not a readable turbosim-hep model"):
        load_checkpoint(path)
    assert not marker.exists()
