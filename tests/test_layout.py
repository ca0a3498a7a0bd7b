import numpy as np

from turbosim_hep import layout


def test_spaces_have_24_named_columns_in_reference_order():
    assert layout.N_FEATURES == 24
    assert layout.Z_COLUMNS[:4] == ("px_e-", "py_e-", "pz_e-", "E_e-")
    assert layout.Z_COLUMNS[-1] == "E_dbar"
    assert layout.X_COLUMNS[4:8] == ("px_met", "py_met", "pz_met", "E_met")
    assert layout.X_COLUMNS[-1] == "E_jet4"
    assert len(set(layout.Z_COLUMNS)) == len(set(layout.X_COLUMNS)) == 24


def test_partons_are_the_reference_final_state():
    assert layout.Z_OBJECTS == ("e-", "nubar", "b", "bbar", "u", "dbar")
    assert layout.PARTON_PDG_IDS.tolist() == [11, -12, 5, -5, 2, -1]
    # charge conservation of the decay chain: each parent decays into what it should
    assert layout.PARTON_PARENT_PDG_IDS.tolist() == [-24, -24, 6, -6, 24, 24]


def test_column_lookup():
    assert layout.column_index("z", "py_b") == 9
    assert layout.column_index("x", "E_jet1") == 11
    assert layout.object_slice("x", "jet1") == slice(8, 12)


def test_selection_masks_are_cumulative():
    counts = layout.ObjectCounts(
        n_electrons=np.array([1, 1, 1, 1, 1, 2]),
        electron_charge=np.array([-1, -1, -1, -1, 1, -1]),
        n_muons=np.array([0, 0, 1, 0, 0, 0]),
        n_photons=np.array([0, 1, 0, 0, 0, 0]),
        n_jets=np.array([4, 4, 4, 5, 4, 4]),
    )
    masks = layout.selection_masks(counts)
    assert list(masks) == ["one_electron", "electron_charge", "no_muon", "no_photon", "four_jets"]
    assert masks["one_electron"].tolist() == [1, 1, 1, 1, 1, 0]
    assert masks["electron_charge"].tolist() == [1, 1, 1, 1, 0, 0]
    assert masks["four_jets"].tolist() == [1, 0, 0, 0, 0, 0]
