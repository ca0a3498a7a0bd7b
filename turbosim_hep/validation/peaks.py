"""Mass peaks of the simulation against the truth: position, height and width.

A KS distance summarises a whole distribution and is dominated by its bulk; a top-mass
fit, a resonance search or a W-tagging study fits the peak. For every reconstructed mass
(`PEAK_MASSES`) the truth and the simulation are histogrammed with one fixed binning (the
mass's validation range, `turbosim_hep.validation.quantities.QUANTITY_BY_NAME`, in
`PEAK_BINS` bins) from their unbinned, weighted values, each normalised to unit area, and
compared by:

- ``height_ratio``: simulation / truth in the truth's highest bin;
- ``fwhm_truth``, ``fwhm_simulation`` and their ratio ``fwhm_ratio`` (simulation /
  truth): the full width at half maximum, its two crossings interpolated linearly
  between bin centres so that it is not a multiple of the bin width;
- ``peak_truth``, ``peak_simulation``: the peak position, the vertex of the parabola
  through the highest bin and its two neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from turbosim_hep import physics
from turbosim_hep.validation.quantities import QUANTITY_BY_NAME

#: Bins of the peak histograms over each mass's validation range.
PEAK_BINS = 100
#: The reconstructed masses whose peaks are compared.
PEAK_MASSES: tuple[str, ...] = tuple(n for n in physics.OBSERVABLE_NAMES if n.startswith("m_"))


def density(
    values: np.ndarray,
    weights: np.ndarray | None,
    value_range: tuple[float, float],
    bins: int = PEAK_BINS,
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of (weighted) values normalised to unit area.

    The area counts every finite value, out of range too, so that a sample with more
    events outside the range gets a lower peak, not a renormalised one.

    Returns
    -------
    tuple of numpy.ndarray
        The density in each bin (per unit of the values) and the bin edges.
    """
    values = np.asarray(values, dtype=np.float64)
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)
    finite = np.isfinite(values)
    counts, edges = np.histogram(values[finite], bins, value_range, weights=w[finite])
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / (w[finite].sum() * np.diff(edges)), edges


def peak_position(counts: np.ndarray, edges: np.ndarray) -> float:
    """Vertex of the parabola through the highest bin and its neighbours (its centre at
    the edge of the range); NaN for an empty histogram."""
    peak = int(np.argmax(counts))
    if not counts[peak] > 0:
        return float("nan")
    width = edges[peak + 1] - edges[peak]
    centre = edges[peak] + 0.5 * width
    if peak in (0, len(counts) - 1):
        return float(centre)
    below, top, above = counts[peak - 1 : peak + 2]
    curvature = below - 2.0 * top + above
    offset = 0.5 * (below - above) / curvature if curvature < 0 else 0.0
    return float(centre + np.clip(offset, -0.5, 0.5) * width)


def fwhm(counts: np.ndarray, edges: np.ndarray) -> float:
    """Full width at half maximum of a histogram.

    From the highest bin outwards, the first bin on each side below half its height;
    each crossing is interpolated linearly between that bin's centre and its neighbour's
    towards the peak. NaN when a side does not fall below half within the range.
    """
    peak = int(np.argmax(counts))
    half = 0.5 * counts[peak]
    centres = 0.5 * (edges[1:] + edges[:-1])
    below = counts < half
    left, right = np.flatnonzero(below[:peak]), np.flatnonzero(below[peak:])
    if not (len(left) and len(right)):
        return float("nan")
    i, j = left[-1], peak + right[0]
    # counts rise through half from bin i to i + 1, and fall through it from j - 1 to j
    x_left = np.interp(half, counts[i : i + 2], centres[i : i + 2])
    x_right = np.interp(half, counts[[j, j - 1]], centres[[j, j - 1]])
    return float(x_right - x_left)


def compare_peaks(
    truth: np.ndarray,
    simulation: np.ndarray,
    truth_weights: np.ndarray | None = None,
    simulation_weights: np.ndarray | None = None,
    *,
    value_range: tuple[float, float],
    bins: int = PEAK_BINS,
) -> dict[str, float]:
    """Peak position, height and width of a simulated distribution against the truth's.

    Parameters
    ----------
    truth, simulation : numpy.ndarray
        Unbinned values (non-finite ones are left out).
    truth_weights, simulation_weights : numpy.ndarray, optional
        Event weights.
    value_range : tuple of float
        The range of the histograms.
    bins : int
        Their number of bins.

    Returns
    -------
    dict[str, float]
        ``peak_truth``, ``peak_simulation`` (positions), ``height_ratio`` (simulation /
        truth in the truth's highest bin, both normalised to unit area),
        ``fwhm_truth``, ``fwhm_simulation`` and ``fwhm_ratio`` (simulation / truth).
    """
    truth_density, edges = density(truth, truth_weights, value_range, bins)
    simulated_density, _ = density(simulation, simulation_weights, value_range, bins)
    peak = int(np.argmax(truth_density))
    widths = fwhm(truth_density, edges), fwhm(simulated_density, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        height_ratio = simulated_density[peak] / truth_density[peak]
        fwhm_ratio = np.float64(widths[1]) / widths[0]
    return {
        "peak_truth": peak_position(truth_density, edges),
        "peak_simulation": peak_position(simulated_density, edges),
        "height_ratio": float(height_ratio),
        "fwhm_truth": widths[0],
        "fwhm_simulation": widths[1],
        "fwhm_ratio": float(fwhm_ratio),
    }


def mass_peaks(
    truth: Mapping[str, np.ndarray],
    simulation: Mapping[str, np.ndarray],
    truth_weights: np.ndarray | None = None,
    simulation_weights: np.ndarray | None = None,
    *,
    bins: int = PEAK_BINS,
) -> dict[str, dict[str, float]]:
    """`compare_peaks` of every one of the `PEAK_MASSES` both samples hold.

    Parameters
    ----------
    truth, simulation : mapping of str to numpy.ndarray
        Per-event values keyed by quantity name
        (`turbosim_hep.validation.processor.dataset_values`, or
        `turbosim_hep.validation.classifier.detector_values`).
    truth_weights, simulation_weights : numpy.ndarray, optional
        Event weights, one per event of the masses.
    bins : int
        Bins over each mass's validation range.

    Returns
    -------
    dict
        Mass name -> the figures of `compare_peaks`.
    """
    return {
        name: compare_peaks(
            truth[name], simulation[name], truth_weights, simulation_weights,
            value_range=QUANTITY_BY_NAME[name].range, bins=bins,
        )
        for name in PEAK_MASSES
        if name in truth and name in simulation
    }


__all__ = ["PEAK_BINS", "PEAK_MASSES", "compare_peaks", "density", "fwhm", "mass_peaks",
           "peak_position"]
