"""tt-bar reconstruction: physics on parton-level truth, and agreement with a plain loop."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import warnings

import awkward as ak
import numpy as np
import pytest
import vector

import turbosim_hep
from turbosim_hep import layout, physics

from _ttbar import smear, ttbar_partons


def partons_as_objects(z: np.ndarray) -> np.ndarray:
    """X array whose objects are the six partons (the neutrino's pT as the MET)."""
    n = len(z)
    p = z.reshape(n, layout.N_OBJECTS, layout.N_COMPONENTS).astype(np.float64)
    met = np.concatenate([p[:, 1, :2], np.zeros((n, 1)), np.hypot(p[:, 1, :1], p[:, 1, 1:2])], 1)
    return np.concatenate([p[:, 0], met, p[:, 2:].reshape(n, -1)], axis=1)


@pytest.fixture(scope="module")
def partons() -> np.ndarray:
    return ttbar_partons(20_000, seed=11)


def test_parton_level_truth_finds_the_w_and_top_peaks(partons):
    result = physics.reconstruct(partons_as_objects(partons))
    assert np.median(result["m_W_had"]) == pytest.approx(80.4, abs=0.5)
    assert np.median(result["m_t_had"]) == pytest.approx(172.5, abs=1.0)
    assert np.median(result["m_t_lep"]) == pytest.approx(172.5, abs=1.5)
    # The W constraint holds exactly wherever the neutrino pz is real.
    assert np.mean(np.isclose(result["m_W_lep"], layout.M_W, rtol=1e-9)) > 0.6
    # The chosen hadronic W is the u d-bar pair (jets 3 and 4 of this X) most of the time.
    result = physics.reconstruct(partons_as_objects(partons), return_assignment=True)
    assignment = result["assignment"]
    w_pair = {tuple(sorted(row[1:3])) for row in layout.ASSIGNMENTS[assignment]}
    assert (2, 3) in w_pair
    right_pair = np.all(np.sort(layout.ASSIGNMENTS[assignment][:, 1:3], axis=1) == (2, 3), axis=1)
    assert right_pair.mean() > 0.8


def test_assignments_are_the_twelve_distinct_ones():
    rows = {(a, frozenset((b, c)), d) for a, b, c, d in layout.ASSIGNMENTS}
    assert len(layout.ASSIGNMENTS) == 12 and len(rows) == 12
    assert all(sorted(row) == [0, 1, 2, 3] for row in layout.ASSIGNMENTS.tolist())


# --- an independent, straightforward per-event implementation --------------------------


def _mass(*p4s) -> float:
    e = sum(p[3] for p in p4s)
    px, py, pz = (sum(p[i] for p in p4s) for i in range(3))
    m2 = e * e - px * px - py * py - pz * pz
    return math.copysign(math.sqrt(abs(m2)), m2)


def _loop_reconstruction(x: np.ndarray) -> dict[str, np.ndarray]:
    out = {name: [] for name in physics.OBSERVABLE_NAMES}
    for event in np.asarray(x, dtype=np.float64):
        e, met, *jets = event.reshape(6, 4)
        # (e + nu)^2 = mW^2 as a polynomial in pz_nu, roots by numpy.roots.
        m2_e = e[3] ** 2 - e[0] ** 2 - e[1] ** 2 - e[2] ** 2
        mu = layout.M_W**2 / 2 - m2_e / 2 + e[0] * met[0] + e[1] * met[1]
        pt_nu2 = met[0] ** 2 + met[1] ** 2
        roots = np.roots([e[3] ** 2 - e[2] ** 2, -2 * mu * e[2], e[3] ** 2 * pt_nu2 - mu**2])
        if np.iscomplexobj(roots) and np.any(np.abs(roots.imag) > 0):
            pz = roots[0].real
        else:
            pz = min(roots.real, key=abs)
        nu = (met[0], met[1], pz, math.sqrt(pt_nu2 + pz * pz))
        best = None
        for b_lep, b_had in itertools.permutations(range(4), 2):
            w1, w2 = (j for j in range(4) if j not in (b_lep, b_had))
            m_t_lep = _mass(e, nu, jets[b_lep])
            m_w_had = _mass(jets[w1], jets[w2])
            m_t_had = _mass(jets[w1], jets[w2], jets[b_had])
            chi2 = (
                ((m_t_lep - 172.76) / 5) ** 2
                + ((m_w_had - 80.379) / 10) ** 2
                + ((m_t_had - 172.76) / 15) ** 2
            )
            if best is None or chi2 < best[0]:
                t_had = sum(np.asarray(jets[j]) for j in (w1, w2, b_had))
                t_lep = np.asarray(e) + np.asarray(nu) + jets[b_lep]
                pts = (math.hypot(*t_had[:2]), math.hypot(*t_lep[:2]))
                best = (chi2, m_t_lep, m_w_had, m_t_had, *pts)
        _, m_t_lep, m_w_had, m_t_had, pt_had, pt_lep = best
        values = {
            "m_tt": _mass(e, nu, *jets), "m_W_had": m_w_had, "m_t_had": m_t_had,
            "m_W_lep": _mass(e, nu), "m_t_lep": m_t_lep, "pt_t_had": pt_had, "pt_t_lep": pt_lep,
        }
        for name, value in values.items():
            out[name].append(value)
    return {name: np.array(values) for name, values in out.items()}


def test_agrees_with_a_per_event_loop_to_1e6():
    x = smear(ttbar_partons(1000, seed=3), seed=4)
    vectorised = physics.reconstruct(x)
    looped = _loop_reconstruction(x)
    for name in physics.OBSERVABLE_NAMES:
        np.testing.assert_allclose(vectorised[name], looped[name], rtol=1e-6, err_msg=name)


def test_neutrino_pz_solves_the_w_constraint_with_the_smaller_root():
    rng = np.random.default_rng(5)
    n = 2000
    lepton_pt, eta, phi = rng.uniform(20, 200, n), rng.normal(0, 1.5, n), rng.uniform(-3, 3, n)
    lepton = np.stack(
        [
            lepton_pt * np.cos(phi),
            lepton_pt * np.sin(phi),
            lepton_pt * np.sinh(eta),
            lepton_pt * np.cosh(eta),
        ],
        1,
    )
    met = rng.normal(0, 60, (n, 2))
    pz = physics.neutrino_pz(lepton, met[:, 0], met[:, 1])
    energy = np.sqrt(met[:, 0] ** 2 + met[:, 1] ** 2 + pz**2)
    total = lepton + np.stack([met[:, 0], met[:, 1], pz, energy], 1)
    m = np.sqrt(np.maximum(total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1), 0))
    # Real roots exist exactly when the transverse mass is below m_W; then m = m_W.
    mt = np.sqrt(
        2
        * (
            lepton_pt * np.hypot(met[:, 0], met[:, 1])
            - lepton[:, 0] * met[:, 0]
            - lepton[:, 1] * met[:, 1]
        )
    )
    real = mt < layout.M_W - 1e-3
    assert 0.2 < real.mean() < 1.0
    np.testing.assert_allclose(m[real], layout.M_W, rtol=1e-9)
    assert np.all(m[~real] > layout.M_W - 1e-6)  # complex roots: the real part overshoots
    # a lepton without transverse momentum (a generated one can have it) has no solution
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        leptons = np.array([[0.0, 0.0, 30.0, 30.0], lepton[0]])
        pz = physics.neutrino_pz(leptons, met[:2, 0], met[:2, 1])
    assert np.isnan(pz[0]) and np.isfinite(pz[1])


def test_vector_entry_point_takes_any_coordinates_and_jagged_jets():
    x = smear(ttbar_partons(500, seed=8), seed=9)
    n = len(x)
    p4 = x.reshape(n, 6, 4).astype(np.float64)

    def ptetaphim(p):
        return vector.zip(
            {
                "pt": np.hypot(p[..., 0], p[..., 1]),
                "eta": np.arcsinh(p[..., 2] / np.hypot(p[..., 0], p[..., 1])),
                "phi": np.arctan2(p[..., 1], p[..., 0]),
                "mass": np.zeros(p.shape[:-1]),
            }
        )

    electron = ptetaphim(p4[:, 0])
    met = vector.zip({"px": p4[:, 1, 0], "py": p4[:, 1, 1]})
    jets = ak.unflatten(ptetaphim(p4[:, 2:].reshape(-1, 4)), np.full(n, 4))  # var * 4
    from_vectors = physics.reconstruct_objects(electron, met, jets)
    from_x = physics.reconstruct(x)
    # Same events in other coordinates: only float rounding differs, which the square
    # root of a near-zero W-constraint discriminant amplifies in a few events.
    for name in physics.OBSERVABLE_NAMES:
        np.testing.assert_allclose(from_vectors[name], from_x[name], rtol=1e-4, err_msg=name)
        assert np.median(np.abs(from_vectors[name] / from_x[name] - 1)) < 1e-7


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="24"):
        physics.reconstruct(np.zeros((3, 20)))
    electron = vector.zip({"px": [1.0], "py": [0.0], "pz": [0.0], "E": [1.0]})
    three_jets = vector.zip(
        {"px": [[1.0] * 3], "py": [[0.0] * 3], "pz": [[0.0] * 3], "E": [[1.0] * 3]}
    )
    with pytest.raises(ValueError, match="4 jets"):
        physics.reconstruct_objects(electron, electron, three_jets)


def test_empty_input_gives_empty_output():
    result = physics.reconstruct(np.zeros((0, 24), dtype=np.float32))
    assert all(len(v) == 0 for v in result.values())


def test_torch_and_numpy_implementations_agree():
    """The mass features of the training loss (torch) and the analysis (NumPy) hold the
    same neutrino solution and choose the same jet assignment."""
    torch = pytest.importorskip("torch")
    from turbosim_hep.model import masses

    x = smear(ttbar_partons(3000, seed=12), seed=13).astype(np.float64)
    observed = physics.reconstruct(x)
    complex_roots = observed["m_W_lep"] > layout.M_W + 1e-6
    assert 0.05 < complex_roots.mean() < 0.95  # both branches of the solution are exercised
    tensor = torch.from_numpy(x)
    nu_pz = masses.neutrino_pz(tensor[:, 0:4], tensor[:, 4:6]).numpy()
    np.testing.assert_allclose(nu_pz, observed["neutrino_pz"], rtol=1e-6, atol=1e-4)
    features = masses.mass_features(tensor).numpy()
    for name in ("m_tt", "m_W_had", "m_t_had", "m_t_lep"):
        column = np.expm1(features[:, masses.MASS_FEATURE_NAMES.index(name)])
        np.testing.assert_allclose(column, observed[name], rtol=1e-6, atol=1e-4, err_msg=name)


def _run(code: str) -> str:
    """stdout of ``code`` in a fresh interpreter importing this source tree."""
    root = os.path.dirname(os.path.dirname(turbosim_hep.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_vector_is_registered_only_when_needed():
    code = """
import sys
import awkward as ak
import numpy as np
from turbosim_hep import physics
from turbosim_hep.kinematics import p4_from_ptetaphim

assert "vector" not in sys.modules
# plain records named after vector's classes, made before its behaviours are registered:
# px, py, pz and E exist only through vector
pt, eta = np.array([[40.0, 90.0, 70.0, 50.0, 30.0]]), np.array([[0.3, -1.0, 0.5, 1.2, -0.4]])
phi, mass = np.array([[0.1, 2.0, -2.5, 1.0, -0.7]]), np.zeros((1, 5))
def vectors(s, name="Momentum4D"):
    return ak.zip({"pt": pt[:, s], "eta": eta[:, s], "phi": phi[:, s], "mass": mass[:, s]},
                  with_name=name)
met = ak.zip({"pt": [35.0], "phi": [1.5]}, with_name="Momentum2D")
result = physics.reconstruct_objects(vectors(0), met, vectors(slice(1, 5)))
x = np.concatenate([p4_from_ptetaphim(pt[:, :1], eta[:, :1], phi[:, :1]),
                    [[[35 * np.cos(1.5), 35 * np.sin(1.5), 0.0, 35.0]]],
                    p4_from_ptetaphim(pt[:, 1:], eta[:, 1:], phi[:, 1:])], axis=1)
expected = physics.reconstruct(x.reshape(1, 24))
for name in physics.OBSERVABLE_NAMES:
    assert np.allclose(result[name], expected[name], rtol=1e-9), name
print("ok")
"""
    assert _run(code).strip() == "ok"


def test_the_model_imports_no_analysis():
    modules = set(_run("import sys, turbosim_hep.model; print(' '.join(sys.modules))").split())
    assert "turbosim_hep.model" in modules
    for name in ("awkward", "vector", "coffea", "uproot", "turbosim_hep.physics"):
        assert name not in modules, name
