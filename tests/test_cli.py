"""The command line as a user meets it: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from turbosim_hep.io import read_events


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "turbosim_hep", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_on_every_command():
    from turbosim_hep.cli import COMMANDS

    assert cli("--help").returncode == 0
    for command in COMMANDS:
        result = cli(command, "--help")
        assert result.returncode == 0 and "usage: turbosim-hep" in result.stdout


def test_inspect_json_on_delphes(delphes_file):
    result = cli("inspect", delphes_file, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["entries"] == 10
    assert list(report["cutflow"])[0] == "all"
    assert list(report["cutflow"])[-1] == "parton_record"
    assert report["selected"] == 0


def test_inspect_text_on_own_file(mixed_file):
    path, _ = mixed_file
    result = cli("inspect", path)
    assert result.returncode == 0, result.stderr
    assert "four_jets" in result.stdout and "usable events:" in result.stdout


def test_export_reads_back_identical_arrays(mixed_file, tmp_path):
    path, _ = mixed_file
    out = tmp_path / "out.h5"
    assert cli("export", path, "-o", out).returncode == 0
    batch, _ = read_events(path)
    with h5py.File(out) as h5:
        np.testing.assert_array_equal(h5["FDL"][...], batch.z)
        np.testing.assert_array_equal(h5["ROL"][...], batch.x)
        np.testing.assert_array_equal(h5["event"][...], batch.entry)
    assert_one_line_error(cli("export", path, "-o", out), "out.h5", "--force")
    assert cli("export", path, "-o", out, "--force").returncode == 0


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: d / "missing.root", "no such file"),
        (lambda d: (d / "text.root").write_text("hello") and d / "text.root", "not a ROOT file"),
    ],
)
def test_bad_input_gives_one_line(tmp_path, make, fragment):
    path = make(tmp_path)
    assert_one_line_error(cli("inspect", path), str(path), fragment)


def test_export_into_missing_directory_writes_nothing(mixed_file, tmp_path):
    path, _ = mixed_file
    out = tmp_path / "nowhere" / "out.h5"
    assert_one_line_error(cli("export", path, "-o", out), "does not exist")
    assert not out.parent.exists()
