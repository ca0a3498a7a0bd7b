"""The validation report: KS/W1 metrics, Table 1, plots, saved histograms, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import uproot

from turbosim_hep import layout, metrics, physics
from turbosim_hep.cli import main
from turbosim_hep.errors import OutputError
from turbosim_hep.validation import validate
from turbosim_hep.validation.quantities import object_observables
from turbosim_hep.validation.report import PUBLISHED_TABLE1, TABLE1, table1_markdown

from _ttbar import smear, ttbar_partons, write_sample

N_EVENTS = 4000
JET_SCALE = 1.05  # the deliberately shifted simulation: every jet 5% too energetic


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report")
    z = ttbar_partons(N_EVENTS, seed=31)
    x = smear(z, seed=32)
    truth = write_sample(directory / "truth.root", z, x)
    copy = directory / "copy.root"
    shutil.copy(truth, copy)
    shifted_x = x.copy()
    shifted_x[:, 8:] *= JET_SCALE  # the four jets (massless: scaling keeps them physical)
    shifted = write_sample(directory / "shifted.root", z, shifted_x)
    unfolded_z = z.copy()
    unfolded_z[:, layout.object_slice("z", "b")] *= 1.10
    unfolded = write_sample(directory / "unfolded.root", unfolded_z, None)
    return {"truth": truth, "copy": copy, "shifted": shifted, "unfolded": unfolded, "x": x,
            "shifted_x": shifted_x, "z": z}


def test_identical_inputs_give_zero_distances_everywhere(samples, tmp_path):
    result = validate(
        samples["truth"], samples["copy"], tmp_path / "report", plots=False, progress=False
    )
    assert len(result["quantities"]) == (
        2 * layout.N_FEATURES + len(physics.OBSERVABLES) + len(object_observables())
    )
    for name, q in result["quantities"].items():
        assert q["ks"] == 0.0 and q["w1"] == 0.0, name
        assert q["n_truth"] == q["n_sim"] == N_EVENTS
    assert result["table1"] == {key: 0.0 for key in TABLE1}
    assert result["valid_fraction"] == 1.0
    # Copies of the truth measure nothing, and the report says so next to Table 1.
    assert set(result["table1_notes"]) == {"b", "detector"}
    markdown = (tmp_path / "report" / "metrics.md").read_text()
    assert "| this run | 0.00* | 0.00* | 0.00* | 0.00† |" in markdown
    on_disk = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert on_disk["table1"] == result["table1"]
    # The multivariate test and the peaks: a copy of the truth is the truth.
    assert on_disk["classifier"] == result["classifier"]
    assert result["classifier"]["events"] == N_EVENTS and result["classifier"]["features"] == 31
    assert result["classifier"]["auc"] < 0.56 and result["classifier"]["auc_floor"] < 0.56
    assert on_disk["peaks"] == result["peaks"]
    assert list(result["peaks"]) == ["m_tt", "m_W_had", "m_t_had", "m_W_lep", "m_t_lep"]
    for name, peak in result["peaks"].items():
        assert peak["height_ratio"] == peak["fwhm_ratio"] == 1.0, name
    assert "## Classifier two-sample test" in markdown and "## Mass peaks" in markdown


def test_shifted_simulation_gives_the_expected_distances(samples, tmp_path):
    result = validate(
        samples["truth"], samples["shifted"], tmp_path / "report", plots=False, progress=False
    )
    q = result["quantities"]
    truth_x, shifted_x = samples["x"], samples["shifted_x"]
    jet1_e = layout.column_index("x", "E_jet1")
    expected_ks = metrics.ks_distance(truth_x[:, jet1_e], shifted_x[:, jet1_e])
    assert q["x_E_jet1"]["ks"] == pytest.approx(expected_ks, rel=1e-6) and expected_ks > 0.03
    # A 5% scale shifts a positive distribution's W1 by 5% of its mean.
    assert q["x_E_jet1"]["w1"] == pytest.approx(0.05 * truth_x[:, jet1_e].mean(), rel=1e-3)
    assert q["m_tt"]["ks"] > 0.05 and q["m_W_had"]["ks"] > 0.05
    assert q["x_E_e-"]["ks"] == 0.0 and q["x_px_met"]["ks"] == 0.0  # untouched objects
    assert result["table1"]["jet1_E"] == q["x_E_jet1"]["ks"]
    assert result["table1"]["b_E"] == 0.0 and set(result["table1_notes"]) == {"b"}
    classifier = result["classifier"]
    assert classifier["auc"] > 0.6 and classifier["auc_floor"] < 0.56
    assert result["peaks"]["m_W_had"]["peak_simulation"] > result["peaks"]["m_W_had"]["peak_truth"]


def test_unfolded_partons_fill_the_b_columns(samples, tmp_path):
    result = validate(
        samples["truth"], samples["copy"], tmp_path / "report",
        unfolded=samples["unfolded"], plots=False, progress=False,
    )
    z = samples["z"]
    b_e = layout.column_index("z", "E_b")
    expected = metrics.ks_distance(z[:, b_e], 1.10 * z[:, b_e])
    assert result["table1"]["b_E"] == pytest.approx(expected, rel=1e-6)
    assert result["table1"]["b_E"] > 0.02
    assert result["quantities"]["z_E_b"]["compared_with"] == "unfolded"
    assert result["quantities"]["z_E_u"]["ks"] == 0.0
    assert result["table1_notes"] == {"detector": result["table1_notes"]["detector"]}


def test_report_files_plots_and_histograms(samples, tmp_path):
    out = tmp_path / "report"
    result = validate(samples["truth"], samples["shifted"], out, plots=["m_t_had", "x_E_jet1"],
                      progress=False)
    for name in ("m_t_had", "x_E_jet1"):
        for suffix in (".png", ".pdf"):
            assert (out / "plots" / f"{name}{suffix}").stat().st_size > 10_000
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "m_t_had.pdf", "m_t_had.png", "x_E_jet1.pdf", "x_E_jet1.png"
    ]
    markdown = (out / "metrics.md").read_text()
    assert table1_markdown(result) in markdown
    for model in PUBLISHED_TABLE1:
        assert model in markdown
    with uproot.open(out / "histograms.root") as file:
        truth = file["truth/m_tt"].to_hist().values(flow=True)
        simulation = file["simulation/m_tt"].to_hist().values(flow=True)
    assert truth.sum() == simulation.sum() == N_EVENTS
    assert not np.array_equal(truth, simulation)
    assert result["quantities"]["m_tt"]["ks"] > 0


def test_existing_report_is_kept_unless_forced(samples, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="--force"):
        validate(samples["truth"], samples["copy"], out, plots=False, progress=False)
    assert (out / "keep.txt").exists()
    validate(samples["truth"], samples["copy"], out, plots=False, progress=False, force=True)
    assert not (out / "keep.txt").exists() and (out / "metrics.json").exists()


def test_unphysical_simulation_lowers_the_valid_fraction(samples, tmp_path):
    x = samples["x"].copy()
    bad = np.arange(0, N_EVENTS, 4)
    x[bad, layout.column_index("x", "E_jet2")] *= 0.5  # E < |p|: a space-like jet
    sim = write_sample(tmp_path / "bad.root", samples["z"], x)
    result = validate(samples["truth"], sim, tmp_path / "report", plots=False, progress=False)
    assert result["valid_fraction"] == pytest.approx(1 - len(bad) / N_EVENTS)


def test_cli_validate(samples, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["validate", "--truth", str(samples["truth"]), "--sim", str(samples["shifted"]),
                 "-o", str(out), "--plots", "none"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Turbo-Sim (published)" in printed and "this run" in printed
    assert (out / "metrics.json").exists() and not (out / "plots").exists()
    assert main(["validate", "--truth", str(tmp_path / "missing.root"), "--sim",
                 str(samples["shifted"]), "-o", str(tmp_path / "other")]) == 2
    assert "missing.root: no such file" in capsys.readouterr().err


def test_weighted_simulation_is_compared_with_its_weights(samples, tmp_path):
    """A simulated file whose events carry weights: the truth's events with weight 1 and
    as many shifted events with weight 0. Weighted, it is the truth; unweighted, it is
    not. The histograms' sums of weights and squared weights follow the weights."""
    from turbosim_hep.io import EventWriter
    from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns

    z, x, shifted = samples["z"], samples["x"], samples["shifted_x"]
    weight = np.concatenate([np.ones(N_EVENTS), np.zeros(N_EVENTS)]).astype(np.float32)
    chunk = event_columns(np.arange(2 * N_EVENTS)) | {"weight": weight}
    chunk |= reco_columns(np.concatenate([x, shifted])) | parton_columns(np.concatenate([z, z]))
    with EventWriter(tmp_path / "weighted.root") as writer:
        writer.write(chunk)
    result = validate(
        samples["truth"], tmp_path / "weighted.root", tmp_path / "report", plots=False,
        progress=False,
    )
    assert result["table1"]["jet1_E"] == 0.0 and result["quantities"]["m_t_had"]["ks"] == 0.0
    assert result["events"]["simulation"] == 2 * N_EVENTS
    assert result["yield"] == {"truth": N_EVENTS, "simulation": N_EVENTS}
    assert result["quantities"]["x_E_jet1"]["w_sim"] == N_EVENTS
    assert result["ks_floor"] == pytest.approx(metrics.ks_floor(N_EVENTS, N_EVENTS))
    with uproot.open(tmp_path / "report" / "histograms.root") as file:
        h = file["simulation/x_E_jet1"].to_hist()
    assert h.sum(flow=True).value == pytest.approx(N_EVENTS)
    assert h.sum(flow=True).variance == pytest.approx(N_EVENTS)  # sum of w^2


def _weighted_file(path, samples, weight) -> str:
    from turbosim_hep.io import EventWriter
    from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns

    n = len(weight)
    chunk = event_columns(np.arange(n)) | {"weight": np.asarray(weight, dtype=np.float32)}
    chunk |= reco_columns(samples["shifted_x"][:n]) | parton_columns(samples["z"][:n])
    with EventWriter(path) as writer:
        writer.write(chunk)
    return str(path)


def test_negative_weights_are_compared_as_signed_distributions(samples, tmp_path, capsys):
    """NLO generators write negative weights: the histograms, KS and W1 take them as the
    field does (signed weighted distributions), with no error."""
    weight = np.ones(N_EVENTS)
    weight[: N_EVENTS // 10] = -1.0
    sim = _weighted_file(tmp_path / "nlo.root", samples, weight)
    result = validate(samples["truth"], sim, tmp_path / "report", plots=["m_t_had"],
                      progress=False)
    assert result["yield"]["simulation"] == pytest.approx(0.8 * N_EVENTS)
    q = result["quantities"]["x_E_jet1"]
    assert q["w_sim"] == pytest.approx(0.8 * N_EVENTS)
    values, wanted = samples["shifted_x"][:, 11], samples["x"][:, 11]  # jet1 E
    assert q["ks"] == pytest.approx(metrics.ks_distance(wanted, values, None, weight))
    assert q["w1"] == pytest.approx(metrics.wasserstein1(wanted, values, None, weight))
    assert q["w1"] > 0 and (tmp_path / "report" / "plots").is_dir()
    # the signed W1 is the earth mover's distance where the weights are positive
    from scipy import stats

    positive = np.linspace(0.5, 2.0, N_EVENTS)
    assert metrics.wasserstein1(wanted, values, None, positive) == pytest.approx(
        stats.wasserstein_distance(wanted, values, None, positive)
    )
    # weights summing to a negative number describe no distribution: one line
    sim = _weighted_file(tmp_path / "negative.root", samples, -np.ones(N_EVENTS))
    assert main(["validate", "--truth", str(samples["truth"]), "--sim", sim, "-o",
                 str(tmp_path / "r2"), "--plots", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "event weights of the simulation events sum to -4000" in err


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_weights_are_one_line_naming_the_file_and_count(
    samples, tmp_path, capsys, bad
):
    weight = np.ones(N_EVENTS)
    weight[[1, 10, 100]] = bad
    sim = _weighted_file(tmp_path / "bad.root", samples, weight)
    assert main(["validate", "--truth", str(samples["truth"]), "--sim", sim, "-o",
                 str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{sim}: 3 of {N_EVENTS} events have a NaN or infinite weight" in err
    assert not (tmp_path / "report").exists()
