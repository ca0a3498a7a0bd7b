"""`simulate` with the model's acceptance, oversampling and the coffea plugin's twin."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from turbosim_hep.arguments import ArgumentError
from turbosim_hep.cli import main
from turbosim_hep.coffea import FastSim
from turbosim_hep.errors import InputError
from turbosim_hep.inference import BATCH_EVENTS
from turbosim_hep.io import EventWriter
from turbosim_hep.io.writer import event_columns, parton_columns
from turbosim_hep.model import (
    AcceptanceConfig,
    AcceptanceModel,
    load_acceptance,
    load_model,
    save_checkpoint,
)
from turbosim_hep.pipeline import simulate_files, stages
from turbosim_hep.pipeline.job import Job
from turbosim_hep.pipeline.run import inference_threads
from turbosim_hep.pipeline.stages import file_stages, torch_threads

#: The acceptance of the test model: the same for every event.
EPSILON = 0.3


@pytest.fixture(scope="module")
def model_with_acceptance(paired_sample, tmp_path_factory) -> str:
    """The shared test model with an acceptance epsilon(z) = `EPSILON` for every event."""
    acceptance = AcceptanceModel()
    with torch.no_grad():
        for network in acceptance.members:
            network[-1].weight.zero_()
            network[-1].bias.fill_(math.log(EPSILON / (1 - EPSILON)))
    path = tmp_path_factory.mktemp("acceptance") / "model.pt"
    save_checkpoint(
        path,
        load_model(paired_sample["model"]),
        acceptance={"config": acceptance.config.to_dict(), "state": acceptance.state_dict()},
    )
    return str(path)


def events(path) -> ak.Array:
    with uproot.open(path) as file:
        return file["Events"].arrays()


def test_sample_keeps_each_event_with_probability_epsilon_reproducibly(
    model_with_acceptance, paired_sample, tmp_path
):
    n = len(paired_sample["z"])
    summary = simulate_files(
        model_with_acceptance, [paired_sample["partons"]], tmp_path / "a.root", seed=5,
        progress=False,
    )
    kept = events(tmp_path / "a.root")
    # about EPSILON of the events, within five binomial standard deviations
    assert abs(len(kept) - EPSILON * n) < 5 * math.sqrt(n * EPSILON * (1 - EPSILON))
    assert summary.files[0].cutflow["accepted"] == len(kept) == summary.written
    assert summary.files[0].rejected == n - len(kept)
    np.testing.assert_allclose(ak.to_numpy(kept.acceptance), EPSILON, rtol=1e-6)
    np.testing.assert_array_equal(ak.to_numpy(kept.weight), 1.0)
    # the same decisions and outputs whatever the chunking
    simulate_files(
        model_with_acceptance, [paired_sample["partons"]], tmp_path / "b.root", seed=5,
        chunk_events=137, batch_size=50, progress=False,
    )
    again = events(tmp_path / "b.root")
    assert again.event.tolist() == kept.event.tolist()
    np.testing.assert_array_equal(ak.flatten(again.Jet_pt), ak.flatten(kept.Jet_pt))
    # another seed, other decisions
    simulate_files(
        model_with_acceptance, [paired_sample["partons"]], tmp_path / "c.root", seed=6,
        progress=False,
    )
    assert events(tmp_path / "c.root").event.tolist() != kept.event.tolist()


def test_weight_keeps_every_event_with_its_acceptance_and_input_weight(
    model_with_acceptance, paired_sample, tmp_path
):
    z = paired_sample["z"][:200]
    genweight = np.where(np.arange(200) % 2 == 0, 1.0, 4.0).astype(np.float32)  # thinned
    with EventWriter(tmp_path / "thinned.root") as writer:
        writer.write(event_columns(np.arange(200), weight=genweight) | parton_columns(z))
    simulate_files(
        model_with_acceptance, [tmp_path / "thinned.root"], tmp_path / "w.root",
        acceptance="weight", progress=False,
    )
    out = events(tmp_path / "w.root")
    assert len(out) == 200
    np.testing.assert_allclose(ak.to_numpy(out.weight), EPSILON * genweight, rtol=1e-6)


def test_off_is_the_simulation_without_acceptance(model_with_acceptance, paired_sample, tmp_path):
    simulate_files(
        model_with_acceptance, [paired_sample["partons"]], tmp_path / "off.root",
        acceptance="off", progress=False,
    )
    simulate_files(
        paired_sample["model"], [paired_sample["partons"]], tmp_path / "none.root",
        progress=False,
    )
    off, none = events(tmp_path / "off.root"), events(tmp_path / "none.root")
    assert "acceptance" not in off.fields and len(off) == len(paired_sample["z"])
    for name in none.fields:
        assert ak.all(off[name] == none[name]), name


def test_oversample_simulates_every_event_k_times_with_independent_noise(
    model_with_acceptance, paired_sample, tmp_path
):
    n, k = len(paired_sample["z"]), 3
    simulate_files(
        model_with_acceptance, [paired_sample["partons"]], tmp_path / "k.root",
        acceptance="off", oversample=k, progress=False,
    )
    out = events(tmp_path / "k.root")
    assert len(out) == k * n
    assert np.bincount(ak.to_numpy(out.replica)).tolist() == [n] * k
    np.testing.assert_allclose(ak.to_numpy(out.weight), 1 / k, rtol=1e-6)
    simulate_files(
        model_with_acceptance, [paired_sample["partons"]], tmp_path / "k1.root",
        acceptance="off", progress=False,
    )
    single = events(tmp_path / "k1.root")
    first = out[out.replica == 0]
    np.testing.assert_array_equal(ak.flatten(first.Jet_pt), ak.flatten(single.Jet_pt))
    second = out[out.replica == 1]
    assert not np.array_equal(ak.flatten(second.Jet_pt), ak.flatten(first.Jet_pt))
    np.testing.assert_array_equal(second.event, first.event)
    # with the acceptance sampled, every replica decides for itself
    simulate_files(
        model_with_acceptance, [paired_sample["partons"]], tmp_path / "ks.root",
        oversample=k, progress=False,
    )
    sampled = events(tmp_path / "ks.root")
    per_replica = [set(sampled.event[sampled.replica == r].tolist()) for r in range(k)]
    assert per_replica[0] != per_replica[1]
    assert abs(len(sampled) - EPSILON * k * n) < 5 * math.sqrt(k * n * EPSILON)


def test_oversampling_memory_is_bounded_by_the_chunk_whatever_k(
    model_with_acceptance, paired_sample, tmp_path, monkeypatch
):
    """The replicas of a chunk go through the model in groups of at most
    ``REPLICA_CHUNKS * chunk_events`` events, in order, and the output is the one of a run
    planning every replica at once."""
    n, k, chunk = len(paired_sample["z"]), 40, 500
    assert stages.replica_groups(chunk, k, chunk) == [range(0, 8), range(8, 16),
                                                     range(16, 24), range(24, 32),
                                                     range(32, 40)]
    assert stages.replica_groups(10, 5, 100) == [range(0, 5)]
    inferred = []
    original = stages.Inference.__call__

    def recording(self, planned):
        inferred.append(sum(len(r.rows) for r in planned.replicas))
        return original(self, planned)

    monkeypatch.setattr(stages.Inference, "__call__", recording)
    settings = {"acceptance": "weight", "oversample": k, "seed": 3, "progress": False}
    simulate_files(model_with_acceptance, paired_sample["partons"], tmp_path / "grouped.root",
                   chunk_events=chunk, **settings)
    assert sum(inferred) == k * n and max(inferred) <= stages.REPLICA_CHUNKS * chunk
    simulate_files(model_with_acceptance, paired_sample["partons"], tmp_path / "whole.root",
                   chunk_events=k * n, **settings)
    assert inferred[-1] == k * n  # one chunk, every replica in one group
    grouped, whole = events(tmp_path / "grouped.root"), events(tmp_path / "whole.root")
    order = np.lexsort((ak.to_numpy(grouped.event), ak.to_numpy(grouped.replica)))
    assert ak.array_equal(grouped[order], whole)


@pytest.mark.parametrize(
    ("acceptance", "oversample"), [("off", 1), ("sample", 3), ("weight", 2)]
)
def test_concurrent_stages_give_the_events_of_the_stages_in_turn(
    model_with_acceptance, paired_sample, tmp_path, acceptance, oversample
):
    """The queues and threads change nothing: the output is bit for bit the one of the
    same stages run one chunk after the other in one thread."""
    settings = {"seed": 7, "chunk_events": 400, "acceptance": acceptance,
                "oversample": oversample}
    path = paired_sample["partons"]
    simulate_files(model_with_acceptance, [path], tmp_path / "concurrent.root",
                   progress=False, device="cpu", **settings)
    job = Job("simulate", model_with_acceptance, device="cpu", batch_size=BATCH_EVENTS["cpu"],
              threads=inference_threads(1), **settings)
    with EventWriter(tmp_path / "in_turn.root") as writer, torch_threads(job.threads):
        stages = file_stages(path, job, writer)
        for chunk in stages.chunks:
            stages.write(stages.infer(chunk))
    concurrent, in_turn = events(tmp_path / "concurrent.root"), events(tmp_path / "in_turn.root")
    assert len(concurrent) > 0 and ak.array_equal(concurrent, in_turn)


@pytest.mark.parametrize("mode", ["weight", "sample"])
def test_events_with_a_nan_or_infinite_weight_are_counted_and_skipped(
    model_with_acceptance, paired_sample, tmp_path, mode
):
    z = paired_sample["z"][:200]
    weight = np.ones(len(z), dtype=np.float32)
    weight[[3, 50, 120]] = [np.nan, np.inf, -np.inf]
    weight[7] = -1.0  # a negative weight (NLO) is legitimate
    path = tmp_path / "weighted.root"
    with EventWriter(path) as writer:
        writer.write(event_columns(np.arange(len(z))) | parton_columns(z)
                     | {"genWeight": weight})
    summary = simulate_files(model_with_acceptance, [path], tmp_path / "out.root",
                             acceptance=mode, progress=False)
    assert summary.files[0].nonfinite_inputs == 3
    out = events(tmp_path / "out.root")
    assert np.isfinite(ak.to_numpy(out.weight)).all()
    assert not np.isin([3, 50, 120], ak.to_numpy(out.event)).any()
    if mode == "weight":
        assert len(out) == len(z) - 3
        np.testing.assert_allclose(ak.to_numpy(out.weight[out.event == 7]), -EPSILON,
                                   rtol=1e-6)


def test_bad_requests_are_one_line_errors(model_with_acceptance, paired_sample, tmp_path, capsys):
    partons = paired_sample["partons"]
    for oversample in (0, 65537, 10**12, 2.0, True):
        with pytest.raises(
            ArgumentError, match="oversample: must be an integer from 1 to 65536, got"
        ):
            simulate_files(model_with_acceptance, partons, tmp_path / "x.root",
                           oversample=oversample)
    with pytest.raises(InputError, match="has no acceptance .* --acceptance sample needs one"):
        simulate_files(paired_sample["model"], [partons], tmp_path / "x.root", acceptance="sample")
    with pytest.warns(UserWarning, match="has no acceptance"):
        simulate_files(paired_sample["model"], [partons], tmp_path / "y.root", progress=False)
    for arguments, fragment in (
        (["--oversample", "0"], "argument --oversample: must be an integer from 1 to 65536, "
                                "got 0"),
        (["--oversample", "1000000000000"], "--oversample: must be an integer from 1 to 65536"),
        (["--acceptance", "always"], "--acceptance must be one of sample, weight, off"),
    ):
        code = main(["simulate", model_with_acceptance, partons, "-o", str(tmp_path / "z.root"),
                     *arguments])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "x.root").exists() and not (tmp_path / "z.root").exists()
    # the default with a model without acceptance: one line of warning, then the run
    code = main(["simulate", paired_sample["model"], partons, "-o", str(tmp_path / "w.root"),
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and err == [
        "turbosim-hep simulate: warning: model.pt has no acceptance (its training files held "
        "no rejected events, or too few to learn from): every parton event is simulated as "
        "if it passed the selection"
    ]


def test_the_plugin_applies_the_acceptance_as_simulate_does(
    model_with_acceptance, paired_sample, tmp_path
):
    from turbosim_hep.io.schemas import open_nanoevents

    path = paired_sample["partons"]
    nano = open_nanoevents(path, mode="eager", metadata={"filename": path, "entrystart": 0})
    sim = FastSim(model_with_acceptance, seed=9)(nano)
    simulate_files(model_with_acceptance, [path], tmp_path / "s.root", seed=9, progress=False)
    written = events(tmp_path / "s.root")
    assert np.flatnonzero(sim.mask).tolist() == written.event.tolist()
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(sim.Jet.pt)), ak.to_numpy(ak.flatten(written.Jet_pt)), rtol=1e-6
    )
    weighted = FastSim(model_with_acceptance, seed=9, acceptance="weight")(nano)
    assert weighted.mask.all()
    np.testing.assert_allclose(weighted.weight, EPSILON, rtol=1e-6)
    with pytest.raises(ValueError, match="acceptance: must be one of sample, weight, off"):
        FastSim(model_with_acceptance, acceptance="maybe")


def test_an_acceptance_of_other_features_is_refused_in_one_line_but_off_still_runs(
    paired_sample, tmp_path, capsys
):
    """A model whose acceptance was trained on another version's features."""
    acceptance = AcceptanceModel()
    state = acceptance.state_dict()
    state["feature_mean"], state["feature_std"] = torch.zeros(27), torch.ones(27)
    model = tmp_path / "older.pt"
    save_checkpoint(
        model, load_model(paired_sample["model"]),
        acceptance={"config": acceptance.config.to_dict(), "state": state},
    )
    partons = paired_sample["partons"]
    code = main(["simulate", str(model), partons, "-o", str(tmp_path / "x.root")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1, lines
    assert "acceptance was trained on 27 features" in lines[0] and "--acceptance off" in lines[0]
    assert not (tmp_path / "x.root").exists()
    simulate_files(model, [partons], tmp_path / "off.root", acceptance="off", progress=False)
    assert len(events(tmp_path / "off.root")) == len(paired_sample["z"])
    from turbosim_hep.io.schemas import open_nanoevents

    nano = open_nanoevents(partons, mode="eager", metadata={"filename": partons, "entrystart": 0})
    assert FastSim(str(model), acceptance="off")(nano).mask.all()
    with pytest.raises(InputError, match="acceptance was trained on 27 features"):
        FastSim(str(model), acceptance="sample")(nano)


def test_an_acceptance_with_an_older_calibration_is_refused_in_one_line(
    paired_sample, tmp_path, capsys
):
    """A model stored before the calibration had the electron's |eta| offsets, or before
    the acceptance was an ensemble."""
    acceptance = AcceptanceModel()
    state = acceptance.state_dict()
    del state["eta_offsets"]
    model = tmp_path / "older.pt"
    save_checkpoint(
        model, load_model(paired_sample["model"]),
        acceptance={"config": acceptance.config.to_dict(), "state": state},
    )
    out = tmp_path / "x.root"
    code = main(["simulate", str(model), paired_sample["partons"], "-o", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1, lines
    assert "lacks eta_offsets" in lines[0] and "--acceptance off" in lines[0]
    assert not out.exists()
    # a single network where this version has an ensemble of members (before cross-fitting)
    single = {
        name.replace("members.0.", "net."): value
        for name, value in AcceptanceModel().state_dict().items()
        if not name.startswith("members.") or name.startswith("members.0.")
    }
    save_checkpoint(
        model, load_model(paired_sample["model"]),
        acceptance={"config": {"hidden": [32, 32]}, "state": single},
    )
    code = main(["simulate", str(model), paired_sample["partons"], "-o", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1, lines
    assert "single network" in lines[0] and "--acceptance off" in lines[0]
    # a complete acceptance of another architecture is this version's: it loads
    other = AcceptanceModel(AcceptanceConfig(hidden=[16]))
    save_checkpoint(
        model, load_model(paired_sample["model"]),
        acceptance={"config": other.config.to_dict(), "state": other.state_dict()},
    )
    assert load_acceptance(model).config.hidden == [16]
