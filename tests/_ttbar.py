"""Semileptonic tt-bar events with resonance line shapes, for the validation tests.

The six partons of pp -> tt-bar -> e- nu_e-bar b b-bar u d-bar come from a chain of
isotropic two-body decays with Breit-Wigner top and W masses and a plausible tt-bar
system (mass, transverse momentum, rapidity); the detector response is a Gaussian
smearing. Enough for the reconstruction to find the W and top peaks and for the
analysis to run on physically consistent events, without Pythia and a detector.
"""

from __future__ import annotations

import os

import numpy as np
import vector

from turbosim_hep import layout
from turbosim_hep.io.writer import EventWriter, event_columns, parton_columns, reco_columns

#: Pole masses and widths (GeV) of the synthetic resonances.
TOP_MASS, TOP_WIDTH = 172.5, 1.42
W_MASS, W_WIDTH = layout.M_W, 2.085
B_MASS = 4.7


def ttbar_partons(n: int, seed: int = 0) -> np.ndarray:
    """float32 (n, 24) partons in the Z layout (e-, nu_e-bar, b, b-bar, u, d-bar)."""
    rng = np.random.default_rng(seed)
    m_top = _breit_wigner(rng, TOP_MASS, TOP_WIDTH, n, 2, (150.0, 195.0))
    m_w = _breit_wigner(rng, W_MASS, W_WIDTH, n, 2, (60.0, 100.0))
    m_tt = m_top.sum(axis=1) + rng.exponential(150.0, n)
    pt_tt = rng.exponential(30.0, n)
    rapidity = rng.normal(0.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mt_tt = np.hypot(m_tt, pt_tt)
    system = vector.array(
        {
            "px": pt_tt * np.cos(phi),
            "py": pt_tt * np.sin(phi),
            "pz": mt_tt * np.sinh(rapidity),
            "E": mt_tt * np.cosh(rapidity),
        }
    )
    top, antitop = _two_body(rng, system, m_top[:, 0], m_top[:, 1])
    w_plus, b = _two_body(rng, top, m_w[:, 0], np.full(n, B_MASS))
    w_minus, bbar = _two_body(rng, antitop, m_w[:, 1], np.full(n, B_MASS))
    u, dbar = _two_body(rng, w_plus, np.zeros(n), np.zeros(n))
    electron, nubar = _two_body(rng, w_minus, np.zeros(n), np.zeros(n))
    partons = (electron, nubar, b, bbar, u, dbar)  # Z order, see layout.PARTONS
    z = np.stack([np.stack([p.px, p.py, p.pz, p.E], axis=-1) for p in partons], axis=1)
    return z.reshape(n, layout.N_FEATURES).astype(np.float32)


def smear(z: np.ndarray, seed: int = 1, *, jet_resolution: float = 0.10) -> np.ndarray:
    """float32 (n, 24) X array: smeared massless objects, jets in pT order.

    Electron: 2% pT resolution; jets: ``jet_resolution`` in pT, 0.02 in eta and phi;
    MET: the neutrino's transverse momentum with 15 GeV per component.
    """
    rng = np.random.default_rng(seed)
    n = len(z)
    p4 = np.asarray(z, dtype=np.float64).reshape(n, layout.N_OBJECTS, layout.N_COMPONENTS)
    electron = _massless(p4[:, 0], rng, pt_resolution=0.02, angle_resolution=0.0)
    met = p4[:, 1, :2] + rng.normal(0.0, 15.0, (n, 2))
    jets = _massless(p4[:, 2:], rng, pt_resolution=jet_resolution, angle_resolution=0.02)
    order = np.argsort(-np.hypot(jets[..., 0], jets[..., 1]), axis=1)
    jets = np.take_along_axis(jets, order[..., np.newaxis], axis=1)
    met_p4 = np.concatenate([met, np.zeros((n, 1)), np.hypot(met[:, :1], met[:, 1:])], axis=1)
    return np.concatenate([electron, met_p4, jets.reshape(n, -1)], axis=1).astype(np.float32)


def write_sample(path: str | os.PathLike, z: np.ndarray | None, x: np.ndarray | None) -> str:
    """Write (n, 24) Z and/or X arrays as one of the project's own ROOT files."""
    n = len(z if z is not None else x)
    chunk = event_columns(np.arange(n))
    if x is not None:
        chunk |= reco_columns(x)
    if z is not None:
        chunk |= parton_columns(z)
    with EventWriter(path) as writer:
        writer.write(chunk)
    return writer.path


def ttbar_pairs(n: int, seed: int = 0):
    """``n`` paired events (`turbosim_hep.training.PairedEvents`): partons and their smearing."""
    from turbosim_hep.training import PairedEvents  # torch, only where pairs are asked for

    z = ttbar_partons(n, seed=seed)
    return PairedEvents(z, smear(z, seed=seed + 1))


def _breit_wigner(rng, mass, width, n, k, window) -> np.ndarray:
    """(n, k) masses from a (non-relativistic) Breit-Wigner truncated to ``window``."""
    lo, hi = (np.arctan(2.0 * (w - mass) / width) for w in window)
    return mass + 0.5 * width * np.tan(rng.uniform(lo, hi, (n, k)))


def _two_body(rng, parent, m1: np.ndarray, m2: np.ndarray):
    """Isotropic two-body decay of ``parent`` (vector array); daughters in the lab frame."""
    m = parent.mass
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0.0)) / (2 * m)
    cos_theta = rng.uniform(-1.0, 1.0, len(m))
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    phi = rng.uniform(-np.pi, np.pi, len(m))
    direction = np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), cos_theta])
    daughters = []
    for sign, mass in ((1.0, m1), (-1.0, m2)):
        px, py, pz = sign * p * direction
        rest = vector.array({"px": px, "py": py, "pz": pz, "E": np.sqrt(p**2 + mass**2)})
        daughters.append(rest.boost_p4(parent))
    return daughters


def _massless(p4: np.ndarray, rng, *, pt_resolution: float, angle_resolution: float) -> np.ndarray:
    """Smeared massless (..., 4) four-momenta from (..., 4) ones."""
    pt = np.hypot(p4[..., 0], p4[..., 1])
    eta = np.arcsinh(p4[..., 2] / pt)
    phi = np.arctan2(p4[..., 1], p4[..., 0])
    pt = pt * np.abs(1.0 + rng.normal(0.0, pt_resolution, pt.shape))
    if angle_resolution:
        eta = eta + rng.normal(0.0, angle_resolution, eta.shape)
        phi = phi + rng.normal(0.0, angle_resolution, phi.shape)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], -1)
