"""The charge-conjugate channel: reading, CP mirror, writing back, selection, labels."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from turbosim_hep import layout
from turbosim_hep.io import EventWriter, open_events, read_events
from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns

from _lhe import write_lhe
from _ttbar import smear, ttbar_partons


def test_lhe_conjugate_events_round_trip_exactly(tmp_path):
    z = ttbar_partons(40, seed=5)  # the physical momenta of each event's slots
    conjugate = np.arange(40) % 3 == 0
    path = write_lhe(tmp_path / "mixed.lhe", z, conjugate=conjugate)

    reference, _ = open_events(path).read(detector=False, partons=True)
    assert np.array_equal(reference.entry, np.flatnonzero(~conjugate))
    assert reference.conjugate is None  # the reference channel alone: nothing to flag

    both, cutflow = open_events(path).read(detector=False, partons=True, channel="both")
    assert cutflow.as_dict() == {"all": 40, layout.PARTON_CUT: 40}
    np.testing.assert_array_equal(both.conjugate, conjugate)
    # conjugate events are held CP-mirrored in the reference layout ...
    np.testing.assert_array_equal(both.z[conjugate], layout.cp_mirror(z[conjugate]))
    np.testing.assert_array_equal(both.z[~conjugate], z[~conjugate])
    # ... and written back exactly as they were, with the conjugate channel's ids
    partons = parton_columns(both.z, with_cartesian=True, conjugate=both.conjugate)["Parton"]
    p4 = np.stack([ak.to_numpy(ak.flatten(partons[c])) for c in layout.COMPONENTS], -1)
    np.testing.assert_array_equal(p4.reshape(40, 24), z)
    ids = ak.to_numpy(partons.pdgId)
    assert np.all(ids[conjugate] == layout.parton_pdg_ids("positron"))
    assert np.all(ids[~conjugate] == layout.parton_pdg_ids("electron"))

    positron, _ = open_events(path).read(detector=False, partons=True, channel="positron")
    np.testing.assert_array_equal(positron.entry, np.flatnonzero(conjugate))
    assert positron.conjugate.all()


def write_own(path, z, x, conjugate):
    """An own-format file: each event in its own channel (charges, ids, physical momenta)."""
    chunk = (
        event_columns(np.arange(len(z)))
        | reco_columns(x, conjugate=conjugate)
        | parton_columns(z, conjugate=conjugate)
    )
    with EventWriter(path) as writer:
        writer.write(chunk)
    return path


def test_own_file_of_both_channels_reads_each_in_the_reference_layout(tmp_path):
    n = 300
    z = ttbar_partons(n, seed=6)
    x = smear(z, seed=7)
    conjugate = np.random.default_rng(1).random(n) < 0.5
    mirrored_z, mirrored_x = z.copy(), x.copy()
    mirrored_z[conjugate] = layout.cp_mirror(z[conjugate])
    mirrored_x[conjugate] = layout.cp_mirror(x[conjugate])
    path = write_own(tmp_path / "both.root", mirrored_z, mirrored_x, conjugate)
    with uproot.open(path) as file:
        charge = file["Events"]["Electron_charge"].array(library="np")
    assert [c[0] for c in charge] == list(np.where(conjugate, 1, -1))

    reference, flow = read_events(path)
    assert len(reference) == flow["four_jets"] == np.count_nonzero(~conjugate)
    batch, flow = read_events(path, channel="both")
    assert flow["electron_charge"] == n and len(batch) == n
    np.testing.assert_array_equal(batch.conjugate, conjugate)
    # the stored (pt, eta, phi) round trip of float32 values: equal to rounding
    np.testing.assert_allclose(batch.z, mirrored_z, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(batch.x, mirrored_x, rtol=1e-5, atol=1e-3)
    # and the detector objects and the partons of an event agree on its channel
    detector_only, _ = read_events(path, channel="both", partons=False)
    np.testing.assert_array_equal(detector_only.conjugate, conjugate)


def test_labelled_read_keeps_rejected_events_with_their_outcome(mixed_file):
    path, truth = mixed_file
    labelled, flow = read_events(path, labels=True)
    selected, _ = read_events(path)
    complete = truth["complete"]
    assert np.array_equal(labelled.entry, np.flatnonzero(complete))
    assert labelled.x is None and labelled.z.shape == (complete.sum(), 24)
    assert set(labelled.entry[labelled.passed]) == set(selected.entry)
    np.testing.assert_array_equal(labelled.z[labelled.passed], selected.z)
    assert flow[layout.PARTON_CUT] == len(selected)  # the cut-flow is the selection's


def test_weights_of_a_thinned_file_are_read(tmp_path):
    z = ttbar_partons(20, seed=2)
    weight = np.linspace(1, 4, 20).astype(np.float32)
    chunk = event_columns(np.arange(20), weight=weight) | reco_columns(smear(z)) | (
        parton_columns(z)
    )
    with EventWriter(tmp_path / "w.root") as writer:
        writer.write(chunk)
    batch, _ = read_events(tmp_path / "w.root", labels=True)
    np.testing.assert_array_equal(batch.weight, weight)
    partons, _ = read_events(tmp_path / "w.root", detector=False)
    np.testing.assert_array_equal(partons.weights, weight)


def test_an_unknown_channel_is_refused(tmp_path):
    path = write_lhe(tmp_path / "a.lhe", ttbar_partons(3, seed=1))
    with pytest.raises(ValueError, match="unknown channel 'muon'"):
        open_events(path).read(detector=False, partons=True, channel="muon")
