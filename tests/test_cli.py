"""The command line as a user meets it: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import torch
import uproot

from turbosim_hep.cli import main
from turbosim_hep.io import read_events
from turbosim_hep.model import TurboSim, save_checkpoint

from _delphes import write_delphes
from _ttbar import smear, ttbar_partons, write_sample


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


def modules_after(*args: str) -> set[str]:
    """The modules imported by ``turbosim-hep ARGS`` in a fresh interpreter."""
    script = (
        "import sys\n"
        "from turbosim_hep.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('modules:', *sys.modules)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.splitlines()[-1].split()[1:])


@pytest.mark.parametrize("args", [[], ["--version"], ["inspect"], ["validate"]])
def test_help_imports_neither_torch_nor_the_analysis(args):
    modules = modules_after(*args, "--help")
    assert not {"torch", "coffea", "uproot", "awkward"} & modules


def test_inspect_imports_no_torch(mixed_file):
    path, _ = mixed_file
    modules = modules_after("inspect", path, "--json")
    assert "uproot" in modules and "torch" not in modules


#: The least arguments of each command that has progress bars.
PROGRESS_COMMANDS = {
    "generate": ["generate", "-n", "1", "-o", "o.root"],
    "train": ["train", "d.root", "-o", "m.pt"],
    "simulate": ["simulate", "m.pt", "in.lhe", "-o", "o.root"],
    "unfold": ["unfold", "m.pt", "in.root", "-o", "o.root"],
    "validate": ["validate", "--truth", "t", "--sim", "s", "-o", "r"],
    "demo": ["demo"],
}


@pytest.mark.parametrize("command", PROGRESS_COMMANDS)
@pytest.mark.parametrize("flag", ["--no-progress", "--quiet"])
def test_every_command_turns_progress_off_with_the_same_flag(command, flag):
    from turbosim_hep.cli import build_parser

    arguments = PROGRESS_COMMANDS[command]
    assert build_parser().parse_args(arguments).progress is True
    assert build_parser().parse_args([*arguments, flag]).progress is False


@pytest.mark.parametrize(
    ("flags", "executor", "workers"),
    [
        ([], "iterative", 1),
        (["--jobs", "3"], "futures", 3),
        (["--workers", "3"], "futures", 3),  # the older spelling
        (["--executor", "futures", "--jobs", "2"], "futures", 2),
        (["--executor", "iterative"], "iterative", 1),
    ],
)
def test_validate_takes_jobs_as_simulate_does(flags, executor, workers, monkeypatch, capsys):
    from turbosim_hep import validation
    from turbosim_hep.errors import TurbosimError

    seen = {}

    def fake_validate(*args, **kwargs):
        seen.update(kwargs)
        raise TurbosimError("stopped by the test")

    monkeypatch.setattr(validation, "validate", fake_validate)
    arguments = [*PROGRESS_COMMANDS["validate"], *flags, "--no-progress"]
    assert main(arguments) == 2
    assert "stopped by the test" in capsys.readouterr().err
    assert (seen["executor"], seen["workers"], seen["progress"]) == (executor, workers, False)


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


# --- every failure one line, no output clobbering an input ------------------------------


@pytest.fixture(scope="module")
def run_files(tmp_path_factory) -> dict[str, Path]:
    """A model, a parton-only file and a parton + detector file, all small."""
    directory = tmp_path_factory.mktemp("cli")
    z = ttbar_partons(300, seed=21)
    x = smear(z, seed=22)
    model = TurboSim.from_config(None, x=torch.from_numpy(x), z=torch.from_numpy(z))
    save_checkpoint(directory / "model.pt", model)
    return {
        "model": directory / "model.pt",
        "partons": Path(write_sample(directory / "partons.root", z, None)),
        "full": Path(write_sample(directory / "full.root", z, x)),
    }


def commands(files: dict[str, Path], out: Path) -> dict[str, list]:
    """One run of every command that writes, into ``out`` (a file, or the report)."""
    return {
        "simulate": ["simulate", files["model"], files["partons"], "-o", out, "--quiet"],
        "unfold": ["unfold", files["model"], files["full"], "-o", out, "--quiet"],
        "train": ["train", files["full"], "-o", out, "--epochs", "1", "--quiet"],
        "export": ["export", files["full"], "-o", out],
        "validate": ["validate", "--truth", files["full"], "--sim", files["full"], "-o", out,
                     "--plots", "none"],
        "generate": ["generate", "-n", "20", "--level", "parton", "-o", out, "--no-progress"],
    }


@pytest.mark.parametrize("command", ["simulate", "unfold", "train", "export", "validate",
                                     "generate"])
def test_an_output_where_no_file_can_be_created_is_one_line(run_files, command):
    out = Path("/proc/turbosim-hep-test.out")
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    if command == "generate":
        pytest.importorskip("pythia8mc")
    assert_one_line_error(cli(*commands(run_files, out)[command]), str(out),
                          "cannot create a file in /proc")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["simulate", "unfold", "train", "export", "validate",
                                     "generate"])
def test_a_full_disk_is_one_line_and_leaves_nothing(run_files, full_disk, command):
    """ENOSPC while writing: one line naming the output, exit 2 (never a crash: export
    once died of a segmentation fault in h5py), and no temporary or empty log left."""
    if command == "generate":
        pytest.importorskip("pythia8mc")
    out = full_disk / "out"
    result = cli(*commands(run_files, out)[command])
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, f"cannot write {out}: no space left on device")
    assert os.listdir(full_disk) == ["filler"]


def test_an_output_that_is_an_input_is_refused_even_with_force(run_files, tmp_path, capsys):
    copies = {name: tmp_path / path.name for name, path in run_files.items()}
    for name, path in run_files.items():
        shutil.copy(path, copies[name])
    before = {name: path.read_bytes() for name, path in copies.items()}
    model, partons, full = copies["model"], copies["partons"], copies["full"]
    report = tmp_path / "report"
    report.mkdir()
    truth = shutil.copy(full, report / "truth.root")
    cases = [
        (["simulate", model, partons, "-o", partons], partons),
        (["simulate", model, partons, "-o", model], model),
        (["unfold", model, full, "-o", full], full),
        (["train", full, "-o", full, "--epochs", "1"], full),
        (["export", full, "-o", full], full),
        (["validate", "--truth", truth, "--sim", full, "-o", report, "--plots", "none"],
         truth),
    ]
    for arguments, clobbered in cases:
        for force in ([], ["--force"]):
            assert main([*map(str, arguments), *force]) == 2
            error = capsys.readouterr().err.strip()
            assert error.count("\n") == 0 and f"the input {clobbered}" in error, error
    assert {name: path.read_bytes() for name, path in copies.items()} == before
    assert Path(truth).exists()


def special_file(path: Path) -> Path:
    """A copy of the null device at ``path`` (a FIFO where device nodes cannot be made)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["simulate", "unfold", "train", "export", "validate",
                                     "generate"])
def test_a_device_or_fifo_output_is_refused_even_with_force(run_files, tmp_path, command):
    """``-o /dev/null --force`` once renamed a regular file over the device node."""
    if command == "generate":
        pytest.importorskip("pythia8mc")
    node = special_file(tmp_path / "null")
    kind = os.stat(node).st_mode
    result = cli(*commands(run_files, node)[command], "--force")
    assert result.returncode == 2, result.stderr
    what = "is not a directory" if command == "validate" else "not a regular file"
    assert_one_line_error(result, str(node), what)
    assert os.stat(node).st_mode == kind
    assert sorted(os.listdir(tmp_path)) == ["null"]


def test_a_device_that_replaces_the_output_during_a_run_is_not_renamed_over(tmp_path):
    from turbosim_hep.errors import OutputError
    from turbosim_hep.outputs import AtomicOutput

    out = tmp_path / "out.root"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="not a regular file"), AtomicOutput(
        out, force=True
    ) as output:
        output.write_bytes(b"new")
        out.unlink()
        special_file(out)
    assert not stat.S_ISREG(os.stat(out).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["out.root"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "d.root", "-o", "m.pt", "--lr", "-1"], "--lr: must be a positive number"),
        (["train", "d.root", "-o", "m.pt", "--lr", "nan"], "--lr: must be a positive number"),
        (["train", "d.root", "-o", "m.pt", "--batch-size", "0"], "--batch-size: must be a pos"),
        (["train", "d.root", "-o", "m.pt", "--epochs", "0"], "--epochs: must be a positive"),
        (["train", "d.root", "-o", "m.pt", "--seed", "-1"], "--seed: must be a non-negative"),
        (["train", "d.root", "-o", "m.pt", "--ema-decay", "1"], "--ema-decay: must be a number"),
        (["train", "d.root", "-o", "m.pt", "--lr-final-fraction", "0"], "--lr-final-fraction"),
        (["train", "d.root", "-o", "m.pt", "--weight", "dzt=inf"], "--weight: must be a non-n"),
        (["train", "d.root", "-o", "m.pt", "--mass-weight", "-2"], "--mass-weight: must be"),
        (["train", "d.root", "-o", "m.pt", "--threads", "-1"], "--threads: must be a non-neg"),
        (["simulate", "m.pt", "in.lhe", "-o", "o.root", "--jobs", "0"], "--jobs: must be a pos"),
        (["simulate", "m.pt", "in.lhe", "-o", "o.root", "--scheduler", "not an address"],
         "--scheduler: must be a Dask scheduler address tcp://HOST:PORT, got 'not an address'"),
        (["unfold", "m.pt", "in.root", "-o", "o.root", "--scheduler", "tcp://host"],
         "--scheduler: must be a Dask scheduler address tcp://HOST:PORT"),
        (["unfold", "m.pt", "in.root", "-o", "o.root", "--batch-size", "x"], "got 'x'"),
        (["generate", "-n", "0", "-o", "o.root"], "--events: must be a positive integer"),
        (["generate", "-n", "9", "-o", "o.root", "--rejected-fraction", "1.5"], "[0, 1]"),
        (["generate", "-n", "9", "-o", "o.root", "--mantissa-bits", "24"], "from 1 to 23"),
        (["validate", "--truth", "t", "--sim", "s", "-o", "r", "--bins", "0"], "--bins: must"),
        (["validate", "--truth", "t", "--sim", "s", "-o", "r", "--workers", "-3"], "--workers"),
        (["demo", "--seed", "-5"], "--seed: must be a non-negative 64-bit integer, got -5"),
    ],
)
def test_numeric_flags_are_checked_at_parse_time(arguments, message, capsys):
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert error.startswith(f"turbosim-hep {arguments[0]}: error: argument ") and message in error


def test_validate_checks_its_inputs_before_the_analysis(run_files, tmp_path, capsys):
    full = run_files["full"]
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    no_detector = tmp_path / "delphes.root"
    z = ttbar_partons(20, seed=3)
    write_delphes(str(no_detector), z, np.ones(20, dtype=bool))
    empty = Path(write_sample(tmp_path / "empty.root", z[:0], smear(z)[:0]))
    cases = [
        (truncated, "truncated ROOT file"),
        (no_detector, "tree 'Delphes' lacks branches Electron"),
        (empty, "tree 'Events' holds no events"),
    ]
    for truth, message in cases:
        for role in ("--truth", "--sim"):
            other = "--sim" if role == "--truth" else "--truth"
            arguments = [role, truth, other, full, "-o", tmp_path / "report", "--plots", "none"]
            assert main(["validate", *map(str, arguments)]) == 2
            error = capsys.readouterr().err.strip()
            assert error.count("\n") == 0 and f"{truth}: {message}" in error, error
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_an_error_inside_a_coffea_chunk_is_one_line_naming_the_file(run_files, tmp_path,
                                                                    executor):
    corrupt = tmp_path / "corrupt.root"
    data = bytearray(run_files["full"].read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = bytes(third)  # baskets zeroed, header and directory intact
    corrupt.write_bytes(bytes(data))
    result = cli("validate", "--truth", corrupt, "--sim", run_files["full"], "-o",
                 tmp_path / "report", "--plots", "none", "--executor", executor)
    assert_one_line_error(result, f"{corrupt}: cannot be analysed (")
    assert result.stdout == ""
    assert os.listdir(tmp_path) == ["corrupt.root"]


def test_inspect_text_on_a_file_without_entries(tmp_path):
    z = ttbar_partons(5, seed=1)
    empty = write_sample(tmp_path / "empty.root", z[:0], smear(z)[:0])
    result = cli("inspect", empty)
    assert result.returncode == 0, result.stderr
    assert "0 entries" in result.stdout and "usable events: 0" in result.stdout


def test_an_rntuple_is_named_as_such(tmp_path):
    path = tmp_path / "rntuple.root"
    with uproot.recreate(path) as file:
        file.mkrntuple("Events", ak.Array({"x": np.arange(3.0)}))
    assert_one_line_error(cli("inspect", path), "'Events' is an RNTuple, not a TTree")
