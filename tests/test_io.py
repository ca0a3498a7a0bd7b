"""Readers and writers: Delphes files, the project's own files, HDF5, bad input."""

from __future__ import annotations

import os
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from turbosim_hep import layout
from turbosim_hep.errors import InputError, OutputError, TurbosimError
from turbosim_hep.io import (
    Cutflow,
    EventFile,
    EventWriter,
    object_counts,
    open_events,
    read_events,
    read_metadata,
)
from turbosim_hep.io.hdf5 import read_reference_h5, write_reference_h5
from turbosim_hep.io.lhe import LHEFile
from turbosim_hep.io.schemas import open_nanoevents
from turbosim_hep.io.selection import select_events
from turbosim_hep.io.writer import (
    compression_text,
    event_columns,
    parse_compression,
    parton_columns,
    read_chunks,
    reco_columns,
)
from turbosim_hep.kinematics import p4_from_ptetaphim

from _lhe import write_lhe
from _ttbar import ttbar_partons


def plain_uproot_cutflow(path) -> dict[str, int]:
    """The reference selection counted directly with uproot, independently of the reader."""
    t = uproot.open(path)["Delphes"]
    a = t.arrays(["Electron_size", "Electron.Charge", "Muon_size", "Photon_size", "Jet_size"])
    one_e = a["Electron_size"] == 1
    charge = one_e & ak.fill_none(ak.firsts(a["Electron.Charge"]) == -1, False)
    no_mu = charge & (a["Muon_size"] == 0)
    no_ph = no_mu & (a["Photon_size"] == 0)
    four = no_ph & (a["Jet_size"] == 4)
    return {"all": len(a), "one_electron": int(ak.sum(one_e)),
            "electron_charge": int(ak.sum(charge)), "no_muon": int(ak.sum(no_mu)),
            "no_photon": int(ak.sum(no_ph)), "four_jets": int(ak.sum(four))}


def test_delphes_cutflow_matches_plain_uproot(delphes_file):
    event_file = EventFile(delphes_file)
    assert event_file.format == "delphes" and event_file.num_entries == 10
    _, cutflow = event_file.read(partons=False)
    assert cutflow.as_dict() == plain_uproot_cutflow(delphes_file)


def test_delphes_partons_of_ttH_are_not_the_reference_final_state(delphes_file):
    # pp -> ttH with hadronic W decays: no event has e- nu_e-bar from a W-, nothing is guessed
    batch, cutflow = read_events(delphes_file, detector=False)
    assert cutflow.as_dict() == {"all": 10, "parton_record": 0}
    assert batch.z.shape == (0, 24)


def test_delphes_x_space_is_built_from_pt_eta_phi():
    # A hand-written chunk with Delphes' branch names through the reader's selection:
    # events 0 and 2 pass (jets stored out of pT order), event 1 has two electrons.
    chunk = ak.Array({
        "Electron_size": np.array([1, 2, 1], np.int32),
        "Electron.PT": [[35.0], [40.0, 22.0], [61.5]],
        "Electron.Eta": [[0.4], [-1.0, 0.3], [-2.1]],
        "Electron.Phi": [[1.2], [0.1, -2.0], [-2.9]],
        "Electron.Charge": [[-1], [-1, 1], [-1]],
        "Muon_size": np.zeros(3, np.int32),
        "Photon_size": np.zeros(3, np.int32),
        "Jet_size": np.array([4, 4, 4], np.int32),
        "Jet.PT": [[50.0, 120.0, 30.0, 75.0], [90.0, 80.0, 70.0, 60.0], [210.0, 44.0, 97.0, 25.5]],
        "Jet.Eta": [[0.1, -0.5, 2.2, 1.3], [0.0, 0.0, 0.0, 0.0], [-0.7, 3.1, 0.05, -1.9]],
        "Jet.Phi": [[3.0, -1.0, 0.5, -2.5], [0.0, 1.0, 2.0, 3.0], [0.2, -0.2, 2.8, -3.1]],
        "MissingET.MET": [[44.0], [10.0], [130.0]],
        "MissingET.Phi": [[-0.6], [0.0], [2.4]],
    })
    cutflow = Cutflow()
    batch = select_events(chunk, "delphes", start=10, detector=True, partons=False, cutflow=cutflow)
    np.testing.assert_array_equal(batch.entry, [10, 12])
    assert cutflow.as_dict() == {"all": 3, "one_electron": 2, "electron_charge": 2, "no_muon": 2,
                                 "no_photon": 2, "four_jets": 2}

    def p4(pt, eta, phi):
        v = vector.obj(pt=pt, eta=eta, phi=phi, mass=0.0)
        return [v.px, v.py, v.pz, v.E]

    for row, event in zip(batch.x.reshape(-1, 6, 4), (0, 2), strict=True):
        e = chunk[event]
        met, met_phi = e["MissingET.MET"][0], e["MissingET.Phi"][0]
        jets = sorted(zip(e["Jet.PT"], e["Jet.Eta"], e["Jet.Phi"], strict=True), reverse=True)
        expected = [
            p4(e["Electron.PT"][0], e["Electron.Eta"][0], e["Electron.Phi"][0]),
            [met * np.cos(met_phi), met * np.sin(met_phi), 0.0, met],
            *(p4(*jet) for jet in jets),
        ]
        np.testing.assert_allclose(row, np.array(expected), rtol=1e-5, atol=1e-4)


def test_cutflow_and_selection_on_own_file(mixed_file):
    path, truth = mixed_file
    batch, cutflow = read_events(path)
    one_e = truth["n_electrons"] == 1
    charge = one_e & (truth["charge"] == -1)
    no_mu = charge & (truth["n_muons"] == 0)
    no_ph = no_mu & (truth["n_photons"] == 0)
    four = no_ph & (truth["n_jets"] == 4)
    selected = four & truth["complete"]
    assert cutflow.as_dict() == {
        "all": 600, "one_electron": one_e.sum(), "electron_charge": charge.sum(),
        "no_muon": no_mu.sum(), "no_photon": no_ph.sum(), "four_jets": four.sum(),
        "parton_record": selected.sum(),
    }
    np.testing.assert_array_equal(batch.entry, np.flatnonzero(selected))
    np.testing.assert_allclose(batch.z, truth["z"][selected], rtol=2e-5, atol=2e-4)
    x = batch.x.reshape(-1, 6, 4)
    jet_pt = np.hypot(x[:, 2:, 0], x[:, 2:, 1])
    assert np.all(np.diff(jet_pt, axis=1) <= 0)
    np.testing.assert_array_equal(x[:, 1, 2], 0.0)  # MET pz
    np.testing.assert_allclose(x[:, 1, 3], np.hypot(x[:, 1, 0], x[:, 1, 1]), rtol=1e-6)
    np.testing.assert_allclose(x[..., 3], np.linalg.norm(x[..., :3], axis=-1), rtol=1e-5)


def test_streaming_in_small_chunks_gives_the_same_events(mixed_file):
    path, _ = mixed_file
    whole, cutflow = read_events(path)
    parts = list(EventFile(path).iterate(chunk_events=37))
    assert len(parts) > 10
    joined = type(whole).concatenate(parts)
    np.testing.assert_array_equal(joined.entry, whole.entry)
    np.testing.assert_array_equal(joined.x, whole.x)
    np.testing.assert_array_equal(joined.z, whole.z)


def physical_events(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Physically valid Z (massive partons) and X (massless, jets in pT order) arrays."""
    rng = np.random.default_rng(seed)
    pt = rng.exponential(50, (n, 6)) + 5
    eta, phi = rng.normal(0, 1.5, (n, 6)), rng.uniform(-3, 3, (n, 6))
    z = p4_from_ptetaphim(pt, eta, phi, np.array([0, 0, 4.7, 4.7, 0.3, 0.3])).astype(np.float32)
    pt_x = np.sort(rng.exponential(50, (n, 6)) + 20, axis=1)[:, ::-1].copy()
    x = p4_from_ptetaphim(pt_x, rng.normal(0, 1.5, (n, 6)), rng.uniform(-3, 3, (n, 6)))
    x[:, 1, 2], x[:, 1, 3] = 0.0, pt_x[:, 1]
    return z.reshape(n, 24).astype(np.float32), x.reshape(n, 24).astype(np.float32)


def test_writer_reader_round_trip(tmp_path):
    z, x = physical_events(1000)
    path = tmp_path / "events.root"
    with EventWriter(path, metadata={"seed": 5}) as writer:
        for start in range(0, 1000, 256):
            chunk = slice(start, start + 256)
            writer.write(event_columns(np.arange(1000)[chunk] + 10)
                         | reco_columns(x[chunk], with_cartesian=True) | parton_columns(z[chunk]))
    batch, cutflow = read_events(path)
    assert cutflow.selected == 1000
    np.testing.assert_array_equal(batch.entry, np.arange(1000))
    np.testing.assert_allclose(batch.x, x, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(batch.z, z, rtol=1e-5, atol=1e-3)
    tree = uproot.open(path)["Events"]
    np.testing.assert_array_equal(tree["event"].array(library="np"), np.arange(1000) + 10)
    np.testing.assert_array_equal(tree["Jet_px"].array(library="np")[0], x[0, 8::4])
    assert read_metadata(path) == {"seed": 5, "entries": 1000}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("zstd", uproot.ZSTD(1)), ("lz4:12", uproot.LZ4(12)), ("zlib:9", uproot.ZLIB(9)),
     ("lzma:2", uproot.LZMA(2))],
)
def test_compression_values(tmp_path, text, expected):
    compression = parse_compression(text)
    assert compression == expected
    assert parse_compression(compression_text(compression)) == compression
    path = tmp_path / "events.root"
    with EventWriter(path, compression=compression) as writer:
        writer.write(event_columns(np.arange(1000)))
    with uproot.open(path) as file:
        assert file.file.compression == expected
        np.testing.assert_array_equal(file["Events"]["event"].array(library="np"),
                                      np.arange(1000))


@pytest.mark.parametrize(
    ("text", "message"),
    [("gzip", "expected one of zstd, lz4, zlib, lzma"), ("ZSTD:1", "expected one of"),
     ("zstd:", "expected one of"), ("zstd:fast", "expected one of"), ("lz4:-1", "expected"),
     ("lz4:13", "lz4:13: compression level must be between 0 and 12")],
)
def test_bad_compression_values(text, message):
    with pytest.raises(TurbosimError, match=message) as caught:
        parse_compression(text)
    assert "\n" not in str(caught.value)


def test_own_file_in_coffea_has_four_vector_collections(tmp_path):
    z, x = physical_events(50)
    path = tmp_path / "events.root"
    with EventWriter(path) as writer:
        writer.write(event_columns(np.arange(50)) | reco_columns(x) | parton_columns(z))
    events = open_nanoevents(path)
    lepton_jet = events.Electron[:, 0] + events.Jet[:, 0]
    expected = x[:, 0:4] + x[:, 8:12]
    mass = np.sqrt(np.maximum(expected[:, 3] ** 2 - np.sum(expected[:, :3] ** 2, axis=1), 0))
    np.testing.assert_allclose(ak.to_numpy(lepton_jet.mass), mass, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(ak.to_numpy(events.MET.px), x[:, 4], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(events.Parton.mass[:, 2]), 4.7, rtol=1e-2)
    assert ak.to_list(events.Parton.pdgId[0]) == layout.PARTON_PDG_IDS.tolist()


def test_generated_file_in_coffea_without_warnings(shipped_sample):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # coffea warned "Photon_mass already exists"
        events = open_nanoevents(shipped_sample)
        assert ak.all(events.Photon.mass == 0) and ak.all(events.Jet.pt > 0)
        assert len(events.Electron.charge) == len(events)


def test_delphes_file_in_coffea(delphes_file):
    events = open_nanoevents(delphes_file)
    assert len(events) == 10
    assert ak.all(events.Track.mass == 0)
    assert ak.all(events.Jet.pt > 0)


def test_hdf5_export_round_trip(mixed_file, tmp_path):
    path, _ = mixed_file
    batch, _ = read_events(path)
    out = tmp_path / "events.h5"
    write_reference_h5(out, batch)
    back = read_reference_h5(out)
    np.testing.assert_array_equal(back.z, batch.z)
    np.testing.assert_array_equal(back.x, batch.x)
    np.testing.assert_array_equal(back.entry, batch.entry)


def test_open_events_gives_one_protocol_for_every_format(mixed_file, tmp_path):
    path, _ = mixed_file
    root_batch, root_cutflow = read_events(path)
    h5 = tmp_path / "export.h5"
    write_reference_h5(h5, root_batch)
    z = ttbar_partons(50, seed=4)
    wrong = np.arange(50) % 4 == 0
    lhe = write_lhe(tmp_path / "run.lhe.gz", z, wrong_final_state=wrong)
    sources = {"turbosim": open_events(path), "hdf5": open_events(h5), "lhe": open_events(lhe)}
    for fmt, source in sources.items():
        assert source.format == fmt and source.has_partons
        cutflow = Cutflow()
        batches = list(source.iterate(detector=False, partons=True, cutflow=cutflow,
                                      chunk_events=16))
        batch = type(root_batch).concatenate(batches)
        assert batch.x is None and cutflow.total == source.num_entries
        assert list(cutflow.as_dict()) == ["all", layout.PARTON_CUT]
        if fmt == "lhe":
            np.testing.assert_array_equal(batch.entry, np.flatnonzero(~wrong))
            assert source.num_entries == 50 and not source.has_detector
        elif fmt == "hdf5":
            np.testing.assert_array_equal(batch.z, root_batch.z)
            np.testing.assert_array_equal(batch.entry, root_batch.entry)
    both, cutflow = sources["hdf5"].read(detector=True, partons=True)
    np.testing.assert_array_equal(both.x, root_batch.x)
    assert list(cutflow.as_dict()) == list(root_cutflow.as_dict())
    with pytest.raises(InputError, match="LHE file holds partons only"):
        sources["lhe"].require(detector=True, partons=False)
    assert isinstance(sources["lhe"], LHEFile)


def test_open_events_refuses_other_files(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(InputError, match="notes.txt: neither a ROOT, an HDF5 nor an LHE file"):
        open_events(path)
    with pytest.raises(InputError, match="no such file"):
        open_events(tmp_path / "missing.root")


def test_empty_file_has_every_cut_of_the_read(tmp_path):
    path = tmp_path / "empty.root"
    z, x = physical_events(0)
    with EventWriter(path) as writer:
        writer.write(event_columns(np.arange(0)) | reco_columns(x) | parton_columns(z))
    batch, cutflow = read_events(path, detector=True, partons=False)
    assert len(batch) == 0
    assert cutflow.as_dict() == dict.fromkeys(["all", *layout.SELECTION], 0)


def test_read_chunks_rewrite_the_same_file(mixed_file, tmp_path):
    path, _ = mixed_file
    copy = tmp_path / "copy.root"
    with EventWriter(copy) as writer:
        for chunk in read_chunks(path, step_bytes="20 kB"):
            writer.write(chunk)
    original, rewritten = uproot.open(path)["Events"], uproot.open(copy)["Events"]
    assert rewritten.keys() == original.keys()
    a, b = original.arrays(), rewritten.arrays()
    for name in original.keys():
        assert ak.type(a[name]) == ak.type(b[name])
        assert ak.all(a[name] == b[name]), name


def test_object_counts_of_jagged_collections():
    charge = ak.Array([[-1, 1], [], [1]])
    counts = object_counts(charge, np.array([0, 1, 0]), ak.Array([2, 0, 0]), np.array([4, 4, 3]))
    np.testing.assert_array_equal(counts.n_electrons, [2, 0, 1])
    np.testing.assert_array_equal(counts.electron_charge, [-1, 0, 1])
    np.testing.assert_array_equal(counts.n_photons, [2, 0, 0])
    assert isinstance(counts.n_photons, np.ndarray)


# --- bad input ------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        EventFile(tmp_path / "nope.root")


def test_not_a_root_file(tmp_path):
    path = tmp_path / "text.root"
    path.write_text("this is not ROOT\n")
    with pytest.raises(InputError, match=f"{path}: not a ROOT file"):
        EventFile(path)


def test_truncated_root_file(mixed_file, tmp_path):
    path, _ = mixed_file
    cut = tmp_path / "cut.root"
    cut.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(InputError, match="cut.root: "):
        read_events(cut)


def test_file_without_known_tree(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f["Other"] = {"a": np.arange(3)}
    with pytest.raises(InputError, match="no 'Delphes' or 'Events' tree"):
        EventFile(path)


def test_delphes_file_without_detector_objects(tmp_path):
    path = tmp_path / "generator_only.root"
    with uproot.recreate(path) as f:
        f.mktree("Delphes", {"Particle.PID": "var * int32"}, counter_name=lambda _: "Particle_size")
        f["Delphes"].extend({"Particle.PID": ak.Array([[11, -12], [5]])})
    event_file = EventFile(path)
    assert not event_file.has_detector
    with pytest.raises(InputError, match="lacks branches Electron_size"):
        read_events(path)


def test_output_in_missing_directory(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        EventWriter(tmp_path / "missing" / "out.root")


def test_existing_output_is_refused_unless_forced(tmp_path):
    path = tmp_path / "out.root"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--force"):
        EventWriter(path)
    z, x = physical_events(5)
    with EventWriter(path, force=True) as writer:
        writer.write(event_columns(np.arange(5)) | reco_columns(x) | parton_columns(z))
    assert read_events(path)[1].selected == 5


def test_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / "out.root"
    z, x = physical_events(5)
    with pytest.raises(RuntimeError, match="boom"):
        with EventWriter(path) as writer:
            writer.write(event_columns(np.arange(5)) | reco_columns(x) | parton_columns(z))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
