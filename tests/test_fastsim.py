"""The coffea plugin: 4-vector collections, parton sources, executors, pickling."""

from __future__ import annotations

import pickle

import awkward as ak
import numpy as np
import pylhe
import pytest
import torch
from _delphes import delphes_particles, write_delphes
from _lhe import write_lhe
from _ttbar import smear, ttbar_partons, write_sample

from turbosim_hep.coffea import FastSim, FastSimProcessor
from turbosim_hep.io.schemas import open_nanoevents
from turbosim_hep.model import TurboSim, save_checkpoint
from turbosim_hep.pipeline.run import run_files as run
from turbosim_hep.processor import make_executor, run_fileset

N = 1200


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fastsim")
    z = ttbar_partons(N, seed=21)
    x = smear(z, seed=22)
    model = TurboSim.from_config(None, x=torch.from_numpy(x), z=torch.from_numpy(z))
    save_checkpoint(directory / "model.pt", model)
    return {
        "dir": directory,
        "model": str(directory / "model.pt"),
        "partons": write_sample(directory / "partons.root", z, None),
        "z": z,
    }


def nanoevents(path: str, **kwargs):
    return open_nanoevents(path, mode="eager", metadata={"filename": path, "entrystart": 0}, **kwargs)


def test_collections_behave_as_four_vectors_and_match_simulate(setup, tmp_path):
    events = nanoevents(setup["partons"])
    sim = FastSim(setup["model"], seed=4)(events)
    assert sim.mask.all() and len(sim.Jet) == N
    assert type(sim.Electron).__name__ == "ElectronArray"
    assert type(sim.Jet).__name__ == "JetArray"
    assert type(sim.MissingET).__name__ == "MissingETArray"
    p4 = sim.x.reshape(N, 6, 4)
    np.testing.assert_allclose(ak.to_numpy(sim.Electron.px[:, 0]), p4[:, 0, 0], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(sim.MissingET.pt), np.hypot(p4[:, 1, 0], p4[:, 1, 1]), rtol=1e-5)
    total = sim.Electron[:, 0] + sim.Jet[:, 0] + sim.Jet[:, 1]
    expected = p4[:, 0] + p4[:, 2] + p4[:, 3]
    mass = np.sqrt(np.maximum(expected[:, 3] ** 2 - np.sum(expected[:, :3] ** 2, axis=1), 0))
    np.testing.assert_allclose(ak.to_numpy(total.mass), mass, rtol=1e-3, atol=0.05)
    assert ak.all(sim.Jet.pt[:, :-1] >= sim.Jet.pt[:, 1:])  # pT order
    assert ak.all(sim.Electron.delta_r(sim.Jet[:, 0]) >= 0)
    # the same events, seed and file give what `turbosim-hep simulate` writes
    run("simulate", setup["model"], [setup["partons"]], tmp_path / "sim.root", seed=4, progress=False)
    written = open_nanoevents(tmp_path / "sim.root", mode="eager")
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(written.Jet.pt)), ak.to_numpy(ak.flatten(sim.Jet.pt)),
                               rtol=1e-5, atol=1e-3)


def test_delphes_and_lhe_parton_sources(setup, tmp_path):
    z = setup["z"][:90]
    good = np.arange(90) % 4 != 0
    fastsim = FastSim(setup["model"], seed=2)
    particles = delphes_particles(z, good)  # as Delphes3Schema names the fields
    particles = ak.zip({("Energy" if f == "E" else f): particles[f] for f in particles.fields})
    from_delphes = fastsim.simulate(particles, file="delphes.root")
    np.testing.assert_array_equal(from_delphes.mask, good)
    write_delphes(str(tmp_path / "delphes.root"), z, good)
    run("simulate", setup["model"], [tmp_path / "delphes.root"], tmp_path / "d.root", seed=2, progress=False)
    written = open_nanoevents(tmp_path / "d.root", mode="eager")
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(written.Jet.pt)),
                               ak.to_numpy(ak.flatten(from_delphes.Jet.pt)), rtol=1e-5, atol=1e-3)

    lhe = write_lhe(tmp_path / "run.lhe", z, wrong_final_state=~good)
    particles = pylhe.to_awkward(pylhe.LHEFile.fromfile(lhe).events).particles
    from_lhe = fastsim.simulate(particles, file="run.lhe")
    np.testing.assert_array_equal(from_lhe.mask, good)
    run("simulate", setup["model"], [lhe], tmp_path / "lhe.root", seed=2, progress=False)
    written = open_nanoevents(tmp_path / "lhe.root", mode="eager")
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(written.Jet.pt)),
                               ak.to_numpy(ak.flatten(from_lhe.Jet.pt)), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="unknown parton collection"):
        fastsim.simulate(ak.Array([[{"a": 1.0}]]), file="x")


def test_processor_pickles_without_the_model(setup):
    processor = FastSimProcessor(setup["model"], seed=1)
    assert processor.fastsim.model is not None  # loaded in this process: must still not travel
    payload = pickle.dumps(processor)
    assert len(payload) < 2_000
    assert pickle.loads(payload).fastsim.model_path == setup["model"]


def test_identical_histograms_across_executors_and_chunk_sizes(setup):
    distributed = pytest.importorskip("distributed")
    fileset = {"fastsim": [setup["partons"]]}
    processor = FastSimProcessor(setup["model"], seed=7, keep_values=False)
    outputs = [
        run_fileset(fileset, processor, executor=make_executor("iterative", progress=False), chunksize=N),
        run_fileset(fileset, processor, executor=make_executor("iterative", progress=False), chunksize=170),
        run_fileset(fileset, processor, executor=make_executor("futures", workers=2, progress=False),
                    chunksize=400),
    ]
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            outputs.append(run_fileset(
                fileset, processor, executor=make_executor("dask", client=client, progress=False),
                chunksize=300,
            ))
    reference = outputs[0]["hists"]
    assert reference["x_E_jet1"].sum(flow=True).value == N  # every event simulated and filled
    for output in outputs[1:]:
        assert output["hists"].keys() == reference.keys()
        for name, h in reference.items():
            np.testing.assert_array_equal(output["hists"][name].values(flow=True), h.values(flow=True), err_msg=name)
    assert sum(outputs[0]["cutflow"]["fastsim"].values()) > 0


def test_real_delphes_nanoevents(setup, delphes_file):
    events = open_nanoevents(delphes_file, metadata={"filename": str(delphes_file), "entrystart": 0})
    sim = FastSim(setup["model"])(events)
    assert len(sim.mask) == len(events) and not sim.mask.any()  # tt-bar H: not the final state
    assert len(sim.Jet) == 0
