"""The lookup baselines of benchmarks/baselines.py (ΔR matching, responses, valid X, the
nearest-neighbour posterior) and benchmarks/bench_fidelity.py and bench_unfolding.py on a
small sample."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np
import pytest

from turbosim_hep import layout, metrics

from _ttbar import smear, ttbar_partons

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def benchmark_modules():
    """Import modules of benchmarks/ (scripts, not a package) by name."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module


@pytest.fixture(scope="module")
def baselines(benchmark_modules):
    """benchmarks/baselines.py."""
    return benchmark_modules("baselines")


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    """2,000 synthetic tt-bar events and their smeared detector objects."""
    z = ttbar_partons(2000, seed=5)
    return z, smear(z, seed=6)


def test_matching_finds_the_permutation_of_each_event(baselines):
    rng = np.random.default_rng(0)
    n = 5000
    # four quarks per event, far apart in phi; each jet a quark moved by less than 0.1
    shape = (n, layout.N_JETS)
    quark_phi = np.linspace(-3.0, 2.0, layout.N_JETS) + rng.uniform(-0.3, 0.3, shape)
    quark_eta = rng.uniform(-2.5, 2.5, shape)
    truth = baselines.PERMUTATIONS[rng.integers(0, len(baselines.PERMUTATIONS), n)]
    jet_eta, jet_phi = np.empty(shape), np.empty(shape)
    rows = np.arange(n)[:, np.newaxis]
    jet_eta[rows, truth] = quark_eta + rng.uniform(-0.07, 0.07, shape)
    jet_phi[rows, truth] = baselines.wrap_phi(quark_phi + rng.uniform(-0.07, 0.07, shape))
    np.testing.assert_array_equal(baselines.match_jets(quark_eta, quark_phi, jet_eta, jet_phi),
                                  truth)


def test_matching_wraps_phi(baselines):
    # the quark at phi = pi - 0.01 belongs to the jet at -pi + 0.01, not to the one at 2.5
    quark_eta = np.zeros((1, 4))
    quark_phi = np.array([[np.pi - 0.01, 2.5, -1.0, 0.5]])
    jet_phi = np.array([[2.5, -1.0, 0.5, -np.pi + 0.01]])
    matched = baselines.match_jets(quark_eta, quark_phi, quark_eta, jet_phi)
    np.testing.assert_array_equal(matched, [[3, 0, 1, 2]])


def test_responses_of_known_smearing(baselines, pairs):
    z, x = pairs
    responses = baselines.measure_responses(z, x)
    # smear: 10 % in jet pT, 0.02 in jet eta and phi, 15 GeV per MET component
    assert np.std(np.expm1(responses.jets[..., 0])) == pytest.approx(0.10, rel=0.05)
    assert np.std(responses.jets[..., 1:]) == pytest.approx(0.02, rel=0.05)
    assert np.std(responses.met) == pytest.approx(15.0, rel=0.05)
    np.testing.assert_allclose(responses.electron[:, 1:], 0.0, atol=1e-5)


def test_nearest_neighbour_on_its_own_events_gives_their_x(baselines, pairs):
    z, x = pairs
    model = baselines.NearestNeighbourResponse(neighbours=1).fit(z, x)
    simulated = model.simulate(z, np.random.default_rng(0))
    np.testing.assert_allclose(simulated, x, rtol=1e-5, atol=1e-3)


def test_responses_applied_to_their_partons_give_x_in_layout_order(baselines, pairs):
    z, x = pairs
    rows = np.random.default_rng(1).permutation(len(z))
    responses = baselines.measure_responses(z[rows], x[rows])
    np.testing.assert_allclose(baselines.apply_responses(z[rows], responses), x[rows],
                               rtol=1e-5, atol=1e-3)


def test_binned_smearing_gives_valid_x(baselines, pairs):
    z, x = pairs
    model = baselines.BinnedSmearing(bins=(8, 4)).fit(z[:1000], x[:1000])
    simulated = model.simulate(z[1000:], np.random.default_rng(2))
    assert simulated.shape == (1000, layout.N_FEATURES) and simulated.dtype == np.float32
    assert metrics.valid_fraction(simulated) == 1.0
    # the same seed, the same events; the smearing's resolution is the training's
    np.testing.assert_array_equal(simulated, model.simulate(z[1000:], np.random.default_rng(2)))
    jet = layout.object_slice("x", "jet1")
    pt = np.hypot(simulated[:, jet][:, 0], simulated[:, jet][:, 1])
    true_pt = np.hypot(x[1000:, jet][:, 0], x[1000:, jet][:, 1])
    assert metrics.ks_distance(pt, true_pt) < 0.08


def test_binned_table_bins_hold_equal_populations(baselines):
    rng = np.random.default_rng(3)
    first, second = rng.exponential(50.0, 4000), rng.uniform(0.0, 2.5, 4000)
    table = baselines._BinnedTable.fit(first, second, np.arange(4000)[:, np.newaxis], (10, 4))
    assert set(np.diff(table.starts)) == {100}
    # a value drawn for an object comes from a training object of the same bin
    drawn = table.draw(first, second, rng)[:, 0]
    same_bin = np.searchsorted(table.first_edges, first[drawn], side="right")
    np.testing.assert_array_equal(same_bin, np.searchsorted(table.first_edges, first, "right"))


def test_binned_table_refuses_too_few_objects(baselines):
    with pytest.raises(ValueError, match="cannot fill"):
        baselines._BinnedTable.fit(np.arange(10.0), np.arange(10.0), np.zeros((10, 1)), (4, 4))



def test_fidelity_benchmark_on_a_small_sample(benchmark_modules, paired_sample, capsys):
    bench = benchmark_modules("bench_fidelity")
    args = argparse.Namespace(model=paired_sample["model"], events=800, seed=1,
                              learn_from="half", neighbours=1, folds=2, threads=1)
    rows = bench.bench_sample(paired_sample["full"], args)
    assert list(rows) == [bench.MODEL, bench.SMEARING, bench.NEIGHBOUR, bench.FLOOR]
    for row in rows.values():
        assert set(row["ks"]) == set(bench.KS_COLUMNS)
        assert all(0.0 <= ks <= 1.0 for ks in row["ks"].values())
        assert 0.0 <= row["classifier"]["auc"] <= 1.0
        assert set(bench.PEAKS) <= set(row["peaks"])
    assert rows[bench.SMEARING]["valid"] == rows[bench.NEIGHBOUR]["valid"] == 1.0
    # the untrained model is told apart from the truth; the truth's other half is not
    assert rows[bench.MODEL]["classifier"]["auc"] > 0.9
    assert rows[bench.FLOOR]["classifier"]["auc"] < 0.65
    printed = capsys.readouterr().out
    assert "| simulation | jet1_py |" in printed and f"| {bench.FLOOR} |" in printed


def test_nearest_neighbour_posterior_of_its_own_events_starts_with_their_partons(
    baselines, pairs
):
    z, x = pairs
    samples = baselines.NearestNeighbourPosterior(5).fit(z, x).sample(x[:300])
    assert samples.shape == (300, 5, layout.N_FEATURES) and samples.dtype == np.float32
    np.testing.assert_allclose(samples[:, 0], z[:300], rtol=1e-4, atol=1e-3)


def test_nearest_neighbour_posterior_turns_with_the_event(baselines, pairs):
    # an event rotated about the beam axis has the same neighbours, rotated alike
    z, x = pairs
    posterior = baselines.NearestNeighbourPosterior(4).fit(z[300:], x[300:])
    angle = np.full((300, 1), 0.7)
    turned_x = baselines.rotate_phi(x[:300].reshape(300, 6, 4), angle).reshape(300, 24)
    turned = baselines.rotate_phi(
        posterior.sample(x[:300]).reshape(300, 4, 6, 4), angle[..., np.newaxis]
    )
    np.testing.assert_allclose(
        posterior.sample(turned_x).reshape(300, 4, 6, 4), turned, rtol=1e-3, atol=1e-2
    )


def test_unfolding_benchmark_on_a_small_sample(benchmark_modules, paired_sample, capsys):
    bench = benchmark_modules("bench_unfolding")
    args = argparse.Namespace(model=paired_sample["model"], events=800, samples=10, seed=1,
                              folds=2, threads=1, plots=None)
    rows = bench.bench_sample(paired_sample["full"], args)
    assert list(rows) == [bench.MODEL, bench.NEIGHBOUR, bench.FLOOR]
    for row in rows.values():
        assert set(row["b_ks"]) == set(bench.B_COLUMNS)
        assert all(0.0 <= ks <= 1.0 for ks in [*row["b_ks"].values(), *row["mass_ks"].values()])
    # the nearest neighbours' events are tt-bar events: their masses are the truth's
    assert max(rows[bench.NEIGHBOUR]["mass_ks"].values()) < 0.2
    assert rows[bench.MODEL]["classifier"]["auc"] > 0.9  # an untrained model
    assert rows[bench.FLOOR]["coverage"] is None
    assert 0.0 <= rows[bench.NEIGHBOUR]["coverage"]["m_tt"]["0.95"] <= 1.0
    printed = capsys.readouterr().out
    assert "| unfolded partons | b_py |" in printed and f"| {bench.NEIGHBOUR} |" in printed
