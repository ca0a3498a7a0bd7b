"""Parton-level validation of unfolding: quantities, KS, classifier, coverage, the report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from turbosim_hep import layout
from turbosim_hep.cli import main
from turbosim_hep.validation import unfolding, validate
from turbosim_hep.validation.report import CALIBRATION_PLOT

from _ttbar import ttbar_partons, write_sample


def event(**p4: tuple[float, float, float, float]) -> np.ndarray:
    """(24,) Z event from named partons' (px, py, pz, E) (the others at rest, massless
    back-to-back pairs where not given)."""
    z = np.zeros((layout.N_OBJECTS, layout.N_COMPONENTS))
    for name, value in p4.items():
        z[layout.Z_OBJECTS.index(name)] = value
    return z.reshape(layout.N_FEATURES)


def test_quantities_of_hand_made_events():
    e = layout.M_W / 2
    # W- at rest (e- and nu-bar back to back along x), W+ at rest along y, a b of 30 GeV
    # along x beside the W+, a b-bar of 20 GeV along z beside the W-
    z = event(**{"e-": (e, 0, 0, e), "nubar": (-e, 0, 0, e), "u": (0, e, 0, e),
                 "dbar": (0, -e, 0, e), "b": (30, 0, 0, 30), "bbar": (0, 0, 20, 20)})
    q = unfolding.parton_quantities(z[np.newaxis])
    assert q["m_W_lep"] == pytest.approx([layout.M_W])
    assert q["m_W_had"] == pytest.approx([layout.M_W])
    # top = W+ (E = M_W, p = 0) + b: m^2 = (M_W + 30)^2 - 30^2
    assert q["m_t_had"] == pytest.approx([np.sqrt((layout.M_W + 30) ** 2 - 30**2)])
    assert q["m_t_lep"] == pytest.approx([np.sqrt((layout.M_W + 20) ** 2 - 20**2)])
    assert q["pt_t_had"] == pytest.approx([30.0])
    assert q["pt_t_lep"] == pytest.approx([0.0])
    assert q["pt_b"] == pytest.approx([30.0])
    total = np.array([30.0, 0.0, 20.0, 2 * layout.M_W + 50.0])
    assert q["m_tt"] == pytest.approx([np.sqrt(total[3] ** 2 - np.sum(total[:3] ** 2))])


def test_quantities_of_synthetic_ttbar_events_sit_on_their_mass_shells():
    q = unfolding.parton_quantities(ttbar_partons(2000, seed=3))
    for name, mass in (("m_W_lep", layout.M_W), ("m_W_had", layout.M_W),
                       ("m_t_lep", 172.5), ("m_t_had", 172.5)):
        assert np.median(q[name]) == pytest.approx(mass, abs=1.0), name


def test_quantities_take_any_leading_shape():
    z = ttbar_partons(60, seed=4).reshape(20, 3, layout.N_FEATURES)
    grouped = unfolding.parton_quantities(z)
    flat = unfolding.parton_quantities(z.reshape(60, layout.N_FEATURES))
    for name in unfolding.PARTON_GROUPS:
        assert grouped[name].shape == (20, 3)
        np.testing.assert_allclose(grouped[name].ravel(), flat[name])


def test_mass_ks_is_zero_on_identical_samples_and_large_on_broken_ones():
    z = ttbar_partons(3000, seed=5)
    assert all(v == 0 for v in unfolding.mass_ks(z, z.copy()).values())
    broken = z.copy()
    broken[:, layout.object_slice("z", "u")] *= 0.5  # the W+ and the top off their shells
    ks = unfolding.mass_ks(z, broken)
    assert ks["m_W_had"] > 0.9 and ks["m_t_had"] > 0.5
    assert ks["m_W_lep"] == 0 and ks["m_t_lep"] == 0


def gaussian_posterior(n: int, k: int, width: float, seed: int = 0):
    """Samples of a posterior N(mu, width) and true values from N(mu, 1)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=n)
    return mu[:, np.newaxis] + width * rng.normal(size=(n, k)), mu + rng.normal(size=n)


def test_a_calibrated_posterior_covers_its_nominal_levels():
    samples, truth = gaussian_posterior(20_000, 50, 1.0)
    np.testing.assert_allclose(unfolding.coverage(samples, truth), [0.68, 0.95], atol=0.015)
    levels = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(unfolding.coverage(samples, truth, levels), levels, atol=0.015)


def test_too_narrow_a_posterior_covers_less_and_too_wide_one_more():
    narrow = unfolding.coverage(*gaussian_posterior(5000, 50, 0.5))
    wide = unfolding.coverage(*gaussian_posterior(5000, 50, 2.0))
    assert np.all(narrow < np.array([0.68, 0.95]) - 0.1)
    assert np.all(wide > np.array([0.68, 0.95]) + 0.02)


def test_coverage_leaves_out_events_with_non_finite_values():
    samples, truth = gaussian_posterior(1000, 50, 1.0)
    samples[0, 3] = np.nan
    truth[1] = np.inf
    assert np.all(np.isfinite(unfolding.coverage(samples, truth)))
    with pytest.raises(ValueError, match="between 0 and 1"):
        unfolding.coverage(samples, truth, [0.5, 1.0])


def test_calibration_curves_of_parton_events():
    # every sample and the truth: one centre event scaled by an independent log-normal
    # factor, which scales each quantity alike: a calibrated posterior of all of them
    n, k = 4000, 50
    rng = np.random.default_rng(7)
    centre = ttbar_partons(n, seed=8)
    truth = centre * np.exp(0.1 * rng.normal(size=(n, 1)))
    samples = centre[:, np.newaxis] * np.exp(0.1 * rng.normal(size=(n, k, 1)))
    curves = unfolding.calibration_curves(samples, truth)
    assert set(curves) == set(unfolding.COVERAGE_QUANTITIES)
    for curve in curves.values():
        np.testing.assert_allclose(curve, unfolding.CALIBRATION_LEVELS, atol=0.03)
    narrow = centre[:, np.newaxis] * np.exp(0.03 * rng.normal(size=(n, k, 1)))
    table = unfolding.coverage_table(narrow, truth)
    assert all(row["0.68"] < 0.4 and row["0.95"] < 0.6 for row in table.values())


def test_plot_calibration_writes_png_and_pdf(tmp_path):
    levels = unfolding.CALIBRATION_LEVELS
    paths = unfolding.plot_calibration(levels, {"m_tt": levels, "pt_b": levels**2},
                                       tmp_path / "calibration", events=10, samples=5)
    assert [p[-4:] for p in paths] == [".png", ".pdf"]
    assert all((tmp_path / p).stat().st_size > 0 for p in paths)


def test_classifier_cannot_tell_identical_samples_and_tells_different_ones():
    truth, same = ttbar_partons(1500, seed=9), ttbar_partons(1500, seed=10)
    result = unfolding.parton_classifier_test(truth, same, folds=3)
    assert abs(result["auc"] - 0.5) < 0.06
    assert result["features"] == len(unfolding.parton_feature_names()) == 23
    broken = same.copy()
    broken[:, layout.object_slice("z", "u")] *= 0.8  # W+ and top masses too low
    assert unfolding.parton_classifier_test(truth, broken, folds=3)["auc"] > 0.9


@pytest.fixture(scope="module")
def posterior(paired_sample, tmp_path_factory):
    """``unfold --samples 8`` of the paired sample's detector file with its small model."""
    from turbosim_hep.pipeline import unfold_files

    path = tmp_path_factory.mktemp("posterior") / "posterior.root"
    unfold_files(paired_sample["model"], paired_sample["full"], path, samples=8, jobs=1,
                 progress=False)
    return str(path)


def test_matched_posterior_pairs_every_event_with_its_truth(paired_sample, posterior, tmp_path):
    matched = unfolding.matched_posterior([posterior], [paired_sample["full"]])
    assert matched.samples.shape == (len(paired_sample["z"]), 8, layout.N_FEATURES)
    assert matched.unmatched == 0
    # the truth as the file stores it (pt, eta, phi, mass: float32 round trip)
    np.testing.assert_allclose(matched.truth, paired_sample["z"], rtol=1e-4, atol=1e-2)
    # a truth file of another name matches nothing; a plain parton file has no samples
    renamed = tmp_path / "renamed.root"
    shutil.copy(paired_sample["full"], renamed)
    assert unfolding.matched_posterior([posterior], [renamed]) is None
    assert unfolding.matched_posterior([paired_sample["full"]], [paired_sample["full"]]) is None


def test_validate_unfolded_reports_the_parton_level_section(paired_sample, posterior, tmp_path):
    truth = paired_sample["full"]
    result = validate(truth, truth, tmp_path / "report", unfolded=posterior,
                      plots=["m_tt"], progress=False)
    u = result["unfolding"]
    assert set(u["mass_ks"]) == set(unfolding.PARTON_MASSES)
    assert u["samples_per_event"] == 8
    assert u["events"] == {"truth": len(paired_sample["z"]), "unfolded": len(paired_sample["z"])}
    assert u["classifier"]["auc"] > 0.9  # an untrained model
    assert u["classifier"]["events"] == len(paired_sample["z"])  # one draw per event
    assert set(u["coverage"]) == set(unfolding.COVERAGE_QUANTITIES)
    assert u["coverage_events"] == len(paired_sample["z"])
    assert len(u["calibration"]["observed"]["m_tt"]) == len(u["calibration"]["levels"])
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["unfolding"]["coverage"] == u["coverage"]
    markdown = (tmp_path / "report" / "metrics.md").read_text()
    assert "## Unfolding" in markdown and "95 % interval" in markdown
    for suffix in (".png", ".pdf"):
        assert (tmp_path / "report" / "plots" / f"{CALIBRATION_PLOT}{suffix}").is_file()


def test_validate_unfolded_without_samples_has_no_coverage(paired_sample, tmp_path, capsys):
    truth = paired_sample["full"]
    unfolded = write_sample(tmp_path / "unfolded.root", paired_sample["z"], None)
    code = main(["validate", "--truth", truth, "--sim", truth, "--unfolded", unfolded,
                 "-o", str(tmp_path / "report"), "--plots", "none"])
    assert code == 0
    u = json.loads((tmp_path / "report" / "metrics.json").read_text())["unfolding"]
    assert all(v == 0 for v in u["mass_ks"].values())  # the truth partons themselves
    assert u["coverage"] is None and u["samples_per_event"] == 1
    assert "no coverage" in capsys.readouterr().out
    assert not (tmp_path / "report" / "plots").exists()


def test_validate_without_unfolded_has_no_parton_level_section(paired_sample, tmp_path):
    truth = paired_sample["full"]
    result = validate(truth, truth, tmp_path / "report", plots=False, progress=False)
    assert result["unfolding"] is None
