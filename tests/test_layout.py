"""The event layout: its facts checked against independent sources, and its helpers."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
from particle import Particle

from turbosim_hep import layout

from _ttbar import ttbar_partons


def charge(pdg_id: int) -> Fraction:
    return Fraction(Particle.from_pdgid(int(pdg_id)).charge).limit_denominator(3)


@pytest.mark.parametrize("channel", layout.CHANNELS)
def test_each_parton_comes_from_its_resonance_by_charge_conservation(channel):
    ids = layout.parton_pdg_ids(channel)
    parents = layout.parton_parent_pdg_ids(channel)
    w_minus = -24 * layout.CHANNEL_SIGN[channel]  # the leptonic W
    for parent in set(parents.tolist()) | {6 * layout.CHANNEL_SIGN[channel]}:
        daughters = [int(p) for p, m in zip(ids, parents, strict=True) if m == parent]
        if abs(parent) == 6:  # t -> b W: the W is not in Z
            w = -w_minus if parent * layout.CHANNEL_SIGN[channel] > 0 else w_minus
            daughters.append(w)
        assert sum(map(charge, daughters)) == charge(parent), (channel, parent)
    # the leptonic W gives the charged lepton of the channel's electron charge
    assert charge(ids[layout.Z_OBJECTS.index("e-")]) == layout.electron_charge(channel)


def test_positron_channel_is_the_antiparticle_of_every_slot():
    reference, conjugate = layout.parton_pdg_ids("electron"), layout.parton_pdg_ids("positron")
    for p, q in zip(reference, conjugate, strict=True):
        assert Particle.from_pdgid(int(p)).invert().pdgid == q
    with pytest.raises(ValueError, match="unknown channel 'muon'"):
        layout.parton_pdg_ids("muon")


def test_cp_mirror_is_its_own_inverse_and_keeps_masses_and_energies():
    z = ttbar_partons(50, seed=2)
    mirrored = layout.cp_mirror(z)
    np.testing.assert_array_equal(layout.cp_mirror(mirrored), z)
    p4, q4 = (a.reshape(50, 6, 4).astype(np.float64) for a in (z, mirrored))
    np.testing.assert_array_equal(q4[..., 3], p4[..., 3])
    np.testing.assert_array_equal(q4[..., :3], -p4[..., :3])
    assert mirrored is not z and z.shape == mirrored.shape


def test_column_names_follow_the_objects_and_the_lookup_helpers_agree():
    for space, objects, columns in (
        ("z", layout.Z_OBJECTS, layout.Z_COLUMNS),
        ("x", layout.X_OBJECTS, layout.X_COLUMNS),
    ):
        assert len(columns) == layout.N_FEATURES == len(objects) * layout.N_COMPONENTS
        for obj in objects:
            block = columns[layout.object_slice(space, obj)]
            assert block == tuple(f"{c}_{obj}" for c in layout.COMPONENTS)
            for name in block:
                assert columns[layout.column_index(space, name)] == name


def test_assignments_are_every_distinct_jet_assignment_once():
    rows = {(a, frozenset((b, c)), d) for a, b, c, d in layout.ASSIGNMENTS.tolist()}
    expected = {
        (b_lep, frozenset(set(range(layout.N_JETS)) - {b_lep, b_had}), b_had)
        for b_lep, b_had in itertools.permutations(range(layout.N_JETS), 2)
    }
    assert rows == expected and len(layout.ASSIGNMENTS) == len(expected)


def counts(**values):
    n = len(next(iter(values.values())))
    base = dict(
        n_electrons=np.ones(n, int), electron_charge=-np.ones(n, int), n_muons=np.zeros(n, int),
        n_photons=np.zeros(n, int), n_jets=np.full(n, 4),
    )
    return layout.ObjectCounts(**(base | {k: np.asarray(v) for k, v in values.items()}))


def test_selection_masks_are_cumulative_and_each_cut_does_its_job():
    c = counts(
        n_electrons=[1, 1, 1, 1, 1, 2, 0],
        electron_charge=[-1, -1, -1, -1, 1, -1, 0],
        n_muons=[0, 0, 1, 0, 0, 0, 0],
        n_photons=[0, 1, 0, 0, 0, 0, 0],
        n_jets=[4, 4, 4, 5, 4, 4, 4],
    )
    masks = layout.selection_masks(c)
    assert list(masks) == list(layout.SELECTION)
    assert layout.SELECTED_CUT == list(masks)[-1]
    stacked = np.stack(list(masks.values()))
    assert np.all(stacked[1:] <= stacked[:-1])  # each cut only removes events
    assert masks[layout.SELECTED_CUT].tolist() == [1, 0, 0, 0, 0, 0, 0]


def test_positron_channel_selection_asks_for_the_opposite_charge():
    c = counts(electron_charge=[-1, 1, 1], n_jets=[4, 4, 5])
    assert layout.selection_masks(c, "positron")[layout.SELECTED_CUT].tolist() == [0, 1, 0]
    assert layout.selection_masks(c, "electron")[layout.SELECTED_CUT].tolist() == [1, 0, 0]
