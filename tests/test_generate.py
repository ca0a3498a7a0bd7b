"""`turbosim-hep generate`: Pythia 8 tt-bar events through the parametric Delphes-card detector.

Physics checks run on small samples made here; the mass peaks of the reconstruction use
the shipped sample when it is present.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import _processes

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from turbosim_hep import layout  # noqa: E402
from turbosim_hep.generate import OTUS_TTBAR, generate_file  # noqa: E402
from turbosim_hep.generate.detector import (  # noqa: E402
    ParametricDetector,
    _tower_index,
    log_normal,
)
from turbosim_hep.generate.pythia import TTbarGenerator, _match_records  # noqa: E402
from turbosim_hep.io import EventFile, read_events  # noqa: E402
from turbosim_hep.io.writer import read_metadata  # noqa: E402
from turbosim_hep.kinematics import ptetaphim_from_p4  # noqa: E402

pytestmark = pytest.mark.generate

W_WIDTH = 2.09  # GeV, Pythia's W width
TOP_WIDTH = 1.36  # GeV, Pythia's top width


def _mass(p4: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(p4[..., 3] ** 2 - np.sum(p4[..., :3] ** 2, axis=-1), 0.0))


def _peak(values: np.ndarray, lo: float, hi: float, bins: int) -> float:
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    i = int(np.argmax(counts))
    return 0.5 * (edges[i] + edges[i + 1])


@pytest.fixture(scope="module")
def partons():
    return TTbarGenerator(4242, "parton").generate(4000)


@pytest.fixture(scope="module")
def showered():
    """300 showered events with their final-state particles."""
    return TTbarGenerator(777, "detector").generate(300)


def _ideal_card(**changes):
    """The OTUS card with every efficiency one above its pT threshold (deterministic checks)."""
    one = lambda pt, eta: np.ones_like(pt)  # noqa: E731
    above_10 = lambda pt, eta: (pt > 10.0).astype(float)  # noqa: E731
    return dataclasses.replace(
        OTUS_TTBAR,
        tracking_efficiency={k: one for k in OTUS_TTBAR.tracking_efficiency},
        electron_efficiency=above_10, muon_efficiency=above_10, photon_efficiency=above_10,
        **changes,
    )


def _particles(events: list[list[tuple[int, int, float, float, float]]]) -> ak.Array:
    """Events of (pid, charge, pt, eta, phi) as the detector's input (massless)."""
    records = []
    for event in events:
        rows = []
        for pid, charge, pt, eta, phi in event:
            px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
            rows.append({"pid": pid, "charge": charge, "px": px, "py": py, "pz": pz,
                         "E": pt * np.cosh(eta), "mass": 0.0})
        records.append(rows)
    return ak.Array(records)


# --- parton level ------------------------------------------------------------------------


def test_parton_resonance_peaks(partons):
    z = partons.z.reshape(-1, 6, 4)
    e, nubar, bbar = z[:, 0], z[:, 1], z[:, 3]
    m_w = _mass(e + nubar)
    m_t = _mass(e + nubar + bbar)
    assert abs(np.median(m_w) - 80.4) < W_WIDTH / 2
    assert abs(_peak(m_w, 70, 90, 40) - 80.4) < W_WIDTH
    assert abs(np.median(m_t) - 172.5) < TOP_WIDTH
    assert abs(_peak(m_t, 160, 185, 50) - 172.5) < TOP_WIDTH
    # the hadronic side too
    b, u, dbar = z[:, 2], z[:, 4], z[:, 5]
    assert abs(np.median(_mass(u + dbar)) - 80.4) < W_WIDTH / 2
    assert abs(np.median(_mass(u + dbar + b)) - 172.5) < TOP_WIDTH


def test_parton_momentum_balance(partons):
    """The six partons carry the incoming partons' momentum: no pT, E and pz from x1, x2."""
    total = partons.z.reshape(-1, 6, 4).sum(axis=1)
    half = 6500.0
    np.testing.assert_allclose(total[:, :2], 0.0, atol=1e-6)
    np.testing.assert_allclose(total[:, 3], half * (partons.x1 + partons.x2), rtol=1e-9)
    np.testing.assert_allclose(total[:, 2], half * (partons.x1 - partons.x2), rtol=1e-9, atol=1e-6)
    masses = _mass(partons.z.reshape(-1, 6, 4))
    assert np.all(masses[:, :2] < 1e-2)  # e-, nu_e-bar massless (within rounding)


def test_records_of_skipped_events_are_left_out():
    # process records of 5 tried events; the 2nd and 4th failed after their hard
    # process, so the event record holds the other three (tops equal to the last bits)
    rng = np.random.default_rng(3)
    records = rng.normal(0, 100, (5, 15, 6))
    kept = [0, 2, 4]
    tops = records[kept, 5, 2:] * (1 + 1e-15)
    momentum = ak.zip({c: np.repeat(tops[:, [k]], 7, axis=1) for k, c in enumerate(
        ("px", "py", "pz", "e"))})
    prt = ak.zip({"p": momentum}, depth_limit=1)
    assert _match_records(records, prt).tolist() == kept
    assert _match_records(records[kept], prt).tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError, match="no hard-process record"):
        _match_records(records[[0, 1, 3, 4]], prt)


def test_parton_level_file(tmp_path):
    path = tmp_path / "partons.root"
    summary = generate_file(path, 300, seed=3, level="parton", progress=False)
    assert summary.written == 300
    event_file = EventFile(path)
    assert event_file.has_partons and not event_file.has_detector
    batch, cutflow = event_file.read(detector=False, partons=True)
    assert len(batch) == 300 and cutflow.selected == 300
    assert np.array_equal(batch.entry, np.arange(300))
    metadata = read_metadata(path)
    assert metadata["level"] == "parton" and metadata["seed"] == 3 and metadata["n_events"] == 300


# --- the detector, unit by unit ------------------------------------------------------------


def test_log_normal_mean_and_width():
    rng = np.random.default_rng(1)
    values = log_normal(rng, np.full(200_000, 50.0), np.full(200_000, 5.0))
    assert abs(values.mean() - 50.0) < 0.1
    assert abs(values.std() - 5.0) < 0.1
    assert np.all(log_normal(rng, np.zeros(3), np.ones(3)) == 0)


def test_tower_grid_follows_the_card():
    ecal, hcal = OTUS_TTBAR.ecal.grid, OTUS_TTBAR.hcal.grid
    # barrel ECAL: 0.0174 x 1 degree; HCAL barrel: 0.087 x 5 degrees
    a, _ = _tower_index(ecal, np.array([0.001, 0.0173]), np.array([0.001, 0.0172]))
    assert a[0] == a[1]
    b, _ = _tower_index(ecal, np.array([0.001, 0.0180]), np.array([0.001, 0.001]))
    assert b[0] != b[1]
    c, _ = _tower_index(hcal, np.array([0.001, 0.080]), np.array([0.001, 0.080]))
    assert c[0] == c[1]
    _, inside = _tower_index(hcal, np.array([0.0, 4.99, 5.01, -5.01]), np.zeros(4))
    assert inside.tolist() == [True, True, False, False]
    assert ecal.n_phi[np.searchsorted(ecal.eta_edges, 0.5)] == 360
    assert hcal.n_phi[np.searchsorted(hcal.eta_edges, 4.8)] == 18


def test_isolated_electron_is_kept_and_its_jet_dropped():
    detector = ParametricDetector(_ideal_card())
    lone = [(11, -1, 50.0, 0.3, 1.0)]
    crowded = lone + [(211, 1, 30.0, 0.4, 1.1)]  # a pion inside the isolation cone
    particles = _particles([lone] * 40 + [crowded] * 40)
    out = detector.simulate(particles, np.random.default_rng(2))
    n_electrons = ak.to_numpy(ak.num(out.electrons))
    n_jets = ak.to_numpy(ak.num(out.jets))
    found = n_electrons[:40] == 1
    # a track fluctuating low leaves an ECAL excess in the cone now and then, as in Delphes
    assert found.mean() > 0.8
    assert np.all(n_electrons[40:] == 0)
    assert ak.all(out.electrons.charge == -1)
    assert np.all(np.abs(ak.to_numpy(ak.flatten(out.electrons.pt)) / 50.0 - 1) < 0.4)
    # the lone electron is an anti-kT jet above 20 GeV, which UniqueObjectFinder drops
    assert np.all(n_jets[:40][found] == 0)
    # the non-isolated electron stays inside a jet
    assert np.all(n_jets[40:] == 1)


def test_met_balances_the_visible_energy_flow():
    detector = ParametricDetector(_ideal_card())
    particles = _particles([[(211, 1, 60.0, 0.0, 0.5), (12, 0, 40.0, 1.0, -2.0)]])
    out = detector.simulate(particles, np.random.default_rng(3))
    assert ak.num(out.jets)[0] == 1
    # MET points opposite the visible pion, with its measured (track) momentum
    assert abs(np.cos(out.met_phi[0] - (0.5 + np.pi)) - 1) < 1e-3
    assert 40 < out.met_pt[0] < 80


def test_photon_needs_isolation_and_pt():
    detector = ParametricDetector(_ideal_card())
    particles = _particles([[(22, 0, 40.0, 0.2, 0.3)], [(22, 0, 5.0, 0.2, 0.3)]])
    out = detector.simulate(particles, np.random.default_rng(4))
    assert ak.num(out.photons).tolist() == [1, 0]
    assert abs(out.photons.pt[0, 0] / 40.0 - 1) < 0.2


def test_electron_resolution_matches_the_card(showered):
    """Reconstructed over true electron pT has the width of the card's tracker formula."""
    detector = ParametricDetector(OTUS_TTBAR)
    out = detector.simulate(showered.particles, np.random.default_rng(5))
    truth = showered.particles[abs(showered.particles.pid) == 11]
    t_pt = np.hypot(truth.px, truth.py)
    t_eta, t_phi = np.arcsinh(truth.pz / t_pt), np.arctan2(truth.py, truth.px)
    reco = out.electrons
    true = ak.zip({"pt": t_pt, "eta": t_eta, "phi": t_phi})
    pairs = ak.cartesian({"r": reco, "t": true}, nested=True)
    d_phi = (pairs.r.phi - pairs.t.phi + np.pi) % (2 * np.pi) - np.pi
    d_r = np.hypot(pairs.r.eta - pairs.t.eta, d_phi)
    best = ak.argmin(d_r, axis=-1, keepdims=True)
    matched = ak.flatten(ak.flatten(pairs[best], axis=-1))
    close = ak.to_numpy(ak.flatten(ak.flatten(d_r[best], axis=-1))) < 1e-3  # same direction
    pt_true = ak.to_numpy(matched.t.pt)[close]
    eta_true = ak.to_numpy(matched.t.eta)[close]
    ratio = ak.to_numpy(matched.r.pt)[close] / pt_true
    sigma = OTUS_TTBAR.momentum_resolution["electron"](pt_true, eta_true)
    pull = (ratio - 1) / sigma
    assert len(pull) > 100
    assert abs(np.std(pull) - 1) < 0.2
    assert abs(np.mean(pull)) < 0.25


def test_jet_response_against_particle_jets(showered):
    """Jets after the JES have a detector-like response and width against particle jets."""
    import fastjet

    detector = ParametricDetector(OTUS_TTBAR)
    out = detector.simulate(showered.particles, np.random.default_rng(6))
    pid = abs(showered.particles.pid)
    visible = showered.particles[(pid != 12) & (pid != 14) & (pid != 16)]
    inputs = ak.zip({c: visible[c] for c in ("px", "py", "pz", "E")})
    gen = fastjet.ClusterSequence(inputs, fastjet.JetDefinition(fastjet.antikt_algorithm, 0.5))
    gen_jets = gen.inclusive_jets(min_pt=20.0)
    g_pt = np.hypot(gen_jets.px, gen_jets.py)
    g_eta = np.arcsinh(gen_jets.pz / g_pt)
    g_phi = np.arctan2(gen_jets.py, gen_jets.px)
    pairs = ak.cartesian(
        {"r": out.jets, "g": ak.zip({"pt": g_pt, "eta": g_eta, "phi": g_phi})}, nested=True
    )
    d_phi = (pairs.r.phi - pairs.g.phi + np.pi) % (2 * np.pi) - np.pi
    d_r = np.hypot(pairs.r.eta - pairs.g.eta, d_phi)
    best = ak.argmin(d_r, axis=-1, keepdims=True)
    matched = ak.flatten(ak.flatten(pairs[best], axis=-1))
    distance = ak.flatten(ak.flatten(d_r[best], axis=-1))
    has_gen_jet = ~ak.is_none(distance)  # None: no particle jet in the event
    matched = ak.drop_none(matched[has_gen_jet])
    distance = ak.drop_none(distance[has_gen_jet])
    close = ak.to_numpy(distance) < 0.2
    g = ak.to_numpy(matched.g.pt)[close]
    response = ak.to_numpy(matched.r.pt)[close] / g
    central = (g > 40) & (np.abs(ak.to_numpy(matched.g.eta)[close]) < 2.5)
    assert central.sum() > 300
    median = np.median(response[central])
    width = (np.percentile(response[central], 84) - np.percentile(response[central], 16)) / 2
    assert 0.95 < median < 1.15  # the card's JES brings the energy-flow jets near one
    assert 0.04 < width < 0.25  # a detector-like width, not a delta, not noise


def test_round_mantissa_bounds_the_error():
    from turbosim_hep.generate.run import _round_floats, round_mantissa

    values = np.random.default_rng(8).normal(0, 300, 10_000).astype(np.float32)
    for bits in (10, 16):
        rounded = round_mantissa(values, bits)
        assert np.max(np.abs(rounded / values - 1)) <= 2.0 ** -(bits + 1)
        assert np.all(rounded.view(np.uint32) & np.uint32((1 << (23 - bits)) - 1) == 0)
    np.testing.assert_array_equal(round_mantissa(values, 23), values)
    special = np.array([np.inf, -np.inf, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(round_mantissa(special, 8), special)
    pt = ak.values_astype(ak.Array([[1.2345678], []]), np.float32)
    out = _round_floats(ak.zip({"pt": pt, "charge": ak.Array([[-1], []])}), 8)
    assert ak.num(out).tolist() == [1, 0] and out.charge.tolist() == [[-1], []]
    assert abs(out.pt[0, 0] - 1.2345678) < 1.2345678 * 2.0**-9


# --- files, selection, reproducibility ------------------------------------------------------


@pytest.fixture(scope="module")
def detector_files(tmp_path_factory):
    """The same 80 events written in full, selected-only and thinned (two blocks of 40)."""
    directory = tmp_path_factory.mktemp("generated")
    full, selected = directory / "full.root", directory / "selected.root"
    thinned = directory / "thinned.root"
    kwargs = dict(seed=9, block_size=40, progress=False)
    summaries = (
        generate_file(full, 80, **kwargs),
        generate_file(selected, 80, rejected_fraction=0.0, **kwargs),
        generate_file(thinned, 80, rejected_fraction=0.5, **kwargs),
    )
    return full, selected, thinned, summaries


def test_detector_file_reads_like_delphes(detector_files):
    import uproot

    path, _, _, (summary, _, _) = detector_files
    assert summary.generated == 80 and summary.written == 80
    event_file = EventFile(path)
    assert event_file.format == "turbosim" and event_file.has_detector and event_file.has_partons
    batch, cutflow = event_file.read()
    counts = cutflow.as_dict()
    assert list(counts) == ["all", *layout.SELECTION, layout.PARTON_CUT]
    assert counts["all"] == 80
    assert {k: v for k, v in counts.items() if k != layout.PARTON_CUT} == summary.cutflow
    assert counts["four_jets"] == len(batch) > 0
    with uproot.open(path) as file:
        tree = file["Events"]
        for name in ("Electron_charge", "Muon_pt", "Photon_pt", "Jet_mass", "MET_pt",
                     "Parton_pdgId"):
            assert name in tree.keys()
        jets = tree["Jet_pt"].array()
        assert ak.all(jets[:, :-1] >= jets[:, 1:])  # pT-ordered
        assert ak.all(jets > 20.0)
    metadata = read_metadata(path)
    assert metadata["seed"] == 9 and metadata["card"] == "otus_ttbar"
    assert metadata["block_size"] == 40 and metadata["cutflow"] == summary.cutflow


def test_selected_only_keeps_the_selection(detector_files):
    full, selected, _, (_, summary, _) = detector_files
    batch_full, _ = read_events(full)
    batch_sel, cutflow = read_events(selected)
    assert summary.written == len(batch_full) == len(batch_sel) == cutflow.counts["all"]
    np.testing.assert_array_equal(batch_sel.x, batch_full.x)
    np.testing.assert_array_equal(batch_sel.z, batch_full.z)
    import uproot

    with uproot.open(selected) as file:  # `event` keeps each event's index in the run
        np.testing.assert_array_equal(file["Events"]["event"].array(library="np"), batch_full.entry)
    assert read_metadata(selected)["cutflow"]["all"] == 80


def test_rejected_fraction_thins_only_rejected_events_and_weights_them(detector_files):
    import uproot

    full, _, thinned, (_, _, summary) = detector_files
    with uproot.open(full) as a, uproot.open(thinned) as b:
        everything = a["Events"].arrays()
        kept = b["Events"].arrays()
    passed, _ = read_events(full)
    is_selected = np.isin(ak.to_numpy(kept.event), passed.entry)
    # every selected event is kept with weight 1; about half of the rejected, weight 2
    assert set(passed.entry) <= set(ak.to_numpy(kept.event))
    np.testing.assert_array_equal(ak.to_numpy(kept.genWeight)[is_selected], 1.0)
    np.testing.assert_array_equal(ak.to_numpy(kept.genWeight)[~is_selected], 2.0)
    rejected = 80 - len(passed)
    assert 0.25 * rejected < np.count_nonzero(~is_selected) < 0.75 * rejected
    assert summary.written == len(kept)
    # the kept events are the very events of the full file, field by field
    np.testing.assert_array_equal(ak.to_numpy(everything.genWeight), 1.0)
    rows = ak.to_numpy(kept.event).astype(np.int64)
    for name in set(everything.fields) - {"genWeight"}:
        assert ak.all(everything[name][rows] == kept[name]), name
    metadata = read_metadata(thinned)
    assert metadata["rejected_fraction"] == 0.5 and metadata["cutflow"]["all"] == 80


def test_same_seed_same_arrays_whatever_the_jobs(tmp_path):
    import uproot

    from turbosim_hep.generate import block_seeds

    one, two = tmp_path / "one.root", tmp_path / "two.root"
    generate_file(one, 30, seed=21, block_size=15, jobs=1, progress=False)
    generate_file(two, 30, seed=21, block_size=15, jobs=2, progress=False)
    with uproot.open(one) as a, uproot.open(two) as b:
        arrays_a = a["Events"].arrays()
        arrays_b = b["Events"].arrays()
    assert arrays_a.fields == arrays_b.fields
    for field in arrays_a.fields:
        assert ak.all(arrays_a[field] == arrays_b[field]), field
    assert ak.all(arrays_a["event"] == np.arange(30))
    seeds = {block_seeds(seed, block)[0] for seed in (21, 22) for block in range(100)}
    assert len(seeds) == 200  # every (seed, block) its own Pythia seed


# --- the command line ---------------------------------------------------------------------


def run_main(capsys, *args) -> tuple[int, str]:
    """The CLI in-process: exit code and stderr."""
    from turbosim_hep.cli import main

    code = main(["generate", *map(str, args)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["-n", "0"], "positive"),
        (["-n", "-5"], "positive"),
        (["-n", "1000000000000"], "at most"),
        (["-n", "10", "--level", "hadron"], "unknown level"),
        (["-n", "10", "--jobs", "0"], "--jobs"),
        (["-n", "10", "--card", "atlas"], "unknown detector card"),
        (["-n", "10", "--compression", "gzip"], "--compression"),
        (["-n", "10", "--level", "parton", "--selected-only"], "--selected-only"),
        (["-n", "10", "--rejected-fraction", "1.5"], "--rejected-fraction"),
        (["-n", "10", "--selected-only", "--rejected-fraction", "0.5"], "different samples"),
        (["-n", "10", "--mantissa-bits", "30"], "--mantissa-bits"),
    ],
)
def test_bad_requests_give_one_line(tmp_path, capsys, arguments, fragment):
    code, stderr = run_main(capsys, *arguments, "-o", tmp_path / "out.root")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_and_existing_outputs(tmp_path, capsys):
    code, stderr = run_main(capsys, "-n", "10", "-o", tmp_path / "missing" / "out.root")
    assert code == 2 and "does not exist" in stderr
    existing = tmp_path / "exists.root"
    existing.write_bytes(b"keep")
    code, stderr = run_main(capsys, "-n", "10", "-o", existing)
    assert code == 2 and "exists already" in stderr
    assert existing.read_bytes() == b"keep"


def test_cli_parton_level_run(tmp_path, capsys):
    out = tmp_path / "z.root"
    code, stderr = run_main(
        capsys, "-n", "200", "--seed", "4", "--level", "parton", "-o", out, "--no-progress"
    )
    assert code == 0, stderr
    assert "200 events written" in stderr
    assert EventFile(out).num_entries == 200


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_interrupt_leaves_nothing(tmp_path):
    """Ctrl-C stops a parallel generation (exit 130) and leaves no file, even when the
    tests run in the background with SIGINT ignored (`_processes.start`)."""
    out = tmp_path / "big.root"
    process = _processes.start("generate", "-n", "100000", "--jobs", "2", "-o", out,
                               "--no-progress")
    try:
        _processes.wait_until(
            lambda: len(_processes.workers(process)) == 2, 120, "the workers to start"
        )
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert list(tmp_path.iterdir()) == []
    finally:
        _processes.end(process)


# --- the shipped sample ---------------------------------------------------------------------


def test_shipped_sample(shipped_sample: Path):
    """The shipped sample: its size, its events, the rejected events that teach the
    acceptance, and W/top peaks of the reconstruction."""
    from turbosim_hep.physics import reconstruct

    assert shipped_sample.stat().st_size <= 25 * 1024 * 1024
    batch, cutflow = read_events(shipped_sample)
    assert len(batch) >= 60_000
    metadata = read_metadata(shipped_sample)
    assert metadata["level"] == "detector" and metadata["card"] == "otus_ttbar"
    # every selected event, and a weighted fraction of the rejected ones that stands for
    # all the generated events (within five standard deviations of the thinning)
    fraction = metadata["rejected_fraction"]
    labelled, _ = read_events(shipped_sample, labels=True)
    assert labelled.passed.sum() == len(batch) == metadata["cutflow"]["four_jets"]
    rejected = metadata["n_events"] - len(batch)
    np.testing.assert_array_equal(labelled.weights[~labelled.passed], 1 / fraction)
    spread = np.sqrt(rejected * fraction * (1 - fraction)) / fraction
    assert abs(labelled.weights.sum() - metadata["n_events"]) < 5 * spread
    result = reconstruct(batch.x[:20_000])
    m_w = result["m_W_had"]
    assert abs(_peak(m_w, 40, 140, 50) - 80.4) < 6
    assert abs(np.median(m_w[(m_w > 60) & (m_w < 100)]) - 80.4) < 4
    for name in ("m_t_lep", "m_t_had"):
        mass = result[name]
        assert abs(np.median(mass[(mass > 120) & (mass < 230)]) - 172.5) < 10, name
    # a detector-like width: the hadronic W peak is wider than the parton-level 2 GeV
    core = m_w[(m_w > 60) & (m_w < 100)]
    assert 4 < np.std(core) < 15
    _, eta, _, _ = ptetaphim_from_p4(batch.x[:, :4])
    assert np.all(np.abs(eta) <= 2.5)
