"""The coffea plugin: collections, parton sources, chunking, executors, pickling, imports."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import awkward as ak
import numpy as np
import pylhe
import pytest
import uproot

import turbosim_hep
from turbosim_hep import layout, physics
from turbosim_hep.coffea import FastSim, nanoaod_collections
from turbosim_hep.io.schemas import open_nanoevents
from turbosim_hep.kinematics import ptetaphim_from_p4
from turbosim_hep.pipeline.run import run_files as run
from turbosim_hep.validation.processor import FastSimProcessor
from turbosim_hep.validation.runner import make_executor, run_fileset

from _delphes import delphes_particles, write_delphes
from _lhe import write_lhe
from _ttbar import smear, ttbar_partons
from conftest import PAIRED_EVENTS

N = PAIRED_EVENTS


@pytest.fixture(scope="module")
def setup(paired_sample, tmp_path_factory):
    """The shared model and files (`conftest.paired_sample`) and a directory of this module."""
    return paired_sample | {"dir": tmp_path_factory.mktemp("fastsim")}


def nanoevents(path: str, **kwargs):
    metadata = {"filename": path, "entrystart": 0}
    return open_nanoevents(path, mode="eager", metadata=metadata, **kwargs)


def flat(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array, axis=None))


def test_collections_hold_exactly_the_models_x(setup):
    sim = FastSim(setup["model"], seed=4)(nanoevents(setup["partons"]))
    assert sim.mask.all() and len(sim.Jet) == N and sim.x.shape == (N, 24)
    assert type(sim.Electron).__name__ == "ElectronArray"
    assert type(sim.Jet).__name__ == "JetArray"
    assert type(sim.MissingET).__name__ == "MissingETArray"
    p4 = sim.x.reshape(N, 6, 4)
    for collection, objects in ((sim.Electron, p4[:, :1]), (sim.Jet, p4[:, 2:])):
        assert ak.all(ak.num(collection) == objects.shape[1])
        pt, eta, phi, mass = ptetaphim_from_p4(objects)
        for field, expected in (("pt", pt), ("eta", eta), ("phi", phi)):
            np.testing.assert_array_equal(flat(collection[field]), expected.reshape(-1))
        np.testing.assert_array_equal(flat(collection.mass), np.maximum(mass, 0).reshape(-1))
    np.testing.assert_array_equal(flat(sim.Electron.charge), -1)
    np.testing.assert_array_equal(flat(sim.Jet.charge), 0)
    np.testing.assert_array_equal(
        ak.to_numpy(sim.MissingET.pt), np.hypot(p4[:, 1, 0], p4[:, 1, 1])
    )
    np.testing.assert_array_equal(
        ak.to_numpy(sim.MissingET.phi), np.arctan2(p4[:, 1, 1], p4[:, 1, 0])
    )
    # back to Cartesian through coffea's behaviours: the model's momenta
    np.testing.assert_allclose(ak.to_numpy(sim.Jet.px), p4[:, 2:, 0], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(sim.Jet.pz), p4[:, 2:, 2], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(sim.MissingET.px), p4[:, 1, 0], rtol=1e-5, atol=1e-3)
    assert ak.all(sim.Jet.pt[:, :-1] >= sim.Jet.pt[:, 1:])  # pT order


def test_nanoaod_behaviours_give_the_reconstructions_masses():
    x = smear(ttbar_partons(2000, seed=31), seed=32)
    electron, jet, met = nanoaod_collections(x)
    observed = physics.reconstruct(x, return_assignment=True)
    # the masses of the chosen assignment, summed as coffea candidates
    b_lep, w1, w2, b_had = (
        layout.ASSIGNMENTS[observed["assignment"], slot] for slot in range(4)
    )
    rows = np.arange(len(x))
    jets = [jet[rows, j] for j in (w1, w2, b_had)]
    w_had = jets[0] + jets[1]
    np.testing.assert_allclose(ak.to_numpy(w_had.mass), observed["m_W_had"], rtol=1e-3, atol=0.02)
    t_had = w_had + jets[2]
    np.testing.assert_allclose(ak.to_numpy(t_had.mass), observed["m_t_had"], rtol=1e-3, atol=0.02)
    # and the whole reconstruction from the collections
    from_collections = physics.reconstruct_objects(electron[:, 0], met, jet)
    for name in physics.OBSERVABLE_NAMES:
        np.testing.assert_allclose(from_collections[name], observed[name], rtol=1e-3, err_msg=name)
        assert np.median(np.abs(from_collections[name] / observed[name] - 1)) < 1e-6


def test_space_like_objects_get_mass_zero():
    x = smear(ttbar_partons(10, seed=33), seed=34)
    x[:, 3] *= 0.9  # the electron's energy below |p|
    electron, _, _ = nanoaod_collections(x)
    np.testing.assert_array_equal(flat(electron.mass), 0.0)


def test_chunks_and_simulate_give_the_same_events(setup, tmp_path):
    # bit for bit on the CPU; on CUDA the kernels may depend on the batch shape
    # (tests/test_cuda.py compares the devices within a tolerance)
    fastsim = FastSim(setup["model"], seed=4, device="cpu")
    whole = fastsim(nanoevents(setup["partons"]))
    # a chunk starting at entry 300 gives the rows 300... of the whole file
    chunk = open_nanoevents(
        setup["partons"], mode="eager", entry_start=300, entry_stop=700,
        metadata={"filename": setup["partons"], "entrystart": 300},
    )
    part = fastsim(chunk)
    np.testing.assert_array_equal(part.x, whole.x[300:700])
    # `turbosim-hep simulate` of the same file and seed writes the same events
    run("simulate", setup["model"], [setup["partons"]], tmp_path / "sim.root", seed=4,
        device="cpu", progress=False)
    written = open_nanoevents(tmp_path / "sim.root", mode="eager")
    np.testing.assert_array_equal(ak.to_numpy(written.event), np.flatnonzero(whole.mask))
    for name in ("pt", "eta", "phi"):
        np.testing.assert_array_equal(flat(written.Jet[name]), flat(whole.Jet[name]))
        np.testing.assert_array_equal(flat(written.Electron[name]), flat(whole.Electron[name]))
    np.testing.assert_array_equal(ak.to_numpy(written.MET.pt), ak.to_numpy(whole.MissingET.pt))
    np.testing.assert_array_equal(ak.to_numpy(written.MET.phi), ak.to_numpy(whole.MissingET.phi))


def test_delphes_and_lhe_parton_sources(setup, tmp_path):
    z = setup["z"][:90]
    good = np.arange(90) % 4 != 0
    fastsim = FastSim(setup["model"], seed=2)
    particles = delphes_particles(z, good)  # as Delphes3Schema names the fields
    particles = ak.zip({("Energy" if f == "E" else f): particles[f] for f in particles.fields})
    from_delphes = fastsim.simulate(particles, file="delphes.root")
    np.testing.assert_array_equal(from_delphes.mask, good)
    write_delphes(str(tmp_path / "delphes.root"), z, good)
    run("simulate", setup["model"], [tmp_path / "delphes.root"], tmp_path / "d.root", seed=2,
        progress=False)
    written = open_nanoevents(tmp_path / "d.root", mode="eager")
    np.testing.assert_allclose(flat(written.Jet.pt), flat(from_delphes.Jet.pt), rtol=1e-5,
                               atol=1e-3)

    lhe = write_lhe(tmp_path / "run.lhe", z, wrong_final_state=~good)
    particles = pylhe.to_awkward(pylhe.LHEFile.fromfile(lhe).events).particles
    from_lhe = fastsim.simulate(particles, file="run.lhe")
    np.testing.assert_array_equal(from_lhe.mask, good)
    run("simulate", setup["model"], [lhe], tmp_path / "lhe.root", seed=2, progress=False)
    written = open_nanoevents(tmp_path / "lhe.root", mode="eager")
    np.testing.assert_allclose(flat(written.Jet.pt), flat(from_lhe.Jet.pt), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="unknown parton collection"):
        fastsim.simulate(ak.Array([[{"a": 1.0}]]), file="x")


def test_processor_pickles_without_the_model(setup):
    processor = FastSimProcessor(setup["model"], seed=1)
    model = processor.fastsim.model  # loaded in this process: it must still not travel
    payload = pickle.dumps(processor)
    assert len(payload) < 2_000
    copy = pickle.loads(payload)
    assert copy.fastsim.model_path == setup["model"]
    assert copy.fastsim.model is model  # the process's cached model, not a shipped one


def test_identical_histograms_across_executors_and_chunk_sizes(setup):
    distributed = pytest.importorskip("distributed")
    fileset = {"fastsim": [setup["partons"]]}
    processor = FastSimProcessor(setup["model"], seed=7, keep_values=False)

    def iterative(chunksize):
        executor = make_executor("iterative", progress=False)
        return run_fileset(fileset, processor, executor=executor, chunksize=chunksize)

    futures = make_executor("futures", workers=2, progress=False)
    outputs = [
        iterative(N),
        iterative(170),
        run_fileset(fileset, processor, executor=futures, chunksize=400),
    ]
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            dask = make_executor("dask", client=client, progress=False)
            outputs.append(run_fileset(fileset, processor, executor=dask, chunksize=300))
    reference = outputs[0]["hists"]
    assert reference["x_E_jet1"].sum(flow=True).value == N  # every event simulated and filled
    for output in outputs[1:]:
        assert output["hists"].keys() == reference.keys()
        for name, h in reference.items():
            np.testing.assert_array_equal(
                output["hists"][name].values(flow=True), h.values(flow=True), err_msg=name
            )
    assert sum(outputs[0]["cutflow"]["fastsim"].values()) > 0


def test_real_delphes_nanoevents(setup, delphes_file, tmp_path):
    metadata = {"filename": str(delphes_file), "entrystart": 0}
    events = open_nanoevents(delphes_file, metadata=metadata)
    # pp -> ttH: no event of the reference channel, one of the charge-conjugate channel
    sim = FastSim(setup["model"], channel="electron")(events)
    assert len(sim.mask) == len(events) and not sim.mask.any() and len(sim.Jet) == 0
    sim = FastSim(setup["model"], seed=3)(events)
    assert sim.mask.tolist() == [i == 4 for i in range(len(events))]
    assert sim.conjugate.tolist() == [True] and sim.Electron.charge.tolist() == [[1]]
    # the plugin and the simulate command give the same event
    run("simulate", setup["model"], [str(delphes_file)], tmp_path / "sim.root", seed=3,
        progress=False)
    with uproot.open(tmp_path / "sim.root") as file:
        written = file["Events"].arrays()
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(written.Jet_pt)), ak.to_numpy(ak.flatten(sim.Jet.pt)), rtol=1e-6
    )


def test_importing_the_plugin_imports_no_analysis():
    code = (
        "import sys\n"
        "from turbosim_hep.coffea import FastSim\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    root = os.path.dirname(os.path.dirname(turbosim_hep.__file__))  # this source tree
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    modules = set(result.stdout.split())
    assert "turbosim_hep.coffea" in modules
    for name in ("hist", "pylhe", "turbosim_hep.validation", "turbosim_hep.physics",
                 "turbosim_hep.simulate", "turbosim_hep.pipeline"):
        assert name not in modules, name
