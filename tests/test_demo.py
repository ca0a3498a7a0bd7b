"""The demo's --quick run, end to end through the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_quick_demo_writes_model_files_and_report(demo_sample, tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "turbosim_hep", "demo", "--quick", "-o", str(out),
         "--sample", str(demo_sample), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Table 1" in result.stdout and "Turbo-Sim (published)" in result.stdout
    for name in ("model.pt", "test_truth.root", "simulated_0.root", "unfolded.root",
                 "report/metrics.json", "report/metrics.md"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert set(metrics["table1"]) == set(TABLE1)
    assert all(0.0 <= value <= 1.0 for value in metrics["table1"].values())
    assert metrics["valid_fraction"] == 1.0
    assert list((out / "report").glob("**/*.png"))

    again = subprocess.run(
        [sys.executable, "-m", "turbosim_hep", "demo", "--quick", "-o", str(out),
         "--sample", str(demo_sample)],
        capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
