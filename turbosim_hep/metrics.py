"""Distances between samples, the physical validity of generated events, and the
quality of a probabilistic classifier.

KS and Wasserstein-1 distances are computed on unbinned values, as the paper does,
optionally with per-event weights (a weighted sample's empirical distribution puts each
value's weight on it). Weights may be negative, as those of NLO generators are: the
empirical distribution is then the signed one (normalised to the sum of the weights, which
must be positive), as a weighted histogram is, and the distances are those between the
two signed distribution functions.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from turbosim_hep import layout

#: Relative tolerance of the validity checks (float32 arithmetic).
VALIDITY_RTOL = 1e-4


def ks_distance(
    a: np.ndarray,
    b: np.ndarray,
    weights_a: np.ndarray | None = None,
    weights_b: np.ndarray | None = None,
) -> float:
    """Two-sample Kolmogorov-Smirnov distance (sup of the difference of the ECDFs).

    Non-finite values are dropped from both samples; an empty sample gives NaN. With
    weights (finite, of a positive sum; negative ones allowed), each sample's ECDF is
    the weighted one.
    """
    (a, weights_a), (b, weights_b) = _finite(a, weights_a), _finite(b, weights_b)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if weights_a is None and weights_b is None:
        return float(stats.ks_2samp(a, b, method="asymp").statistic)
    points = np.concatenate([a, b])
    return float(np.max(np.abs(_ecdf(a, weights_a, points) - _ecdf(b, weights_b, points))))


def wasserstein1(
    a: np.ndarray,
    b: np.ndarray,
    weights_a: np.ndarray | None = None,
    weights_b: np.ndarray | None = None,
) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1D samples, in their units.

    With weights (finite, of a positive sum; negative ones allowed), the integral of the
    absolute difference of the two weighted ECDFs, which is the earth mover's distance
    for non-negative weights and its signed extension otherwise.
    """
    (a, weights_a), (b, weights_b) = _finite(a, weights_a), _finite(b, weights_b)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    if weights_a is None and weights_b is None:
        return float(stats.wasserstein_distance(a, b))
    points = np.sort(np.concatenate([a, b]))
    gaps = _ecdf(a, weights_a, points[:-1]) - _ecdf(b, weights_b, points[:-1])
    return float(np.sum(np.abs(gaps) * np.diff(points)))


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


def binary_cross_entropy(
    probability: np.ndarray, passed: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """(Weighted) mean binary cross-entropy of predicted probabilities, in nats."""
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    y = np.asarray(passed, dtype=np.float64)
    loss = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return float(np.average(loss, weights=weights))


def roc_auc(score: np.ndarray, passed: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) area under the ROC curve: P(score of a passing event > a failing one).

    Ties count one half. NaN when either class is empty.
    """
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(passed, dtype=bool)
    w = np.ones(len(score)) if weights is None else np.asarray(weights, dtype=np.float64)
    _, level = np.unique(score, return_inverse=True)
    positive = np.bincount(level, weights=w * y)
    negative = np.bincount(level, weights=w * ~y)
    if positive.sum() == 0 or negative.sum() == 0:
        return float("nan")
    negative_below = np.cumsum(negative) - negative
    pairs = np.sum(positive * (negative_below + 0.5 * negative))
    return float(pairs / (positive.sum() * negative.sum()))


def calibration_table(
    probability: np.ndarray,
    passed: np.ndarray,
    weights: np.ndarray | None = None,
    bins: int = 10,
) -> dict[str, np.ndarray]:
    """Mean predicted probability against observed pass fraction, in quantile bins.

    Parameters
    ----------
    probability : numpy.ndarray
        Predicted probabilities.
    passed : numpy.ndarray
        Observed outcomes (bool).
    weights : numpy.ndarray, optional
        Event weights.
    bins : int
        Bins of equal (unweighted) population in the predicted probability.

    Returns
    -------
    dict[str, numpy.ndarray]
        Per bin: ``predicted`` (weighted mean probability), ``observed`` (weighted pass
        fraction), ``error`` (binomial standard error of ``observed`` with the effective
        number of events), ``weight`` (sum of weights) and ``events``.
    """
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(passed, dtype=np.float64)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)))
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    return binned_pass_fraction(index, p, y, w, max(len(edges) - 1, 1))


def binned_pass_fraction(
    index: np.ndarray, probability: np.ndarray, passed: np.ndarray, weights: np.ndarray,
    n_bins: int,
) -> dict[str, np.ndarray]:
    """Per-bin weighted mean prediction, pass fraction and its standard error.

    ``index`` gives each event's bin (0 to ``n_bins`` - 1); see `calibration_table` for
    the returned keys. The standard error uses the effective number of events
    (sum w)^2 / sum w^2 of each bin.
    """
    weight = np.bincount(index, weights=weights, minlength=n_bins)
    weight2 = np.bincount(index, weights=weights**2, minlength=n_bins)
    events = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(index, weights=weights * probability, minlength=n_bins) / weight
        observed = np.bincount(index, weights=weights * passed, minlength=n_bins) / weight
        effective = weight**2 / weight2
        error = np.sqrt(observed * (1.0 - observed) / effective)
    return {
        "predicted": predicted, "observed": observed, "error": error, "weight": weight,
        "events": events,
    }


def calibration_error(
    probability: np.ndarray,
    passed: np.ndarray,
    weights: np.ndarray | None = None,
    bins: int = 10,
) -> float:
    """Expected calibration error: weighted mean of |predicted - observed| over the bins
    of `calibration_table`."""
    table = calibration_table(probability, passed, weights, bins)
    gap = np.abs(table["predicted"] - table["observed"])
    filled = table["weight"] > 0
    return float(np.average(gap[filled], weights=table["weight"][filled]))


def _ecdf(values: np.ndarray, weights: np.ndarray | None, points: np.ndarray) -> np.ndarray:
    """The (weighted, possibly signed) empirical CDF of ``values`` at ``points``.

    Raises
    ------
    ValueError
        If the weights are not finite or do not sum to a positive number.
    """
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    w = np.ones(len(values)) if weights is None else weights[order]
    cumulative = np.concatenate([[0.0], np.cumsum(w)])
    if not (np.isfinite(cumulative[-1]) and cumulative[-1] > 0):
        raise ValueError(f"weights summing to {cumulative[-1]:g} have no distribution")
    cumulative /= cumulative[-1]
    return cumulative[np.searchsorted(sorted_values, points, side="right")]


def _finite(
    values: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Finite values (float64, flat) and their weights."""
    values = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(values)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64).ravel()[keep]
    return values[keep], weights
