"""Layouts as values: the built-ins, layout files, and a muon+jets sample through the readers."""

import pickle
from fractions import Fraction

import numpy as np
import pytest
from particle import Particle

from turbosim_hep import layout as L
from turbosim_hep.errors import InputError
from turbosim_hep.io.reader import EventFile, read_events

MUJETS_TOML = """\
name = "mujets"
description = "tt-bar -> mu- nu_mu-bar b b-bar u d-bar"
channels = ["muon", "antimuon"]
partons = [
  {name = "mu-", pdg_id = 13, parent = -24},
  {name = "nubar", pdg_id = -14, parent = -24},
  {name = "b", pdg_id = 5, parent = 6},
  {name = "bbar", pdg_id = -5, parent = -6},
  {name = "u", pdg_id = 2, parent = 24},
  {name = "dbar", pdg_id = -1, parent = 24},
]
objects = [
  {name = "mu-", kind = "muon", source = "mu-"},
  {name = "met", kind = "met", source = "nubar"},
  {name = "jet1", kind = "jet", source = "b"},
  {name = "jet2", kind = "jet", source = "bbar"},
  {name = "jet3", kind = "jet", source = "u"},
  {name = "jet4", kind = "jet", source = "dbar"},
]
"""


def charge(pdg_id: int) -> Fraction:
    return Fraction(Particle.from_pdgid(int(pdg_id)).charge).limit_denominator(3)


@pytest.mark.parametrize("layout", L.BUILTIN_LAYOUTS.values(), ids=L.BUILTIN_LAYOUTS)
def test_every_builtin_layout_conserves_charge_in_both_channels(layout):
    for channel in layout.channels:
        ids, parents = layout.parton_pdg_ids(channel), layout.parton_parent_pdg_ids(channel)
        sign = layout.channel_sign(channel)
        for parent in set(parents.tolist()) - {6 * sign, -6 * sign}:
            daughters = [int(p) for p, m in zip(ids, parents, strict=True) if m == parent]
            assert sum(map(charge, daughters)) == charge(parent), (layout.name, channel)
        lepton = ids[layout.z_objects.index(layout.lepton.source)]
        assert charge(lepton) == layout.lepton_charge_of(channel)
        assert abs(lepton) == L.LEPTON_PDG_IDS[layout.lepton.kind]


def test_ejets_is_the_module_level_layout_and_its_selection_is_the_papers():
    assert L.DEFAULT_LAYOUT is L.EJETS
    assert L.EJETS.z_columns == L.Z_COLUMNS and L.EJETS.x_columns == L.X_COLUMNS
    assert list(L.EJETS.selection) == [
        "one_electron", "electron_charge", "no_muon", "no_photon", "four_jets"
    ]
    assert list(L.MUJETS.selection) == [
        "one_muon", "muon_charge", "no_electron", "no_photon", "four_jets"
    ]
    assert L.EJETS.w_decay_settings == (
        "24:onMode = off", "24:onPosIfMatch = 2 -1", "24:onNegIfMatch = 11 -12"
    )
    assert L.MUJETS.w_decay_settings[-1] == "24:onNegIfMatch = 13 -14"
    assert L.MUJETS.top_decays == L.TOP_DECAYS  # the positions the networks index


def test_mujets_selection_asks_for_one_muon_of_its_channels_charge_and_no_electron():
    n = 5
    counts = L.ObjectCounts(
        n_electrons=np.array([0, 1, 0, 0, 0]), electron_charge=None,
        n_muons=np.array([1, 1, 1, 2, 1]), n_photons=np.zeros(n, int),
        n_jets=np.array([4, 4, 4, 4, 5]), muon_charge=np.array([-1, -1, 1, -1, -1]),
    )
    selected = L.MUJETS.selection_masks(counts)[L.MUJETS.selected_cut]
    assert selected.tolist() == [1, 0, 0, 0, 0]
    conjugate = L.MUJETS.selection_masks(counts, "antimuon")[L.MUJETS.selected_cut]
    assert conjugate.tolist() == [0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="unknown channel 'positron' of the mujets layout"):
        L.MUJETS.selection_masks(counts, "positron")


def test_layouts_survive_pickling_and_plain_data():
    for layout in L.BUILTIN_LAYOUTS.values():
        layout.selection  # the cached predicates are lambdas: not pickled  # noqa: B018
        assert pickle.loads(pickle.dumps(layout)) == layout
        assert L.Layout.from_dict(layout.to_dict()) == layout


def test_resolve_layout_takes_a_layout_a_name_or_a_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(MUJETS_TOML)
    assert L.resolve_layout("mujets") is L.MUJETS
    assert L.resolve_layout(L.EJETS) is L.EJETS
    assert L.resolve_layout(str(path)) == L.MUJETS
    with pytest.raises(ValueError, match="unknown layout 'tau'; choose from ejets, mujets"):
        L.resolve_layout("tau")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('name = "mujets"', "name = 3"), "layout name: must be a string"),
        (lambda t: t.replace('kind = "muon"', 'kind = "tau"'),
         "layout object 'mu-': unknown kind 'tau'"),
        (lambda t: t.replace('source = "b"', 'source = "c"'),
         "layout object 'jet1': its source 'c' is not a parton"),
        (lambda t: t.replace("pdg_id = -14", "pdg_id = -12"),
         "layout partons: the W-'s daughters must be a charged lepton and its neutrino"),
        (lambda t: t.replace('kind = "muon"', 'kind = "electron"'),
         "layout object 'mu-': a electron cannot come from the parton 'mu-'"),
        (lambda t: t.replace("parent = 6}", "parent = 24}"), "layout partons: must come from"),
        (lambda t: t.replace('  {name = "jet4", kind = "jet", source = "dbar"},\n', ""),
         "layout objects: must be one charged lepton, the met and four jets"),
        (lambda t: t.replace("description", "descripton"), "layout descripton: unknown key"),
        (lambda t: t.replace("pdg_id = 2, parent = 24}", "pdg_id = 2}"),
         r"layout partons\[4\].parent: missing"),
        (lambda t: t + "[[", "not a TOML file"),
        (lambda t: t.replace('"muon", "antimuon"', '"muon", "muon"'),
         "layout channels: must be two different names"),
    ],
)
def test_a_bad_layout_file_is_one_line_naming_the_file_and_the_key(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit(MUJETS_TOML))
    with pytest.raises(InputError, match=message) as raised:
        L.load_layout(path)
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)


def test_a_missing_layout_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        L.resolve_layout(str(tmp_path / "missing.toml"))


@pytest.fixture(scope="module")
def mujets_file(tmp_path_factory):
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from turbosim_hep.generate.run import generate_file

    path = tmp_path_factory.mktemp("mujets") / "mujets.root"
    generate_file(path, 400, seed=11, layout="mujets", progress=False)
    return path


def test_a_generated_mujets_file_reads_in_its_layout_only(mujets_file):
    batch, cutflow = read_events(mujets_file, layout="mujets")
    assert list(cutflow.as_dict()) == ["all", *L.MUJETS.selection, L.PARTON_CUT]
    assert len(batch) == cutflow.selected > 0
    # the Z slots hold the muon and its neutrino: the lepton is the one parton whose
    # direction the selected muon follows (but for radiation and resolution)
    z = batch.z.reshape(-1, 6, 4)
    x = batch.x.reshape(-1, 6, 4)
    cos = np.sum(z[:, 0, :3] * x[:, 0, :3], axis=1) / (
        np.linalg.norm(z[:, 0, :3], axis=1) * np.linalg.norm(x[:, 0, :3], axis=1)
    )
    assert np.mean(cos > 0.99) > 0.8
    with pytest.raises(InputError, match="holds mujets events, not ejets ones"):
        EventFile(mujets_file).read()
    # Pythia forces the reference channel's W decays: the conjugate channel is empty
    both, _ = read_events(mujets_file, layout="mujets", channel="both")
    assert len(both) == len(batch) and not both.conjugate.any()
    assert len(read_events(mujets_file, layout="mujets", channel="antimuon")[0]) == 0


@pytest.fixture(scope="module")
def mujets_model(mujets_file, tmp_path_factory):
    from turbosim_hep.training import TrainConfig, train

    path = tmp_path_factory.mktemp("mujets_model") / "mu.pt"
    train([mujets_file], path, train_config=TrainConfig(epochs=1, layout="mujets"),
          progress=False)
    return path


def test_a_model_stores_its_layout_and_simulates_and_unfolds_that_layout_only(
    mujets_model, mujets_file, tmp_path
):
    import uproot

    from turbosim_hep.errors import TurbosimError
    from turbosim_hep.io import read_metadata
    from turbosim_hep.io.samples import posterior_samples
    from turbosim_hep.model.checkpoint import load_model_layout
    from turbosim_hep.pipeline import simulate_files, unfold_files

    assert load_model_layout(mujets_model) is L.MUJETS
    simulated = tmp_path / "sim.root"
    simulate_files(mujets_model, [mujets_file], simulated, acceptance="off", progress=False)
    assert read_metadata(simulated)["layout"] == "mujets"
    with uproot.open(simulated) as file:
        branches = set(file["Events"].keys())
        charge = file["Events"]["Muon_charge"].array(library="np")
    assert {"Muon_pt", "Parton_pdgId"} <= branches and not any(
        b.startswith("Electron") for b in branches
    )
    assert {int(q) for event in charge for q in event} == {-1}
    # every parton event simulated (no acceptance) reads back as a mujets selected event
    x, _ = read_events(simulated, layout="mujets", detector=True, partons=False)
    partons, _ = read_events(mujets_file, layout="mujets", detector=False, partons=True)
    assert len(x) == len(partons) == 400

    unfolded = tmp_path / "unf.root"
    unfold_files(mujets_model, [mujets_file], unfolded, samples=2, progress=False)
    with uproot.open(unfolded) as file:
        ids = file["Events"]["Parton_pdgId"].array(library="np")
    np.testing.assert_array_equal(np.stack(ids)[0], L.MUJETS.parton_pdg_ids())
    samples = posterior_samples(unfolded)  # the muon's id tells the channel apart
    assert samples.z.shape == (len(ids) // 2, 2, 24) and not samples.conjugate.any()

    with pytest.raises(TurbosimError, match="trained on mujets events, not on those of the ejets"):
        simulate_files(mujets_model, [mujets_file], tmp_path / "no.root", layout="ejets")
    assert not (tmp_path / "no.root").exists()


def test_validation_of_mujets_names_its_muon_and_finds_the_layout_itself(
    mujets_model, mujets_file, tmp_path
):
    from turbosim_hep.pipeline import simulate_files
    from turbosim_hep.validation import validate

    simulated = tmp_path / "sim.root"
    simulate_files(mujets_model, [mujets_file], simulated, acceptance="off", progress=False)
    metrics = validate(mujets_file, simulated, tmp_path / "report", plots=False, progress=False)
    assert metrics["layout"] == "mujets"
    assert {"x_px_mu-", "z_E_nubar", "m_t_had"} <= set(metrics["quantities"])
    assert metrics["classifier"]["feature_names"][:2] == ["log_pt_mu-", "eta_mu-"]
    assert metrics["cutflow"]["truth"]["one_muon"] > 0 and metrics["valid_fraction"] == 1.0


def test_the_documented_user_layout_runs_through_every_command(tmp_path, monkeypatch):
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    from pathlib import Path

    from turbosim_hep.cli import main

    documented = Path(__file__).parents[1] / "docs" / "examples" / "ttbar_mujets_cs.toml"
    layout_file = tmp_path / "cs.toml"
    layout_file.write_text(documented.read_text())
    monkeypatch.chdir(tmp_path)
    flags = ["--layout", str(layout_file), "--no-progress"]
    assert main(["generate", "-n", "400", "--seed", "3", "-o", "cs.root", *flags]) == 0
    batch, _ = read_events("cs.root", layout=str(layout_file))
    # the W+ quarks are c and s-bar: Pythia was told so by the layout
    assert len(batch) > 0
    assert main(["train", "cs.root", "-o", "cs.pt", "--epochs", "1", *flags]) == 0
    layout_file.unlink()  # the model carries the layout: the file is no longer needed
    assert main(["simulate", "cs.pt", "cs.root", "-o", "sim.root", "--acceptance", "off",
                 "--no-progress"]) == 0
    assert main(["validate", "--truth", "cs.root", "--sim", "sim.root", "-o", "report",
                 "--plots", "none", "--no-progress", "--layout", str(documented)]) == 0
    import json

    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["layout"] == "mujets_cs" and "z_E_sbar" in metrics["quantities"]


def test_a_bad_layout_flag_is_one_line(tmp_path, capsys):
    from turbosim_hep.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\npartons = []\nobjects = []\n')
    assert main(["inspect", str(tmp_path / "none.root"), "--layout", "tau"]) == 2
    assert "unknown layout 'tau'; choose from ejets, mujets" in capsys.readouterr().err
    assert main(["generate", "-n", "10", "-o", str(tmp_path / "g.root"), "--layout",
                 str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: layout objects: must be one charged lepton" in err and err.count("\n") == 1


@pytest.mark.parametrize("layout", L.BUILTIN_LAYOUTS.values(), ids=L.BUILTIN_LAYOUTS)
def test_the_observables_of_any_layout_agree_with_vector(layout):
    import vector

    from turbosim_hep.validation.quantities import object_observables, object_values

    from _ttbar import smear, ttbar_partons

    x = smear(ttbar_partons(300, seed=3), seed=4).reshape(300, 6, 4)
    values = object_values(x.reshape(300, 24), layout)
    assert list(values) == [o.name for o in object_observables(layout)]
    objects = {
        name: vector.array({"px": x[:, i, 0], "py": x[:, i, 1], "pz": x[:, i, 2],
                            "E": x[:, i, 3]})
        for i, name in enumerate(layout.x_objects)
    }
    lepton, jets = layout.lepton.name, [f"jet{i}" for i in range(1, 5)]
    np.testing.assert_allclose(values[f"pt_{lepton}"], objects[lepton].pt, rtol=1e-5)
    np.testing.assert_allclose(values["eta_jet3"], objects["jet3"].eta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values["pt_met"], objects["met"].pt, rtol=1e-5)
    np.testing.assert_allclose(values["ht"], sum(objects[j].pt for j in jets), rtol=1e-5)
    for a, b in ((lepton, "jet2"), ("jet1", "jet4")):
        np.testing.assert_allclose(
            values[f"m_{a}_{b}"], (objects[a] + objects[b]).mass, rtol=1e-3, atol=1e-2
        )
    assert "eta_met" not in values and not any("met" in n for n in values if n.startswith("m_"))
