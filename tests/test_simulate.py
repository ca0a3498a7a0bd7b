"""`turbosim-hep simulate` and `unfold`: formats, selection, seeding, metadata, bad input."""

from __future__ import annotations

import os

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

from turbosim_hep import __version__, layout
from turbosim_hep.cli import main
from turbosim_hep.errors import InputError, OutputError, TurbosimError
from turbosim_hep.inference import file_sha256
from turbosim_hep.io import read_events
from turbosim_hep.io.hdf5 import write_reference_h5
from turbosim_hep.io.schemas import open_nanoevents
from turbosim_hep.io.writer import (
    EventWriter,
    event_columns,
    parse_compression,
    parton_columns,
    read_metadata,
)
from turbosim_hep.model import load_model
from turbosim_hep.pipeline import simulate_files, stages, unfold_files
from turbosim_hep.pipeline.executors import ordered_results
from turbosim_hep.random import event_normal, stream_id

from _delphes import write_delphes
from _lhe import write_lhe
from _ttbar import write_sample
from conftest import PAIRED_EVENTS

N = PAIRED_EVENTS


@pytest.fixture(scope="module")
def files(paired_sample, tmp_path_factory) -> dict[str, str]:
    """The shared model and files (`conftest.paired_sample`) and a directory of this module."""
    return paired_sample | {"dir": str(tmp_path_factory.mktemp("simulate"))}


def outputs(path: str) -> dict[str, np.ndarray]:
    """The output's X (from the cartesian branches), partons and event ids."""
    with uproot.open(path) as file:
        a = file["Events"].arrays()
    n = len(a)
    electron = np.stack(
        [ak.to_numpy(ak.flatten(a[f"Electron_{c}"])) for c in ("px", "py", "pz", "E")], -1
    )
    met = np.stack([ak.to_numpy(a[f"MET_{c}"]) for c in ("px", "py", "pt")], -1)
    met = np.insert(met, 2, 0.0, axis=1)  # pz = 0
    jets = np.stack(
        [ak.to_numpy(ak.flatten(a[f"Jet_{c}"])).reshape(n, 4) for c in ("px", "py", "pz", "E")], -1
    )
    x = np.concatenate([electron, met, jets.reshape(n, 16)], axis=1)
    return {"x": x, "event": a.event.to_numpy(), "source": a.source.to_numpy(), "arrays": a}


def reference_simulation(model_path, z, entry, seed, name) -> np.ndarray:
    """What the decoder gives for these events with the documented noise."""
    model = load_model(model_path)
    noise = event_normal(seed, stream_id(name), entry, model.decoder_noise_dim)
    with torch.inference_mode():
        return model.simulate(torch.from_numpy(z), torch.from_numpy(noise)).numpy()


def test_simulate_project_file_matches_the_decoder(files, tmp_path):
    out = tmp_path / "sim.root"
    summary = simulate_files(files["model"], [files["partons"]], out, seed=5, progress=False)
    assert summary.written == N and summary.files[0].cutflow["all"] == N
    got = outputs(out)
    np.testing.assert_array_equal(got["event"], np.arange(N))
    np.testing.assert_array_equal(got["source"], 0)
    expected = reference_simulation(files["model"], files["z"], np.arange(N), 5, "partons.root")
    np.testing.assert_allclose(got["x"], expected, rtol=1e-4, atol=1e-2)
    partons = got["arrays"]
    assert ak.all(partons.nParton == 6)
    assert ak.all(partons.Parton_pdgId == np.asarray(layout.PARTON_PDG_IDS)[np.newaxis])
    for field in ("pt", "eta", "phi", "mass", "px", "py", "pz", "E"):
        assert f"Electron_{field}" in partons.fields and f"Jet_{field}" in partons.fields


def test_metadata(files, tmp_path):
    out = tmp_path / "sim.root"
    simulate_files(files["model"], [files["partons"]], out, seed=9, progress=False)
    meta = read_metadata(out)
    assert meta["model_sha256"] == file_sha256(files["model"])
    assert meta["seed"] == 9
    assert meta["turbosim_hep_version"] == __version__
    assert meta["inputs"] == ["partons.root"]
    assert meta["cutflow"][0]["finite_output"] == N
    assert meta["entries"] == N


def test_compression_is_a_choice_recorded_in_the_metadata(files, tmp_path):
    simulate_files(files["model"], [files["partons"]], tmp_path / "zstd.root", progress=False)
    assert read_metadata(tmp_path / "zstd.root")["compression"] == "zstd:1"
    reference = outputs(tmp_path / "zstd.root")["arrays"]
    for choice, recorded in (("lz4", "lz4:1"), ("zlib:6", "zlib:6"), ("lzma:1", "lzma:1")):
        out = tmp_path / f"{choice.replace(':', '')}.root"
        simulate_files(files["model"], [files["partons"]], out, compression=choice,
                       progress=False)
        assert read_metadata(out)["compression"] == recorded
        with uproot.open(out) as file:
            assert file.file.compression == parse_compression(recorded)
        assert ak.array_equal(outputs(out)["arrays"], reference)
    out = tmp_path / "unfolded.root"
    unfold_files(files["model"], [files["full"]], out, compression="lz4:9", progress=False)
    assert read_metadata(out)["compression"] == "lz4:9"


@pytest.mark.parametrize("command", ["simulate", "unfold"])
@pytest.mark.parametrize("value", ["gzip", "lz4:13"])
def test_bad_compression_is_a_one_line_error(files, tmp_path, capsys, command, value):
    out = tmp_path / "out.root"
    arguments = [command, files["model"], files["full"], "-o", str(out), "--quiet"]
    assert main(arguments + ["--compression", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"turbosim-hep {command}: error: --compression" in err
    assert os.listdir(tmp_path) == []


def test_seed_reproducible_and_independent_of_chunking(files, tmp_path):
    kwargs = {"progress": False}
    simulate_files(files["model"], [files["partons"]], tmp_path / "a.root", seed=1, **kwargs)
    simulate_files(files["model"], [files["partons"]], tmp_path / "b.root", seed=1, **kwargs)
    simulate_files(files["model"], [files["partons"]], tmp_path / "c.root", seed=1,
        chunk_events=333, batch_size=100, **kwargs)
    simulate_files(files["model"], [files["partons"]], tmp_path / "d.root", seed=2, **kwargs)
    a, b, c, d = (outputs(tmp_path / f"{k}.root")["x"] for k in "abcd")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-3)
    assert np.mean(np.isclose(a, d, rtol=1e-3)) < 0.5


def test_lhe_inputs_and_final_state_selection(files, tmp_path):
    z = files["z"][:200]
    wrong = np.arange(200) % 5 == 0
    plain = write_lhe(tmp_path / "run.lhe", z, wrong_final_state=wrong)
    zipped = write_lhe(tmp_path / "run2.lhe.gz", z)
    out = tmp_path / "sim.root"
    summary = simulate_files(files["model"], [plain, zipped], out, seed=3, jobs=1, progress=False)
    first, second = summary.files
    assert (first.total, first.selected, first.written) == (200, 160, 160)
    assert (second.total, second.written) == (200, 200)
    got = outputs(out)
    np.testing.assert_array_equal(got["event"], np.r_[np.flatnonzero(~wrong), np.arange(200)])
    np.testing.assert_array_equal(got["source"], np.r_[np.zeros(160), np.ones(200)])
    kept = np.flatnonzero(~wrong)
    expected = reference_simulation(files["model"], z[~wrong], kept, 3, "run.lhe")
    np.testing.assert_allclose(got["x"][:160], expected, rtol=1e-3, atol=2e-2)


def test_delphes_partons(files, tmp_path):
    z = files["z"][:100]
    good = np.arange(100) % 3 != 0
    path = str(tmp_path / "delphes.root")
    write_delphes(path, z, good)
    out = tmp_path / "sim.root"
    summary = simulate_files(files["model"], [path], out, seed=4, progress=False)
    assert summary.files[0].written == good.sum()
    got = outputs(out)
    np.testing.assert_array_equal(got["event"], np.flatnonzero(good))
    kept = np.flatnonzero(good)
    expected = reference_simulation(files["model"], z[good], kept, 4, "delphes.root")
    np.testing.assert_allclose(got["x"], expected, rtol=1e-4, atol=1e-2)


def test_real_delphes_file_without_the_reference_final_state(files, delphes_file, tmp_path):
    # pp -> ttH: one event decays as t -> b e+ nu, t-bar -> b-bar u-bar d (the
    # charge-conjugate channel), none in the reference channel
    out = tmp_path / "sim.root"
    with pytest.raises(InputError, match="no usable events"):
        simulate_files(files["model"], [delphes_file], out, progress=False, channel="electron")
    assert os.listdir(tmp_path) == []
    summary = simulate_files(files["model"], [delphes_file], out, progress=False)
    assert summary.written == 1
    with uproot.open(out) as file:
        events = file["Events"].arrays()
    assert events["Electron_charge"].tolist() == [[1]]
    assert events["Parton_pdgId"].tolist() == [layout.parton_pdg_ids("positron").tolist()]


def test_output_opens_in_coffea(files, tmp_path):
    out = tmp_path / "sim.root"
    simulate_files(files["model"], [files["partons"]], out, progress=False)
    events = open_nanoevents(out, mode="eager")
    assert len(events) == N
    electron, jets = events.Electron[:, 0], events.Jet
    stored = outputs(out)["x"]  # the px, py, pz, E branches as uproot reads them
    np.testing.assert_allclose(ak.to_numpy(electron.px), stored[:, 0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(jets[:, 3].energy), stored[:, 23], rtol=1e-4, atol=1e-3)
    total = electron + jets[:, 0] + jets[:, 1] + jets[:, 2] + jets[:, 3]
    assert ak.all(total.mass > 0)
    met = events.MET
    assert ak.all(np.abs(met.pt - np.hypot(met.px, met.py)) < 1e-3 * met.pt + 1e-3)
    assert ak.all(events.Parton.pdgId == np.asarray(layout.PARTON_PDG_IDS)[np.newaxis])


def test_unfold(files, tmp_path):
    out = tmp_path / "unfolded.root"
    summary = unfold_files(files["model"], [files["full"]], out, seed=6, progress=False)
    assert summary.written == N
    with uproot.open(out) as file:
        a = file["Events"].arrays()
    z = np.stack(
        [ak.to_numpy(ak.flatten(a[f"Parton_{c}"])).reshape(N, 6) for c in ("px", "py", "pz", "E")],
        -1,
    )
    model = load_model(files["model"])
    noise = event_normal(6, stream_id("full.root"), np.arange(N), model.encoder_noise_dim)
    with torch.inference_mode():
        expected = model.unfold(torch.from_numpy(files["x"]), torch.from_numpy(noise)).numpy()
    np.testing.assert_allclose(z.reshape(N, 24), expected, rtol=1e-4, atol=1e-2)
    assert "Electron_pt" in a.fields and "Jet_pt" in a.fields
    events = open_nanoevents(out, mode="eager")
    assert ak.all(events.Parton.pdgId == np.asarray(layout.PARTON_PDG_IDS)[np.newaxis])


def test_unfold_applies_the_reference_selection(files, mixed_file, tmp_path):
    path, truth = mixed_file
    summary = unfold_files(
        files["model"], [path], tmp_path / "u.root", progress=False, channel="electron"
    )
    clean = (truth["n_electrons"] == 1) & (truth["n_muons"] == 0) & (truth["n_photons"] == 0) & (
        truth["n_jets"] == 4
    )
    assert summary.written == np.count_nonzero(clean & (truth["charge"] == -1))
    # both channels: the events of a single positron too, unfolded in their own frame
    summary = unfold_files(files["model"], [path], tmp_path / "both.root", progress=False)
    assert summary.written == np.count_nonzero(clean)
    with uproot.open(tmp_path / "both.root") as file:
        events = file["Events"].arrays()
    positron = ak.to_numpy(events.Electron_charge[:, 0]) == 1
    assert positron.sum() == np.count_nonzero(clean & (truth["charge"] == 1)) > 0
    ids = ak.to_numpy(events.Parton_pdgId)
    assert np.all(ids[positron] == layout.parton_pdg_ids("positron"))
    assert np.all(ids[~positron] == layout.parton_pdg_ids("electron"))
    with pytest.raises(InputError, match="LHE file holds partons only"):
        unfold_files(files["model"], [write_lhe(tmp_path / "a.lhe", files["z"][:5])],
            tmp_path / "v.root", progress=False)


def test_parallel_jobs_and_dask_give_the_same_output(files, tmp_path):
    distributed = pytest.importorskip("distributed")
    inputs = [files["partons"], write_sample(tmp_path / "second.root", files["z"][:500], None)]
    simulate_files(files["model"], inputs, tmp_path / "serial.root", jobs=1, progress=False)
    simulate_files(files["model"], inputs, tmp_path / "local.root", jobs=2, progress=False)
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        simulate_files(files["model"], inputs, tmp_path / "dask.root",
            scheduler=cluster.scheduler_address, progress=False)
    serial, local, dask = (outputs(tmp_path / f"{k}.root") for k in ("serial", "local", "dask"))
    for other in (local, dask):
        np.testing.assert_array_equal(other["source"], serial["source"])
        np.testing.assert_array_equal(other["event"], serial["event"])
        np.testing.assert_allclose(other["x"], serial["x"], rtol=1e-5, atol=1e-3)
    assert sorted(os.listdir(tmp_path)) == ["dask.root", "local.root", "second.root", "serial.root"]


def test_hdf5_export_input(files, tmp_path):
    batch, _ = read_events(files["full"])
    export = tmp_path / "export.h5"
    write_reference_h5(export, batch)
    summary = simulate_files(files["model"], [export], tmp_path / "sim.root", seed=8,
                             progress=False)
    assert summary.files[0].cutflow == {"all": N, "parton_record": N, "finite_input": N,
                                        "finite_output": N}
    got = outputs(tmp_path / "sim.root")
    np.testing.assert_array_equal(got["event"], batch.entry)
    expected = reference_simulation(files["model"], batch.z, batch.entry, 8, "export.h5")
    np.testing.assert_allclose(got["x"], expected, rtol=1e-4, atol=1e-2)
    summary = unfold_files(files["model"], [export], tmp_path / "unf.root", progress=False)
    assert summary.written == N


def test_executors_keep_the_task_order_and_raise_the_first_error():
    words = ["top", "bottom", "charm", "strange"]
    expected = [stream_id(w) for w in words]
    assert list(ordered_results(stream_id, words, jobs=1)) == expected
    assert list(ordered_results(stream_id, words, jobs=2)) == expected
    with pytest.raises(ValueError, match="invalid literal"):
        list(ordered_results(int, ["1", "2", "x", "4"], jobs=2))


# --- bad input -------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nonfinite_inputs_are_counted_and_dropped(files, tmp_path):
    z = files["z"][:300].copy()
    z[5, 3] = np.nan
    z[17, 0] = np.inf
    z[42, 20] = -np.inf
    path = str(tmp_path / "nan.root")
    with EventWriter(path) as writer, np.errstate(invalid="ignore"):
        writer.write(event_columns(np.arange(300)) | parton_columns(z))
    summary = simulate_files(files["model"], [path], tmp_path / "out.root", progress=False)
    assert summary.files[0].nonfinite_inputs == 3
    assert summary.written == 297
    got = outputs(tmp_path / "out.root")
    assert np.isfinite(got["x"]).all()
    assert not np.isin([5, 17, 42], got["event"]).any()


@pytest.mark.parametrize(
    "make_model, message",
    [
        (lambda d: d / "missing.pt", "no such file"),
        (lambda d: (d / "text.pt").write_text("not a model") and d / "text.pt",
         "not a (readable )?turbosim-hep model"),
        (lambda d: torch.save({"weights": torch.zeros(3)}, d / "other.pt") or d / "other.pt",
         "not a turbosim-hep model"),
    ],
)
def test_bad_model_files(files, tmp_path, make_model, message):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    model = make_model(model_dir)
    out = tmp_path / "out.root"
    with pytest.raises(InputError, match=message):
        simulate_files(model, [files["partons"]], out, progress=False)
    assert not out.exists() and [p for p in os.listdir(tmp_path) if p != "models"] == []


def test_empty_input_reports_every_cut(files, tmp_path):
    path = str(tmp_path / "empty.root")
    with EventWriter(path) as writer:
        writer.write(event_columns(np.arange(0)) | parton_columns(files["z"][:0]))
    with pytest.raises(InputError, match="no usable events \\(all: 0, parton_record: 0, "
                       "finite_input: 0, finite_output: 0\\)"):
        simulate_files(files["model"], [path], tmp_path / "out.root", progress=False)


def test_input_errors_leave_no_output(files, tmp_path):
    truncated = write_lhe(tmp_path / "cut.lhe", files["z"][:30], cut_after=20)
    no_partons = write_sample(tmp_path / "reco.root", None, files["x"][:10])
    out = tmp_path / "out.root"
    cases = [
        ([truncated], "cut off"),
        ([files["partons"], truncated], "cut off"),
        ([no_partons], "lacks branches"),
        ([tmp_path / "missing.root"], "no such file"),
    ]
    for inputs, message in cases:
        with pytest.raises(InputError, match=message):
            simulate_files(files["model"], inputs, out, jobs=1, progress=False)
        assert not out.exists()
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    out.write_text("keep me")
    with pytest.raises(OutputError, match="exists"):
        simulate_files(files["model"], [files["partons"]], out, progress=False)
    assert out.read_text() == "keep me"
    with pytest.raises(TurbosimError, match="seed"):
        simulate_files(files["model"], [files["partons"]], tmp_path / "o.root", seed=-1)


@pytest.mark.parametrize(
    ("stage", "error"),
    [(stages.Planner, ValueError("bad chunk")), (stages.Inference, RuntimeError("device lost")),
     (stages.ChunkWriter, OSError("no space left on device"))],
    ids=["reader", "model", "writer"],
)
def test_a_failing_stage_stops_the_run_and_leaves_nothing(files, tmp_path, monkeypatch,
                                                          stage, error):
    calls = []

    def fail_on_the_second_chunk(self, chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise error
        return original(self, chunk)

    original = stage.__call__
    monkeypatch.setattr(stage, "__call__", fail_on_the_second_chunk)
    with pytest.raises(type(error), match=str(error)):
        simulate_files(files["model"], [files["partons"]], tmp_path / "out.root",
                       chunk_events=100, progress=False)
    assert len(calls) == 2  # the other stages stopped too: no further chunk reached it
    assert os.listdir(tmp_path) == []


def test_cli_one_line_errors_and_summary(files, tmp_path, capsys):
    truncated = write_lhe(tmp_path / "cut.lhe.gz", files["z"][:30], cut_after=20)
    assert main(["simulate", files["model"], truncated, "-o", str(tmp_path / "o.root")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cut.lhe.gz" in err and "cut off" in err
    assert not (tmp_path / "o.root").exists()
    out = str(tmp_path / "ok.root")
    arguments = ["simulate", files["model"], files["partons"], "-o", out, "--seed", "3", "--quiet"]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert f"{N} of {N} events written" in printed and "events/s" in printed


def test_errors_cross_process_boundaries():
    import pickle

    for error in (InputError("a.root", "bad"), OutputError("b.root", "exists")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.path, copy.problem) == (error.path, error.problem)


def test_inputs_sharing_a_name_warn(files, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inputs = [write_sample(tmp_path / d / "partons.root", files["z"][:50], None) for d in "ab"]
    with pytest.warns(UserWarning, match="same noise"):
        simulate_files(files["model"], inputs, tmp_path / "o.root", jobs=1, progress=False)


@pytest.mark.parametrize("direction", ["simulate", "unfold"])
def test_input_columns_are_made_once_and_taken_by_rows(files, direction):
    """The replicas of a chunk share its input branches (``--oversample``): those of a
    replica keeping some events equal the branches made from those events alone."""
    from turbosim_hep.pipeline.columns import InputColumns

    z = files["z"][:40]
    conjugate = np.arange(40) % 3 == 0
    shared = InputColumns.of(np.arange(40), z, direction, 2, conjugate)
    assert shared.take(np.arange(40)) is shared
    rows = np.array([1, 5, 6, 30, 39])
    taken = shared.take(rows)
    alone = InputColumns.of(rows, z[rows], direction, 2, conjugate[rows])
    assert len(taken) == len(rows)
    for made, expected in ((taken.ids, alone.ids), (taken.objects, alone.objects)):
        assert list(made) == list(expected)
        for name in made:
            assert ak.to_list(made[name]) == ak.to_list(expected[name]), name
