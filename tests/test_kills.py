"""Killed runs: SIGTERM stops everything cleanly, SIGKILL leaves no worker running, and
the next run to the same output removes what a killed one left.

Each test starts a parallel run (``--jobs 2``) in a child process (`_processes.start`),
waits until its workers compute, signals the main process and checks that within a
bounded time no worker is left; `_processes.end` kills whatever is left in any case.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
import torch

from turbosim_hep.model import TurboSim, save_checkpoint

import _processes
from _ttbar import smear, ttbar_partons, write_sample

pytestmark = pytest.mark.slow

#: Seconds a run may take to start its workers, and its workers to end after a kill.
START_SECONDS = 120
END_SECONDS = 30


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> dict[str, Path]:
    """A model and two inputs that ``simulate --batch-size 1`` takes minutes over."""
    directory = tmp_path_factory.mktemp("kills")
    z = ttbar_partons(20_000, seed=5)
    model = TurboSim.from_config(None, x=torch.from_numpy(smear(z)), z=torch.from_numpy(z))
    save_checkpoint(directory / "model.pt", model)
    return {
        "model": directory / "model.pt",
        "inputs": [Path(write_sample(directory / f"in{k}.root", z, None)) for k in (1, 2)],
        "small": Path(write_sample(directory / "small.root", z[:50], None)),
    }


def hidden(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


def start_computing(arguments: list, directory: Path) -> tuple:
    """Start a run and wait until its two workers compute; returns (process, workers)."""
    process = _processes.start(*arguments)
    _processes.wait_until(
        lambda: len(_processes.workers(process)) == 2, START_SECONDS, "two workers"
    )
    workers = _processes.workers(process)
    if arguments[0] == "simulate":  # each worker has written the header of its part
        _processes.wait_until(
            lambda: sum(".part" in n and os.path.getsize(directory / n) > 0
                        for n in hidden(directory)) == 2,
            START_SECONDS, "the workers to write",
        )
    return process, workers


def assert_all_end(processes: list[psutil.Process]) -> None:
    _processes.wait_until(lambda: not _processes.running(processes), END_SECONDS,
                          "the workers to end")


def simulate(files: dict, out: Path) -> list:
    return ["simulate", files["model"], *files["inputs"], "-o", out, "--jobs", "2",
            "--batch-size", "1", "--quiet"]


def generate(out: Path) -> list:
    return ["generate", "-n", "100000", "--jobs", "2", "-o", out, "--no-progress"]


def test_sigterm_stops_a_parallel_simulate_and_leaves_nothing(long_run, tmp_path):
    out = tmp_path / "out.root"
    process, workers = start_computing(simulate(long_run, out), tmp_path)
    try:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143, stderr
        assert stderr == "turbosim-hep simulate: terminated\n"
        assert_all_end(workers)
        assert os.listdir(tmp_path) == []
    finally:
        _processes.end(process, workers)


def test_sigkill_of_a_parallel_simulate_ends_its_workers(long_run, tmp_path):
    """Workers die with their parent; the next run removes the killed one's temporaries."""
    out = tmp_path / "out.root"
    process, workers = start_computing(simulate(long_run, out), tmp_path)
    try:
        process.kill()
        process.communicate(timeout=END_SECONDS)  # its workers hold its output open
        assert_all_end(workers)
        left = hidden(tmp_path)
        assert left and all(f".out.root.{process.pid}@" in name for name in left)
        assert not out.exists()
        again = _processes.start("simulate", long_run["model"], long_run["small"], "-o", out,
                                 "--quiet")
        _, stderr = again.communicate(timeout=300)
        assert again.returncode == 0, stderr
        assert os.listdir(tmp_path) == ["out.root"]
    finally:
        _processes.end(process, workers)


def test_sigterm_stops_a_parallel_generate_and_leaves_nothing(tmp_path):
    pytest.importorskip("pythia8mc")
    process, workers = start_computing(generate(tmp_path / "big.root"), tmp_path)
    try:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143, stderr
        assert stderr == "turbosim-hep generate: terminated\n"
        assert_all_end(workers)
        assert os.listdir(tmp_path) == []
    finally:
        _processes.end(process, workers)


def test_sigkill_of_a_parallel_generate_ends_its_workers(tmp_path):
    pytest.importorskip("pythia8mc")
    out = tmp_path / "big.root"
    process, workers = start_computing(generate(out), tmp_path)
    try:
        process.kill()
        process.communicate(timeout=END_SECONDS)  # its workers hold its output open
        assert_all_end(workers)
        assert [name.startswith(f".big.root.{process.pid}@") for name in hidden(tmp_path)] == [
            True
        ]
        again = _processes.start("generate", "-n", "10", "--level", "parton", "-o", out,
                                 "--no-progress")
        _, stderr = again.communicate(timeout=300)
        assert again.returncode == 0, stderr
        assert os.listdir(tmp_path) == ["big.root"]
    finally:
        _processes.end(process, workers)


def test_ctrl_c_stops_a_run_with_the_largest_oversampling_within_seconds(long_run, tmp_path):
    """``--oversample 65536`` plans its replicas in bounded groups: Ctrl-C is heard
    between two of them, wherever the run is."""
    out = tmp_path / "out.root"
    process = _processes.start("simulate", long_run["model"], long_run["inputs"][0], "-o", out,
                               "--oversample", "65536", "--acceptance", "off", "--quiet")
    try:
        _processes.wait_until(
            lambda: any(os.path.getsize(tmp_path / n) > 0 for n in hidden(tmp_path)),
            START_SECONDS, "the run to write",
        )
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
        assert process.returncode == 130, stderr
        assert stderr == "turbosim-hep simulate: interrupted\n"
        assert os.listdir(tmp_path) == []
    finally:
        _processes.end(process, [])
