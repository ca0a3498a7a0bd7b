"""The Python API checks its arguments as the command line does: one line, the package's
own error (also a `ValueError`), nothing written."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import uproot

import turbosim_hep as ts
from turbosim_hep import arguments
from turbosim_hep.arguments import ArgumentError
from turbosim_hep.errors import TurbosimError
from turbosim_hep.pipeline import executors


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("batch_size", -1, "batch_size: must be a positive integer, got -1"),
        ("batch_size", -100, "batch_size: must be a positive integer, got -100"),
        ("batch_size", 0, "batch_size: must be a positive integer, got 0"),
        ("batch_size", 2.5, "batch_size: must be a positive integer, got 2.5"),
        ("jobs", 0, "jobs: must be a positive integer, got 0"),
        ("chunk_events", -5, "chunk_events: must be a positive integer, got -5"),
        ("seed", float("nan"), "seed: must be a non-negative 64-bit integer, got nan"),
        ("seed", -5, "seed: must be a non-negative 64-bit integer, got -5"),
        ("seed", 2**64, "seed: must be a non-negative 64-bit integer"),
        ("channel", "muon", "channel: must be one of electron, positron, both, not 'muon'"),
        ("compression", 5, "--compression: expected one of zstd, lz4, zlib, lzma"),
        ("scheduler", "not an address", "scheduler: must be a Dask scheduler address "
                                        "tcp://HOST:PORT, got 'not an address'"),
        ("device", "tpu", "device: must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ],
)
def test_simulate_files_refuses_bad_arguments_and_writes_nothing(
    paired_sample, tmp_path, keyword, value, message
):
    out = tmp_path / "out.root"
    with pytest.raises(TurbosimError) as caught:
        ts.simulate_files(paired_sample["model"], [paired_sample["partons"]], out,
                          progress=False, **{keyword: value})
    assert str(caught.value) == message or str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_argument_errors_are_value_errors_of_the_package():
    with pytest.raises(ValueError, match="batch_size"):
        arguments.POSITIVE_INT.check(-1, "batch_size")
    assert isinstance(ArgumentError("a", "b"), TurbosimError)
    assert arguments.POSITIVE_INT.check(np.int64(3), "n") == 3
    for value in (True, "3", None, 3.0):
        with pytest.raises(ArgumentError):
            arguments.POSITIVE_INT.check(value, "n")
    for value in (math.inf, -math.inf, math.nan, 0.0):
        with pytest.raises(ArgumentError):
            arguments.POSITIVE_NUMBER.check(value, "lr")


def test_one_input_path_is_one_path_not_its_letters(paired_sample, tmp_path):
    out = tmp_path / "one.root"
    summary = ts.simulate_files(paired_sample["model"], paired_sample["partons"], out,
                                progress=False, acceptance="off")
    with uproot.open(out) as file:
        assert file["Events"].num_entries == summary.written > 0
    with pytest.raises(ArgumentError, match="inputs: no input files"):
        ts.simulate_files(paired_sample["model"], [], tmp_path / "none.root")
    with pytest.raises(ArgumentError, match="inputs: must be a path or a list of paths"):
        ts.unfold_files(paired_sample["model"], 5, tmp_path / "five.root")
    assert sorted(os.listdir(tmp_path)) == ["one.root"]


def test_an_unreachable_scheduler_says_what_it_waits_for(paired_sample, tmp_path,
                                                         monkeypatch, capsys):
    monkeypatch.setattr(executors, "SCHEDULER_TIMEOUT_SECONDS", 1)
    with pytest.raises(TurbosimError, match=r"cannot reach the Dask scheduler at "
                                            r"tcp://127\.0\.0\.1:9 within 1 s"):
        ts.simulate_files(paired_sample["model"], [paired_sample["partons"]],
                          tmp_path / "out.root", scheduler="tcp://127.0.0.1:9", progress=False)
    assert "connecting to the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"executor": "futures", "workers": 0}, "workers: must be a positive integer, got 0"),
        ({"executor": "spark"}, "executor: must be one of iterative, futures, dask"),
        ({"bins": -1}, "bins: must be a positive integer, got -1"),
    ],
)
def test_validate_refuses_bad_arguments(paired_sample, tmp_path, keywords, message):
    with pytest.raises(ArgumentError, match=message):
        ts.validate(paired_sample["full"], paired_sample["full"], tmp_path / "report",
                    progress=False, **keywords)
    assert not (tmp_path / "report").exists()


def test_validate_refuses_an_empty_input_list(paired_sample, tmp_path):
    for truth, simulation, name in (
        (paired_sample["full"], [], "simulation"),
        ([], paired_sample["full"], "truth"),
    ):
        with pytest.raises(ArgumentError, match=f"{name}: no input files"):
            ts.validate(truth, simulation, tmp_path / "report", progress=False)
    assert not (tmp_path / "report").exists()


def test_load_model_names_the_device_not_the_file(paired_sample):
    with pytest.raises(ArgumentError, match="device: must be auto, cpu, cuda or cuda:N, "
                                            "got 'tpu'") as caught:
        ts.load_model(paired_sample["model"], device="tpu")
    assert "corrupt" not in str(caught.value)
    if not torch.cuda.is_available():
        with pytest.raises(ArgumentError, match="CUDA is not available on this machine"):
            ts.load_model(paired_sample["model"], device="cuda")


def test_fastsim_checks_its_arguments_when_made(paired_sample):
    for keywords, message in (
        ({"seed": -5}, "seed: must be a non-negative 64-bit integer, got -5"),
        ({"batch_size": -1}, "batch_size: must be a positive integer, got -1"),
        ({"device": "tpu"}, "device: must be auto, cpu, cuda or cuda:N"),
        ({"acceptance": "maybe"}, "acceptance: must be one of sample, weight, off"),
    ):
        with pytest.raises(ArgumentError, match=message):
            ts.FastSim(paired_sample["model"], **keywords)


def test_train_config_checks_its_settings():
    for keywords, message in (
        ({"seed": float("nan")}, "seed: must be a non-negative 64-bit integer, got nan"),
        ({"batch_size": -1}, "batch_size: must be a positive integer, got -1"),
        ({"lr": math.inf}, "lr: must be a positive number, got inf"),
        ({"epochs": 2.5}, "epochs: must be a positive integer, got 2.5"),
    ):
        with pytest.raises(ArgumentError, match=message):
            ts.TrainConfig(**keywords)


def test_event_writer_refuses_what_is_not_a_chunk(tmp_path):
    out = tmp_path / "w.root"
    with ts.EventWriter(out) as writer:
        with pytest.raises(ArgumentError, match="chunk: must be a mapping of branch names to "
                                                "arrays, got str"):
            writer.write("a string")
        with pytest.raises(ArgumentError, match="different lengths"):
            writer.write({"a": np.zeros(3), "b": np.zeros(4)})
        writer.write({"a": np.zeros(3)})
        with pytest.raises(ArgumentError, match=r"has the branches \['b'\], the file has \['a'\]"):
            writer.write({"b": np.zeros(3)})
    with uproot.open(out) as file:
        assert file["Events"].num_entries == 3


@pytest.mark.parametrize("chunk_events", [-1, 0, 2.5])
def test_readers_refuse_a_chunk_size_that_is_not_positive(paired_sample, tmp_path,
                                                          chunk_events):
    from _lhe import write_lhe

    lhe = write_lhe(tmp_path / "p.lhe", paired_sample["z"][:20])
    for path in (paired_sample["full"], lhe):
        with pytest.raises(ArgumentError, match="chunk_events: must be a positive integer"):
            ts.read_events(path, chunk_events=chunk_events) if path != lhe else list(
                ts.open_events(path).iterate(chunk_events=chunk_events)
            )
    with pytest.raises(ArgumentError, match="channel: unknown channel 'muon'"):
        ts.read_events(paired_sample["full"], channel="muon")


def test_run_options_are_one_object_or_the_same_keywords(paired_sample, tmp_path):
    from turbosim_hep.pipeline import RunOptions

    model, partons, full = paired_sample["model"], paired_sample["partons"], paired_sample["full"]
    by_keyword = ts.simulate_files(model, partons, tmp_path / "k.root", seed=3, progress=False,
                                   jobs=1, acceptance="off", oversample=2)
    options = RunOptions(seed=7, progress=False, jobs=1)
    by_object = ts.simulate_files(model, partons, tmp_path / "o.root", options=options,
                                  seed=3, acceptance="off", oversample=2)  # seed overrides
    assert by_keyword.written == by_object.written > 0
    with uproot.open(tmp_path / "k.root") as a, uproot.open(tmp_path / "o.root") as b:
        for branch in ("Electron_pt", "Jet_eta", "MET_pt", "replica"):
            assert np.array_equal(
                np.asarray(a["Events"][branch].array(library="np").tolist(), dtype=object),
                np.asarray(b["Events"][branch].array(library="np").tolist(), dtype=object),
            ), branch
    unfolded = ts.unfold_files(model, full, tmp_path / "u.root", options=options)
    assert unfolded.written > 0 and options.seed == 7  # the object is left as it was

    with pytest.raises(TypeError, match=r"simulate_files\(\) got an unexpected keyword "
                                        r"argument 'sed' \(its options: seed, device"):
        ts.simulate_files(model, partons, tmp_path / "x.root", sed=3)
    with pytest.raises(TypeError, match="unfold_files.*'oversample'"):
        ts.unfold_files(model, full, tmp_path / "x.root", oversample=3)
    with pytest.raises(TypeError, match="options must be a RunOptions"):
        ts.simulate_files(model, partons, tmp_path / "x.root", options={"seed": 1})
    assert sorted(os.listdir(tmp_path)) == ["k.root", "o.root", "u.root"]
