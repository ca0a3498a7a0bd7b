"""The multivariate fidelity metrics: the classifier two-sample test and the mass peaks."""

from __future__ import annotations

import numpy as np
import pytest
import vector

from turbosim_hep import layout
from turbosim_hep.validation.classifier import (
    classifier_test,
    detector_values,
    event_features,
    feature_names,
)
from turbosim_hep.validation.peaks import PEAK_MASSES, compare_peaks, mass_peaks

from _ttbar import smear, ttbar_partons

N_EVENTS = 3000
N_FEATURES = 4


def gaussian(n: int, seed: int, mean: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sigma, (n, N_FEATURES))


def test_samples_of_one_distribution_give_an_auc_of_one_half():
    result = classifier_test(gaussian(N_EVENTS, 1), gaussian(N_EVENTS, 2))
    assert 0.44 < result["auc"] < 0.56 and 0.44 < result["auc_floor"] < 0.56
    assert result["events"] == N_EVENTS and result["floor_events"] == N_EVENTS // 2
    assert result["folds"] == 5 and result["features"] == N_FEATURES


def test_a_shifted_narrower_simulation_is_told_apart():
    result = classifier_test(gaussian(N_EVENTS, 1), gaussian(N_EVENTS, 2, mean=0.3, sigma=0.7))
    assert result["auc"] > 0.7 and result["auc_floor"] < 0.56


def test_the_larger_sample_is_subsampled_to_the_smaller_one_and_capped():
    result = classifier_test(gaussian(N_EVENTS, 1), gaussian(2 * N_EVENTS, 2))
    assert result["events"] == N_EVENTS
    assert classifier_test(gaussian(N_EVENTS, 1), gaussian(N_EVENTS, 2), max_events=500)[
        "events"
    ] == 500


def test_weights_enter_the_training_and_the_auc():
    """A shifted simulation weighted by the density ratio truth / simulation stands for
    the truth; with a few negative weights the test still runs."""
    truth = gaussian(N_EVENTS, 1)
    simulation = gaussian(N_EVENTS, 2, mean=0.5)
    ratio = np.exp(-0.5 * simulation[:, 0] ** 2 + 0.5 * (simulation[:, 0] - 0.5) ** 2)
    one_shifted = np.concatenate([simulation[:, :1], truth[:, 1:]], axis=1)
    unweighted = classifier_test(truth, one_shifted)
    weighted = classifier_test(truth, one_shifted, simulation_weights=ratio)
    assert unweighted["auc"] > 0.6
    assert weighted["auc"] < 0.56 and weighted["auc"] < unweighted["auc"] - 0.05
    signed = np.where(np.arange(N_EVENTS) % 20 == 0, -1.0, 1.0)
    assert np.isfinite(classifier_test(truth, truth[::-1], truth_weights=signed)["auc"])


def test_a_fixed_seed_reproduces_the_test():
    truth, simulation = gaussian(N_EVENTS, 1), gaussian(N_EVENTS, 2, mean=0.1)
    first = classifier_test(truth, simulation, seed=3)
    assert classifier_test(truth, simulation, seed=3) == first
    assert classifier_test(truth, simulation, seed=4)["auc"] != first["auc"]


def test_too_few_events_give_nan():
    result = classifier_test(gaussian(150, 1), gaussian(150, 2))
    assert np.isfinite(result["auc"]) and np.isnan(result["auc_floor"])


def test_event_features_have_the_documented_names_and_values():
    x = smear(ttbar_partons(500, seed=5), seed=6)
    features, names = event_features(detector_values(x))
    assert names == feature_names() and features.shape == (500, len(names)) == (500, 31)
    assert not np.isnan(features).any()
    assert names[:5] == ["log_pt_e-", "eta_e-", "phi_e-", "log_pt_met", "phi_met"]
    assert "eta_met" not in names
    assert names[17:21] == ["m_tt", "m_W_had", "m_t_had", "m_t_lep"]
    assert names[21] == "m_jet1_jet2" and names[-1] == "m_jet2_jet3_jet4"
    jets = [
        vector.array({c: x[:, layout.column_index("x", f"{c}_jet{i}")].astype(np.float64)
                      for c in layout.COMPONENTS})
        for i in (1, 2, 3, 4)
    ]
    column = dict(zip(names, features.T, strict=True))
    np.testing.assert_allclose(column["log_pt_jet1"], np.log(jets[0].pt), rtol=1e-5)
    np.testing.assert_allclose(column["eta_jet3"], jets[2].eta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(column["m_jet1_jet3"], (jets[0] + jets[2]).mass, rtol=1e-4)
    np.testing.assert_allclose(
        column["m_jet2_jet3_jet4"], (jets[1] + jets[2] + jets[3]).mass, rtol=1e-4
    )


def test_non_finite_reconstructed_values_become_nan():
    values = detector_values(smear(ttbar_partons(100, seed=5), seed=6))
    values["m_t_lep"] = np.where(np.arange(100) < 10, np.inf, values["m_t_lep"])
    features, names = event_features(values)
    assert np.isnan(features[:10, names.index("m_t_lep")]).all()
    assert np.isfinite(np.delete(features, slice(0, 10), axis=0)).all()


def peak_samples(sigma_simulation: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(100.0, 10.0, 200_000), rng.normal(100.0, sigma_simulation, 200_000)


def test_fwhm_and_peak_of_a_gaussian():
    truth, simulation = peak_samples()
    result = compare_peaks(truth, simulation, value_range=(0.0, 250.0))
    for key in ("fwhm_truth", "fwhm_simulation"):
        assert result[key] == pytest.approx(2.3548 * 10.0, rel=0.03)
    assert result["peak_truth"] == pytest.approx(100.0, abs=1.5)


def test_identical_samples_have_identical_peaks():
    truth, _ = peak_samples()
    weights = np.random.default_rng(8).uniform(0.5, 1.5, len(truth))
    result = compare_peaks(truth, truth, weights, weights, value_range=(0.0, 250.0))
    assert result["height_ratio"] == 1.0 and result["fwhm_ratio"] == 1.0
    assert result["peak_truth"] == result["peak_simulation"]


def test_a_narrower_simulated_peak_is_higher_and_narrower():
    truth, simulation = peak_samples(sigma_simulation=7.0)
    result = compare_peaks(truth, simulation, value_range=(0.0, 250.0))
    assert result["fwhm_ratio"] == pytest.approx(0.7, rel=0.05)
    assert result["height_ratio"] == pytest.approx(1 / 0.7, rel=0.05)


def test_mass_peaks_of_every_reconstructed_mass():
    values = detector_values(smear(ttbar_partons(2000, seed=5), seed=6))
    result = mass_peaks(values, values)
    assert list(result) == list(PEAK_MASSES) and "m_W_lep" in result
    assert all(p["height_ratio"] == 1.0 for p in result.values())
    assert 60.0 < result["m_W_had"]["peak_truth"] < 100.0
