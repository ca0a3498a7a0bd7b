"""Distances between samples and the physical validity of generated events.

KS and Wasserstein-1 distances are computed on unbinned values, as the paper does.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from turbosim_hep import layout

#: Relative tolerance of the validity checks (float32 arithmetic).
VALIDITY_RTOL = 1e-4


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance (sup of the difference of the ECDFs).

    Non-finite values are dropped from both samples; an empty sample gives NaN.
    """
    a, b = _finite(a), _finite(b)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(stats.ks_2samp(a, b, method="asymp").statistic)


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1D samples, in their units."""
    a, b = _finite(a), _finite(b)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(stats.wasserstein_distance(a, b))


def ks_per_feature(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KS distance of every column of two (n, k) arrays (the rows need not match)."""
    return np.array([ks_distance(a[:, j], b[:, j]) for j in range(a.shape[1])])


def ks_floor(n: int, m: int | None = None) -> float:
    """Mean KS distance of two samples of sizes n and m drawn from one distribution.

    About 0.87 * sqrt(1/n + 1/m): the statistical floor below which no model can be
    told from the truth.
    """
    m = n if m is None else m
    return 0.8687 * float(np.sqrt(1.0 / n + 1.0 / m))


def valid_x_events(x: np.ndarray) -> np.ndarray:
    """Which events of an (n, 24) X array are physically valid.

    Valid means: every four-vector finite with E >= |p| (up to float32 rounding), the
    MET with pz = 0 and E = |pT|, and the four jets in decreasing pT order.
    """
    n = len(x)
    p4 = np.asarray(x, dtype=np.float64).reshape(n, layout.N_OBJECTS, layout.N_COMPONENTS)
    momentum = np.linalg.norm(p4[..., :3], axis=-1)
    scale = np.maximum(p4[..., 3], 1.0)
    finite = np.all(np.isfinite(p4), axis=(1, 2))
    timelike = np.all(p4[..., 3] - momentum >= -VALIDITY_RTOL * scale, axis=1)
    met = p4[:, layout.X_OBJECTS.index("met")]
    met_pt = np.hypot(met[:, 0], met[:, 1])
    met_ok = (np.abs(met[:, 2]) <= VALIDITY_RTOL * np.maximum(met_pt, 1.0)) & (
        np.abs(met[:, 3] - met_pt) <= VALIDITY_RTOL * np.maximum(met_pt, 1.0)
    )
    jets = p4[:, 2:]
    jet_pt = np.hypot(jets[..., 0], jets[..., 1])
    ordered = np.all(np.diff(jet_pt, axis=1) <= VALIDITY_RTOL * jet_pt[:, 1:], axis=1)
    return finite & timelike & met_ok & ordered


def valid_fraction(x: np.ndarray) -> float:
    """Fraction of physically valid events of an (n, 24) X array (NaN when empty)."""
    return float(np.mean(valid_x_events(x))) if len(x) else float("nan")


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]
