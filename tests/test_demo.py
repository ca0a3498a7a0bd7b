"""The demo's --quick run, end to end through the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import uproot

from turbosim_hep import layout, metrics, physics
from turbosim_hep.io import read_events
from turbosim_hep.validation.report import TABLE1

from _ttbar import smear, ttbar_partons, write_sample


@pytest.fixture
def demo_sample(tmp_path, request):
    """The shipped sample when present, else a synthetic tt-bar sample of the same layout."""
    from conftest import SHIPPED_SAMPLE

    if SHIPPED_SAMPLE.exists():
        return SHIPPED_SAMPLE
    z = ttbar_partons(8000, seed=3)
    return write_sample(tmp_path / "synthetic.root", z, smear(z))


def test_quick_demo_writes_model_files_and_reports(demo_sample, tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "turbosim_hep", "demo", "--quick", "-o", str(out),
         "--sample", str(demo_sample), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Table 1" in result.stdout and "Turbo-Sim (published)" in result.stdout
    for name in ("model.pt", "test_truth.root", "test_partons.root", "simulated.root",
                 "unfolded.root", "report/metrics.json", "report/metrics.md", "demo.json"):
        assert (out / name).exists(), name
    report = json.loads((out / "report" / "metrics.json").read_text())
    assert set(report["table1"]) == set(TABLE1)
    assert report["valid_fraction"] == 1.0
    assert list((out / "report").glob("**/*.png"))
    assert report["classifier"]["events"] > 0 and 0.0 <= report["classifier"]["auc"] <= 1.0
    assert "classifier two-sample test: AUC" in result.stdout
    assert set(report["peaks"]) >= {"m_tt", "m_W_had", "m_t_had", "m_t_lep"}

    # the report's numbers are the distances of the files it names, recomputed here
    truth, _ = read_events(out / "test_truth.root")
    simulated, _ = read_events(out / "simulated.root")
    unfolded, _ = read_events(out / "unfolded.root", detector=False)
    m_tt = [physics.reconstruct(b.x)["m_tt"] for b in (truth, simulated)]
    assert report["table1"]["m_tt"] == pytest.approx(metrics.ks_distance(*m_tt), abs=1e-12)
    jet1_e = layout.column_index("x", "E_jet1")
    assert report["table1"]["jet1_E"] == pytest.approx(
        metrics.ks_distance(truth.x[:, jet1_e], simulated.x[:, jet1_e]), abs=1e-12
    )
    b_py = layout.column_index("z", "py_b")
    assert report["table1"]["b_py"] == pytest.approx(
        metrics.ks_distance(truth.z[:, b_py], unfolded.z[:, b_py]), abs=1e-12
    )

    demo = json.loads((out / "demo.json").read_text())
    if "acceptance" in demo:  # a sample that keeps rejected events: the acceptance check
        with uproot.open(out / "accepted_weight.root") as file:
            weight = file["Events"]["weight"].array(library="np")
        checked = demo["acceptance"]["weight"]
        assert checked["predicted_selected"] == pytest.approx(np.sum(weight, dtype=float))
        assert checked["events_written"] == len(weight)
        assert set(checked["table1"]) == set(TABLE1)
        assert (out / "report_acceptance_sample" / "metrics.json").exists()

    again = subprocess.run(
        [sys.executable, "-m", "turbosim_hep", "demo", "--quick", "-o", str(out),
         "--sample", str(demo_sample)],
        capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
