"""The acceptance classifier epsilon(z) and the classifier metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vector
from scipy import stats

from turbosim_hep import layout, metrics
from turbosim_hep.model.acceptance import (
    ELECTRON_MAX_ETA,
    ETA_STEPS,
    FEATURE_NAMES,
    N_FEATURES,
    PARTON_PAIRS,
    AcceptanceConfig,
    AcceptanceModel,
    acceptance_from_state,
    parton_features,
)

from _ttbar import ttbar_partons


def test_features_are_log_pt_eta_and_delta_r_of_the_partons():
    z = ttbar_partons(200, seed=3)
    features = parton_features(torch.from_numpy(z)).numpy()
    assert features.shape == (200, N_FEATURES) == (200, len(FEATURE_NAMES))
    p4 = z.reshape(200, layout.N_OBJECTS, layout.N_COMPONENTS).astype(np.float64)
    partons = vector.array({"px": p4[..., 0], "py": p4[..., 1], "pz": p4[..., 2], "E": p4[..., 3]})
    e, u = layout.Z_OBJECTS.index("e-"), layout.Z_OBJECTS.index("u")
    # the electron's eta is bounded; the sample has electrons beyond the bound
    eta = partons.eta.copy()
    assert np.any(np.abs(eta[:, e]) > ELECTRON_MAX_ETA)
    eta[:, e] = np.clip(eta[:, e], -ELECTRON_MAX_ETA, ELECTRON_MAX_ETA)
    np.testing.assert_allclose(features[:, :6], np.log(partons.pt), rtol=1e-5)
    np.testing.assert_allclose(features[:, 6:12], eta, rtol=1e-4, atol=1e-4)
    abs_eta = [FEATURE_NAMES.index(f"abseta_{name}") for name in layout.Z_OBJECTS]
    np.testing.assert_allclose(features[:, abs_eta], np.abs(eta), rtol=1e-4, atol=1e-4)
    for step in (0.1, 1.5, 2.5, 3.0):
        below = features[:, FEATURE_NAMES.index(f"abseta_e-_below_{step}")]
        np.testing.assert_array_equal(below, (np.abs(eta[:, e]) < step).astype(np.float32))
    assert (e, u) in PARTON_PAIRS
    d_phi = partons[:, e].deltaphi(partons[:, u])
    np.testing.assert_allclose(
        features[:, FEATURE_NAMES.index("dr_e-_u")], np.hypot(eta[:, e] - eta[:, u], d_phi),
        rtol=1e-4, atol=1e-4,
    )


def test_an_electron_beyond_the_bound_has_the_features_of_one_at_it():
    z = torch.from_numpy(ttbar_partons(3, seed=2)).reshape(3, layout.N_OBJECTS, 4).clone()
    pt = torch.hypot(z[:, 0, 0], z[:, 0, 1])
    for row, eta in enumerate((2.9, 3.5, 5.0)):  # the same electron at three |eta|
        z[row] = z[0]
        z[row, 0, 2] = pt[0] * np.sinh(eta)
        z[row, 0, 3] = torch.linalg.vector_norm(z[row, 0, :3])
    features = parton_features(z.reshape(3, -1))
    torch.testing.assert_close(features[1], features[2])
    assert not torch.equal(features[0], features[1])


def test_features_are_finite_for_a_parton_along_the_beam():
    z = torch.from_numpy(ttbar_partons(4, seed=1))
    z[0, 0:3] = torch.tensor([0.0, 0.0, 50.0])  # electron with no transverse momentum
    assert torch.isfinite(parton_features(z)).all()


def test_standardisation_and_calibration_are_buffers_that_round_trip():
    torch.manual_seed(0)
    z = torch.from_numpy(ttbar_partons(500, seed=4))
    # central electrons (eta = 0): their |eta| code is 1 for every event
    z[:, 2] = 0.0
    model = AcceptanceModel(AcceptanceConfig(hidden=[16]))
    model.fit_standardisation(z)
    standardised = (parton_features(z) - model.feature_mean) / model.feature_std
    np.testing.assert_allclose(standardised.mean(0).numpy(), 0.0, atol=1e-4)
    spread = standardised.std(0, unbiased=False).numpy()
    constant = (parton_features(z) == parton_features(z)[0]).all(0).numpy()
    assert constant.any() and not constant.all()
    np.testing.assert_allclose(spread[~constant], 1.0, atol=1e-3)
    np.testing.assert_array_equal(standardised[:, constant].numpy(), 0.0)
    model.calibration.copy_(torch.tensor([0.5, -1.0]))
    model.eta_offsets[ETA_STEPS.index(1.5)] = 0.25
    copy = acceptance_from_state(model.config.to_dict(), model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(copy(z), model(z))
        # every electron is central: below the step at 1.5, which adds its offset; epsilon
        # is the mean of the members' calibrated probabilities
        features = parton_features(z)
        members = [model.member_logits(features, k) for k in range(len(model.members))]
        expected = torch.stack([torch.sigmoid(0.5 * m - 1.0 + 0.25) for m in members]).mean(0)
        torch.testing.assert_close(model(z), expected)
        everyone_first = torch.zeros(len(z), dtype=torch.long)
        torch.testing.assert_close(
            model.held_out_probabilities(z, everyone_first), torch.sigmoid(0.5 * members[0] - 0.75)
        )


def test_weighted_standardisation_equals_repeated_events():
    z = torch.from_numpy(ttbar_partons(300, seed=5))
    weight = torch.from_numpy(np.random.default_rng(1).integers(1, 4, 300).astype(np.float32))
    weighted, repeated = AcceptanceModel(), AcceptanceModel()
    weighted.fit_standardisation(z, weight)
    repeated.fit_standardisation(torch.repeat_interleave(z, weight.long(), dim=0))
    torch.testing.assert_close(weighted.feature_mean, repeated.feature_mean)
    torch.testing.assert_close(weighted.feature_std, repeated.feature_std)


def test_calibration_recovers_a_known_platt_scaling_and_an_eta_step():
    # outcomes drawn from sigmoid(2 * logit - 1 - 1.5 [|eta_e| > 1.5]), each event's logit
    # from the untrained member named for it: calibrate must find slope 2 and the step of
    # the electron's efficiency at |eta| = 1.5 from the outcomes alone, and no other step
    torch.manual_seed(2)
    z = torch.from_numpy(ttbar_partons(40_000, seed=6))
    model = AcceptanceModel(AcceptanceConfig(hidden=[32], members=2))
    model.fit_standardisation(z)
    member = torch.arange(len(z)) % 2
    features = parton_features(z)
    abs_eta = features[:, FEATURE_NAMES.index("abseta_e-")]
    with torch.no_grad():
        for network in model.members:  # spread the logits
            network[-1].weight.mul_(3.0)
            network[-1].bias.mul_(3.0)
        logit = torch.where(
            member == 0, model.member_logits(features, 0), model.member_logits(features, 1)
        )
        truth = torch.sigmoid(2.0 * logit - 1.0 - 1.5 * (abs_eta > 1.5).float())
    passed = torch.rand(len(z), generator=torch.Generator().manual_seed(3)) < truth
    model.calibrate(z, passed, member)
    assert model.calibration[0].item() == pytest.approx(2.0, abs=0.15)
    with torch.no_grad():
        shift = torch.logit(model.held_out_probabilities(z, member).double()) - (
            model.calibration[0] * logit
        )
    central, forward = shift[abs_eta < 1.4], shift[(abs_eta > 1.6) & (abs_eta < 2.4)]
    assert central.std() < 0.15 and forward.std() < 0.15
    assert central.mean().item() - forward.mean().item() == pytest.approx(1.5, abs=0.2)
    assert forward.mean().item() == pytest.approx(-2.5, abs=0.2)


# --- metrics ------------------------------------------------------------------------------


def test_weighted_ks_and_w1_equal_the_unweighted_ones_on_repeated_values():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 400), rng.normal(0.2, 1.1, 300)
    counts = rng.integers(1, 4, len(a))
    repeated = np.repeat(a, counts)
    assert metrics.ks_distance(a, b, counts.astype(float), None) == pytest.approx(
        stats.ks_2samp(repeated, b).statistic, abs=1e-12
    )
    assert metrics.ks_distance(a, b, np.ones(len(a)), None) == pytest.approx(
        metrics.ks_distance(a, b), abs=1e-12
    )
    assert metrics.wasserstein1(a, b, counts.astype(float)) == pytest.approx(
        metrics.wasserstein1(repeated, b), rel=1e-12
    )


def test_roc_auc_against_the_mann_whitney_statistic_and_with_weights():
    rng = np.random.default_rng(8)
    score = np.round(rng.uniform(0, 1, 1000), 2)  # ties on purpose
    passed = rng.uniform(0, 1, 1000) < score
    u = stats.mannwhitneyu(score[passed], score[~passed]).statistic
    assert metrics.roc_auc(score, passed) == pytest.approx(u / (passed.sum() * (~passed).sum()))
    counts = rng.integers(1, 3, 1000)
    assert metrics.roc_auc(score, passed, counts.astype(float)) == pytest.approx(
        metrics.roc_auc(np.repeat(score, counts), np.repeat(passed, counts))
    )
    assert np.isnan(metrics.roc_auc(score, np.zeros(1000, bool)))


def test_calibration_table_and_error():
    rng = np.random.default_rng(9)
    probability = rng.uniform(0, 1, 200_000)
    passed = rng.uniform(0, 1, len(probability)) < probability
    table = metrics.calibration_table(probability, passed, bins=10)
    assert len(table["predicted"]) == 10 and table["events"].sum() == len(probability)
    pull = (table["observed"] - table["predicted"]) / table["error"]
    assert np.all(np.abs(pull) < 5)
    assert metrics.calibration_error(probability, passed) < 0.01
    assert metrics.calibration_error(probability**2, passed) > 0.1  # miscalibrated
    assert metrics.binary_cross_entropy(probability, passed) < metrics.binary_cross_entropy(
        probability**2, passed
    )


# --- training -----------------------------------------------------------------------------


def synthetic_acceptance(z: np.ndarray) -> np.ndarray:
    """A detector-like acceptance: electron and quarks inside |eta| < 2.5 and above
    25 GeV, quarks separated by Delta R > 0.5, and an efficiency of 0.6 on top."""
    n = len(z)
    p4 = z.reshape(n, layout.N_OBJECTS, layout.N_COMPONENTS).astype(np.float64)
    v = vector.array({"px": p4[..., 0], "py": p4[..., 1], "pz": p4[..., 2], "E": p4[..., 3]})
    visible = [0, 2, 3, 4, 5]
    inside = np.all((v.pt[:, visible] > 25) & (np.abs(v.eta[:, visible]) < 2.5), axis=1)
    quarks = [2, 3, 4, 5]
    separated = np.all(
        [v[:, a].deltaR(v[:, b]) > 0.5 for a in quarks for b in quarks if a < b], axis=0
    )
    return 0.6 * (inside & separated)


@pytest.fixture(scope="module")
def trained_acceptance():
    from turbosim_hep.training.acceptance import AcceptanceSettings, fit_acceptance
    from turbosim_hep.training.data import LabelledPartons

    z = ttbar_partons(40_000, seed=11)
    passed = np.random.default_rng(1).random(len(z)) < synthetic_acceptance(z)
    # a thinned sample: a quarter of the failing events, weighted 4
    kept = passed | (np.random.default_rng(2).random(len(z)) < 0.25)
    weight = np.where(passed, 1.0, 4.0).astype(np.float32)
    events = LabelledPartons(z[kept], passed[kept], weight[kept])
    torch.manual_seed(0)
    settings = AcceptanceSettings(epochs=15, batch_size=512, lr=2e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is fastest, and robust to load
    try:
        return fit_acceptance(events, settings, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_trained_acceptance_is_calibrated_on_an_independent_sample(trained_acceptance):
    model, history = trained_acceptance
    z = ttbar_partons(30_000, seed=12)
    truth = synthetic_acceptance(z)
    with torch.no_grad():
        epsilon = model(torch.from_numpy(z)).double().numpy()
    # the predicted yield agrees with the expected one within three standard errors of
    # the calibration (fitted on the out-of-fold logits of all 7,000 selected examples)
    assert epsilon.sum() == pytest.approx(truth.sum(), rel=0.04)
    # and it separates: inside the acceptance epsilon is high, outside low
    assert epsilon[truth > 0].mean() > 0.4 > 0.15 > epsilon[truth == 0].mean()
    assert history[-1]["epoch"] == "calibrated"
    assert history[-1]["auc"] > 0.8
    calibrated = history[-1]
    assert calibrated["predicted_selected"] == pytest.approx(
        calibrated["observed_selected"], rel=0.02
    )
    assert all({"bce", "auc", "calibration_error", "train_bce"} <= set(h) for h in history[:-1])
    # every member was trained, each on the folds but its own
    assert {h["member"] for h in history[:-1]} == set(range(1, len(model.members) + 1))


def test_the_folds_are_fixed_and_balanced():
    from turbosim_hep.training.acceptance import fold_of

    fold = fold_of(1000, 5)
    assert np.array_equal(np.bincount(fold), [200] * 5)
    assert np.array_equal(fold, fold_of(1000, 5))  # fixed, independent of any seed


def test_acceptance_needs_both_outcomes_in_every_fold():
    from turbosim_hep.training.acceptance import fit_acceptance, learnable
    from turbosim_hep.training.data import LabelledPartons
    from turbosim_hep.training.loop import learn_acceptance

    z = ttbar_partons(100, seed=1)
    selected_only = LabelledPartons(z, np.ones(100, bool), np.ones(100, np.float32))
    assert not learnable(selected_only, 5)
    with pytest.raises(ValueError, match="pass and events that fail"):
        fit_acceptance(selected_only, progress=False)
    # three passing events cannot give each of the five folds one
    three = LabelledPartons(z, np.arange(100) < 3, np.ones(100, np.float32))
    assert not learnable(three, 5) and learnable(three, 2)
    with pytest.raises(ValueError, match="each of its 5 folds"):
        fit_acceptance(three, progress=False)
    # and training beside a model then learns none, as from files of selected events
    assert learn_acceptance(three, None, torch.device("cpu"), progress=False) is None


# --- learnt beside the model ------------------------------------------------------------


def write_file_with_rejected_events(path, n: int = 3000, seed: int = 21):
    """An own-format file whose events pass the selection with `synthetic_acceptance`;
    the others have three jets (rejected by the four-jet cut)."""
    import awkward as ak

    from turbosim_hep.io import EventWriter
    from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns

    from _ttbar import smear

    z = ttbar_partons(n, seed=seed)
    passed = np.random.default_rng(seed).random(n) < synthetic_acceptance(z)
    columns = event_columns(np.arange(n)) | reco_columns(smear(z, seed=seed)) | parton_columns(z)
    columns["Jet"] = ak.where(passed, columns["Jet"], columns["Jet"][:, :3])
    with EventWriter(path) as writer:
        writer.write(columns)
    return path, passed


def small_run(tmp_path, name, data, **train_settings):
    from turbosim_hep.model import ModelConfig
    from turbosim_hep.training import TrainConfig, train
    from turbosim_hep.training.acceptance import AcceptanceSettings

    config = TrainConfig(epochs=1, batch_size=100, threads=1, device="cpu", **train_settings)
    model = ModelConfig(encoder_hidden=[32], decoder_hidden=[32])
    return train(
        [data], tmp_path / name, model_config=model, train_config=config, progress=False,
        acceptance_settings=AcceptanceSettings(epochs=3, batch_size=256),
    )


def test_train_learns_the_acceptance_beside_the_model_and_stores_it(tmp_path):
    import json

    from turbosim_hep.model import load_acceptance, load_model
    from turbosim_hep.training import log_path_for

    data, passed = write_file_with_rejected_events(tmp_path / "mixed.root")
    result = small_run(tmp_path, "with.pt", data)
    assert result.acceptance["observed_selected"] > 0 and 0.5 < result.acceptance["auc"] <= 1
    acceptance = load_acceptance(tmp_path / "with.pt")
    z = torch.from_numpy(ttbar_partons(2000, seed=22))
    with torch.no_grad():
        epsilon = acceptance(z).numpy()
    assert np.all((epsilon >= 0) & (epsilon <= 1))
    first = json.loads(open(log_path_for(tmp_path / "with.pt")).readline())
    assert first["acceptance"]["examples"] == 3000
    assert first["acceptance"]["history"][-1]["epoch"] == "calibrated"

    # the model itself is the one trained without the acceptance, weight for weight
    without = small_run(tmp_path, "without.pt", data, acceptance=False)
    assert without.acceptance is None and load_acceptance(tmp_path / "without.pt") is None
    a = load_model(tmp_path / "with.pt").state_dict()
    b = load_model(tmp_path / "without.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_files_of_selected_events_teach_no_acceptance(tmp_path):
    from turbosim_hep.model import load_acceptance

    from _ttbar import smear, write_sample

    z = ttbar_partons(600, seed=3)
    data = write_sample(tmp_path / "selected.root", z, smear(z))
    result = small_run(tmp_path, "m.pt", data)
    assert result.acceptance is None and load_acceptance(tmp_path / "m.pt") is None


def test_a_resumed_run_without_an_acceptance_learns_it(tmp_path, capsys):
    """A checkpoint without acceptance (a run on given events, or one whose acceptance is
    another version's) learns it on resume, as a new run on the files does, and says so."""
    from turbosim_hep.cli import main
    from turbosim_hep.model import load_acceptance
    from turbosim_hep.model.checkpoint import FORMAT, load_checkpoint
    from turbosim_hep.training import read_pairs

    data, _ = write_file_with_rejected_events(tmp_path / "mixed.root")
    # events given (not read from the files): no acceptance is learnt
    result = small_run_on_events(tmp_path, "given.pt", data, read_pairs([data]))
    assert result.acceptance is None and load_acceptance(tmp_path / "given.pt") is None
    assert main(["train", str(data), "-o", str(tmp_path / "given.pt"), "--resume",
                 "--epochs", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "acceptance: out-of-fold AUC" in printed and "acceptance: none" not in printed
    assert load_acceptance(tmp_path / "given.pt") is not None
    assert len(load_checkpoint(tmp_path / "given.pt")["history"]) == 2
    # an acceptance of another version is learnt again too
    payload = load_checkpoint(tmp_path / "given.pt")
    assert payload["format"] == FORMAT
    del payload["acceptance"]["state"]["eta_offsets"]
    torch.save(payload, tmp_path / "given.pt")
    assert main(["train", str(data), "-o", str(tmp_path / "given.pt"), "--resume",
                 "--epochs", "3", "--quiet"]) == 0
    assert "acceptance: out-of-fold AUC" in capsys.readouterr().out
    assert load_acceptance(tmp_path / "given.pt") is not None
    # a run asked not to learn one says that, not that the data hold no rejected events
    assert main(["train", str(data), "-o", str(tmp_path / "no.pt"), "--epochs", "1",
                 "--no-acceptance", "--quiet"]) == 0
    assert "acceptance: none (the run was asked not to learn one" in capsys.readouterr().out


def small_run_on_events(tmp_path, name, data, events):
    from turbosim_hep.model import ModelConfig
    from turbosim_hep.training import TrainConfig, train

    config = TrainConfig(epochs=1, batch_size=100, threads=1, device="cpu")
    return train([data], tmp_path / name, model_config=ModelConfig(encoder_hidden=[32],
                 decoder_hidden=[32]), train_config=config, progress=False, events=events)
