"""Parton-level validation of unfolding: masses, a classifier test and posterior coverage.

`turbosim-hep unfold` turns each detector-level event into the six partons of the Z
layout (`turbosim_hep.layout`). Three marginals of one b quark (Table 1) say little
about whether the unfolded events are tt-bar events; this module judges them as a
physicist would:

- `parton_quantities`: the masses of the two W bosons, the two top quarks and the tt-bar
  system of the partons (`PARTON_MASSES`), the top and anti-top pT and the b quark's pT,
  on arrays of any leading shape;
- `mass_ks`: the KS distance of each of these masses to the true partons' (Table 1's
  unit: x 10^-2 when reported);
- `parton_event_features` and `parton_classifier_test`: the classifier two-sample test
  of `turbosim_hep.validation.classifier` on unfolded against true partons (per-parton
  log pT, eta, phi and the masses);
- `coverage`, `coverage_table`, `calibration_curves`: for posterior samples, K unfolded
  events per detector event, the fraction of events whose true value lies in the central
  interval of its K samples, at 68 % and 95 % or on a grid of nominal levels, for
  `COVERAGE_QUANTITIES`; `plot_calibration` draws the observed against the nominal
  fraction (mplhep, PNG and PDF);
- `matched_posterior`: the K samples of each event of ``unfold --samples K`` files
  (`turbosim_hep.io.samples.posterior_samples`) beside the true partons of the same
  events, read from the files that were unfolded.

Everything runs on whole arrays: no per-event Python.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from turbosim_hep import kinematics, metrics
from turbosim_hep.io import read_events
from turbosim_hep.io.samples import posterior_samples
from turbosim_hep.io.writer import read_metadata
from turbosim_hep.layout import (
    DEFAULT_LAYOUT,
    N_COMPONENTS,
    N_FEATURES,
    N_OBJECTS,
    TOP_DECAYS,
    Layout,
)
from turbosim_hep.physics import OBSERVABLES, Observable
from turbosim_hep.validation import classifier

_OBSERVABLE = {o.name: o for o in OBSERVABLES}


#: The two top decays (`turbosim_hep.layout.TOP_DECAYS`): the leptonic one, whose W gives
#: the electron (the anti-top's in the reference channel), and the hadronic one.
#: Positions shared by every lepton+jets layout: the lepton is the first parton.
_LEPTONIC = next(d for d in TOP_DECAYS if 0 in d.w_daughters)
_HADRONIC = next(d for d in TOP_DECAYS if d is not _LEPTONIC)
_T_LEP, _T_HAD = ((*d.w_daughters, d.b) for d in (_LEPTONIC, _HADRONIC))

#: The parton-level quantities, named as the detector-level reconstruction names the same
#: resonances (`turbosim_hep.physics.OBSERVABLES`): each is the four-momentum sum of the
#: partons in `PARTON_GROUPS`.
PARTON_GROUPS: Mapping[str, tuple[int, ...]] = {
    "m_W_lep": _LEPTONIC.w_daughters,
    "m_W_had": _HADRONIC.w_daughters,
    "m_t_lep": _T_LEP,
    "m_t_had": _T_HAD,
    "m_tt": tuple(range(N_OBJECTS)),
    "pt_t_lep": _T_LEP,
    "pt_t_had": _T_HAD,
    "pt_b": (DEFAULT_LAYOUT.z_objects.index("b"),),
}
#: The parton-level masses: of the W- (e- nu-bar), the W+ (u d-bar), the anti-top
#: (e- nu-bar b-bar), the top (u d-bar b) and the tt-bar system (all six partons).
PARTON_MASSES: tuple[str, ...] = tuple(n for n in PARTON_GROUPS if n.startswith("m_"))
#: The quantities whose per-event posterior coverage is measured.
COVERAGE_QUANTITIES: tuple[str, ...] = ("m_tt", "pt_t_had", "pt_t_lep", "pt_b")
_SYMBOLS: Mapping[str, str] = {
    "m_W_lep": r"m_{e^{-}\bar{\nu}}",
    "m_W_had": r"m_{u\bar{d}}",
    "m_t_lep": r"m_{e^{-}\bar{\nu}\bar{b}}",
    "m_t_had": r"m_{u\bar{d}b}",
    "m_tt": r"m_{t\bar{t}}",
    "pt_t_lep": r"p_{T}^{\bar{t}}",
    "pt_t_had": r"p_{T}^{t}",
    "pt_b": r"p_{T}^{b}",
}
#: Every parton-level quantity as an `Observable`: label with unit, the range of the
#: detector-level observable of the same name (pT of the b: 0 to 400 GeV).
PARTON_OBSERVABLES: Mapping[str, Observable] = {
    name: Observable(
        name,
        f"parton ${_SYMBOLS[name]}$ [GeV]",
        _OBSERVABLE[name].range if name in _OBSERVABLE else (0.0, 400.0),
        "z",
    )
    for name in PARTON_GROUPS
}
#: The central intervals of the coverage table.
COVERAGE_LEVELS: tuple[float, ...] = (0.68, 0.95)
#: Nominal levels of a calibration curve.
CALIBRATION_LEVELS: np.ndarray = np.round(np.arange(0.05, 1.0, 0.05), 2)


def parton_four_momenta(z: np.ndarray) -> np.ndarray:
    """float64 (..., 6, 4) four-momenta of (..., 24) Z arrays."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape[-1] != N_FEATURES:
        raise ValueError(f"expected (..., {N_FEATURES}) Z arrays, got shape {z.shape}")
    return z.reshape(*z.shape[:-1], N_OBJECTS, N_COMPONENTS)


def parton_quantities(
    z: np.ndarray, names: Sequence[str] = tuple(PARTON_GROUPS)
) -> dict[str, np.ndarray]:
    """The W, top and tt-bar masses and the top, anti-top and b pT of parton events.

    Parameters
    ----------
    z : numpy.ndarray
        (..., 24) partons in the Z layout: (n, 24) events, or (n, K, 24) posterior
        samples.
    names : sequence of str
        Which of `PARTON_GROUPS` (all by default).

    Returns
    -------
    dict of str to numpy.ndarray
        float64 arrays of shape ``z.shape[:-1]``. A mass is that of the sum of the group's
        four-momenta, negative for a space-like sum (as ROOT gives it).
    """
    p4 = parton_four_momenta(z)
    result = {}
    for name in names:
        total = p4[..., PARTON_GROUPS[name], :].sum(axis=-2)
        pt, _, _, mass = kinematics.ptetaphim_from_p4(total)
        result[name] = mass if name.startswith("m_") else pt
    return result


def mass_ks(
    truth: np.ndarray,
    unfolded: np.ndarray,
    truth_weights: np.ndarray | None = None,
    unfolded_weights: np.ndarray | None = None,
) -> dict[str, float]:
    """KS distance of every parton-level mass (`PARTON_MASSES`) to the truth's.

    Parameters
    ----------
    truth, unfolded : numpy.ndarray
        (n, 24) and (m, 24) partons (the rows need not match; all K samples of a
        posterior may be given, rows of ``unfolded``).
    truth_weights, unfolded_weights : numpy.ndarray, optional
        Event weights (`turbosim_hep.metrics.ks_distance`).

    Returns
    -------
    dict of str to float
        Mass name -> KS distance (a fraction; Table 1 shows it x 10^-2).
    """
    a, b = parton_quantities(truth, PARTON_MASSES), parton_quantities(unfolded, PARTON_MASSES)
    return {
        name: metrics.ks_distance(a[name], b[name], truth_weights, unfolded_weights)
        for name in PARTON_MASSES
    }


def parton_feature_names(layout: Layout = DEFAULT_LAYOUT) -> list[str]:
    """Names of the columns of `parton_event_features`: ``log_pt_<parton>``,
    ``eta_<parton>``, ``phi_<parton>`` of the layout's six partons, then `PARTON_MASSES`."""
    return classifier.object_feature_names(layout.z_objects) + list(PARTON_MASSES)


def parton_event_features(
    z: np.ndarray, layout: Layout = DEFAULT_LAYOUT
) -> tuple[np.ndarray, list[str]]:
    """The classifier's features of parton events.

    Parameters
    ----------
    z : numpy.ndarray
        (n, 24) partons.
    layout : turbosim_hep.layout.Layout
        Their layout (default ``ejets``): the names of the features.

    Returns
    -------
    tuple of (numpy.ndarray, list of str)
        float64 (n, 23) features (per-parton log pT, eta, phi from
        `turbosim_hep.validation.classifier.object_features`, then the masses) and their
        names (`parton_feature_names`); non-finite values are NaN (missing).
    """
    p4 = parton_four_momenta(z)
    if p4.ndim != 3:
        raise ValueError(f"expected (n, {N_FEATURES}) partons, got shape {np.shape(z)}")
    per_parton, _ = classifier.object_features(p4, layout.z_objects)
    masses = parton_quantities(z, PARTON_MASSES)
    features = np.concatenate([per_parton, np.stack(list(masses.values()), axis=1)], axis=1)
    return classifier.finite_or_nan(features), parton_feature_names(layout)


def parton_classifier_test(
    truth: np.ndarray,
    unfolded: np.ndarray,
    *,
    truth_weights: np.ndarray | None = None,
    unfolded_weights: np.ndarray | None = None,
    layout: Layout = DEFAULT_LAYOUT,
    **kwargs,
) -> dict:
    """The classifier two-sample test of unfolded against true partons.

    Parameters
    ----------
    truth, unfolded : numpy.ndarray
        (n, 24) and (m, 24) partons: one draw per detector event (several draws of one
        event are not independent events).
    truth_weights, unfolded_weights : numpy.ndarray, optional
        Event weights.
    layout : turbosim_hep.layout.Layout
        The partons' layout (default ``ejets``): the names of the features.
    **kwargs
        Passed to `turbosim_hep.validation.classifier.classifier_test` (``folds``,
        ``seed``, ``max_events``, ``threads``).

    Returns
    -------
    dict
        `classifier_test`'s result (``auc``, its truth-against-truth floor ``auc_floor``,
        ...) plus ``feature_names``.
    """
    (a, names), (b, _) = (parton_event_features(z, layout) for z in (truth, unfolded))
    result = classifier.classifier_test(
        a, b, truth_weights=truth_weights, simulation_weights=unfolded_weights, **kwargs
    )
    return result | {"feature_names": names}


def coverage(
    samples: np.ndarray, truth: np.ndarray, levels: Sequence[float] | np.ndarray = COVERAGE_LEVELS
) -> np.ndarray:
    """Fraction of events whose true value lies in the central intervals of its samples.

    The central interval of level ``a`` of an event's K samples runs from their
    ``(1 - a) / 2`` to their ``(1 + a) / 2`` quantile. The quantiles are those that put
    the j-th smallest of K samples at level j / (K + 1) (NumPy's ``weibull`` method),
    the expected level of the j-th of K draws: for a calibrated posterior the fraction
    is then ``a`` for any K, where the usual interpolation gives intervals too short by
    about 2 / K (0.91 instead of 0.95 with K = 50). Lower than ``a``: the samples are
    too narrow or biased; higher: too wide.

    Parameters
    ----------
    samples : numpy.ndarray
        (n, K) samples of one quantity per event.
    truth : numpy.ndarray
        (n,) true values.
    levels : sequence of float
        Nominal levels in (0, 1).

    Returns
    -------
    numpy.ndarray
        float64 (len(levels),) observed fractions, over the events whose true value and
        samples are all finite (NaN when there is none).
    """
    samples, truth = np.asarray(samples, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    if samples.ndim != 2 or truth.shape != samples.shape[:1]:
        raise ValueError(
            f"expected (n, K) samples and (n,) true values, got {samples.shape} and {truth.shape}"
        )
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError("levels must lie strictly between 0 and 1")
    finite = np.isfinite(truth) & np.all(np.isfinite(samples), axis=1)
    samples, truth = samples[finite], truth[finite]
    if not len(truth):
        return np.full(len(levels), np.nan)
    lower = np.quantile(samples, (1.0 - levels) / 2.0, axis=1, method="weibull")  # (levels, n)
    upper = np.quantile(samples, (1.0 + levels) / 2.0, axis=1, method="weibull")
    return np.mean((lower <= truth) & (truth <= upper), axis=1)


def calibration_curves(
    samples: np.ndarray,
    truth: np.ndarray,
    levels: Sequence[float] | np.ndarray = CALIBRATION_LEVELS,
    names: Sequence[str] = COVERAGE_QUANTITIES,
) -> dict[str, np.ndarray]:
    """Observed coverage against nominal level for every quantity.

    Parameters
    ----------
    samples : numpy.ndarray
        (n, K, 24) posterior samples: K unfolded parton events per detector event.
    truth : numpy.ndarray
        (n, 24) the true partons of the same events.
    levels : sequence of float
        The nominal levels (x axis of the curve).
    names : sequence of str
        Quantities of `PARTON_GROUPS`.

    Returns
    -------
    dict of str to numpy.ndarray
        Quantity -> (len(levels),) observed fractions (`coverage`).
    """
    samples, truth = np.asarray(samples), np.asarray(truth)
    if samples.ndim != 3 or truth.shape != (len(samples), samples.shape[2]):
        raise ValueError(
            f"expected (n, K, 24) samples and (n, 24) truth, got {samples.shape} and {truth.shape}"
        )
    drawn, true = parton_quantities(samples, names), parton_quantities(truth, names)
    return {name: coverage(drawn[name], true[name], levels) for name in names}


def coverage_table(
    samples: np.ndarray,
    truth: np.ndarray,
    levels: Sequence[float] = COVERAGE_LEVELS,
    names: Sequence[str] = COVERAGE_QUANTITIES,
) -> dict[str, dict[str, float]]:
    """The coverage of the central 68 % and 95 % intervals of every quantity.

    As `calibration_curves`, keyed for JSON: quantity -> ``{"0.68": fraction,
    "0.95": fraction}``.
    """
    curves = calibration_curves(samples, truth, levels, names)
    return {
        name: {f"{level:g}": float(value) for level, value in zip(levels, curve, strict=True)}
        for name, curve in curves.items()
    }


def plot_calibration(
    levels: Sequence[float] | np.ndarray,
    curves: Mapping[str, Sequence[float]],
    stem: str | os.PathLike,
    *,
    events: int | None = None,
    samples: int | None = None,
) -> list[str]:
    """The calibration plot: observed coverage against nominal level, PNG and PDF.

    Parameters
    ----------
    levels : sequence of float
        Nominal levels.
    curves : mapping of str to sequence of float
        Quantity (of `PARTON_OBSERVABLES`) -> observed fractions at ``levels``.
    stem : str or os.PathLike
        Path without suffix.
    events, samples : int, optional
        Events and samples per event, for the legend's title.

    Returns
    -------
    list of str
        The files written.
    """
    import matplotlib.pyplot as plt
    import mplhep

    levels = np.asarray(levels, dtype=np.float64)
    with plt.style.context(mplhep.style.ROOT):
        fig, ax = plt.subplots(figsize=(7, 7))
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
        for name, curve in curves.items():
            label = PARTON_OBSERVABLES[name].label.removesuffix(" [GeV]")
            ax.plot(levels, curve, marker="o", markersize=4, label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("Nominal level of the central interval")
        ax.set_ylabel("Fraction of events with the truth inside")
        title = None
        if events is not None:
            title = f"{events} events" + (f",\n{samples} samples each" if samples else "")
        # beside the axes: a calibrated curve runs along the diagonal, a narrow one below
        legend = ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
                           title=title, title_fontsize="small", frameon=False)
        legend._legend_box.align = "left"
        ax.text(1.04, 0.0, "below the diagonal:\ntoo narrow or biased\nabove: too wide",
                transform=ax.transAxes, ha="left", va="bottom", fontsize="small")
        paths = []
        for suffix in (".png", ".pdf"):
            path = os.fspath(stem) + suffix
            fig.savefig(path, bbox_inches="tight", dpi=110)
            paths.append(path)
        plt.close(fig)
    return paths


@dataclass(frozen=True)
class MatchedPosterior:
    """Posterior samples of unfolded detector events beside their true partons.

    Attributes
    ----------
    samples : numpy.ndarray
        float32 (n, K, 24) the K unfolded parton events of each detector event.
    truth : numpy.ndarray
        float32 (n, 24) the true partons of the same events.
    unmatched : int
        Unfolded events left out: no truth file of their input's name, or not among its
        selected events.
    """

    samples: np.ndarray
    truth: np.ndarray
    unmatched: int

    def __len__(self) -> int:
        return len(self.truth)


def matched_posterior(
    unfolded: Sequence[str | os.PathLike],
    truth: Sequence[str | os.PathLike],
    *,
    channel: str | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> MatchedPosterior | None:
    """The posterior samples of ``unfold --samples K`` files matched to their truth.

    Each unfolded event names its input (the file's ``inputs`` metadata, base names) and
    its entry there (`turbosim_hep.io.samples.posterior_samples`); the truth files are
    read with the selection of ``channel`` (`turbosim_hep.io.read_events`) and each
    unfolded event takes the true partons of the truth file of its input's base name at
    that entry. Charge-conjugate events are compared in the reference channel's slots.

    Parameters
    ----------
    unfolded : sequence of path
        Outputs of ``turbosim-hep unfold``, all with the same K.
    truth : sequence of path
        The files that were unfolded, with their partons (``generate`` outputs, Delphes).
    channel : str, optional
        The selection of the truth events (default the layout's reference channel).
    layout : turbosim_hep.layout.Layout
        The final state of the events (default ``ejets``).

    Returns
    -------
    MatchedPosterior or None
        None when a file is not an output of ``unfold`` or holds one sample per event
        (K = 1), the files have different K, or no unfolded event has a truth.
    """
    for path in unfolded:
        metadata = read_metadata(path)
        if metadata.get("command") != "unfold" or int(metadata.get("oversample", 1)) < 2:
            return None
    posteriors = [posterior_samples(path, frame="reference") for path in unfolded]
    if len({p.samples for p in posteriors}) != 1 or posteriors[0].samples < 2:
        return None
    names = [os.path.basename(os.fspath(path)) for path in truth]
    unfolded_inputs = {name for posterior in posteriors for name in posterior.inputs}
    truth_z, truth_keys = [np.zeros((0, N_FEATURES), np.float32)], [np.zeros(0, np.int64)]
    for index, path in enumerate(truth):
        if names[index] not in unfolded_inputs:
            continue  # not unfolded here: nothing to read
        events, _ = read_events(path, layout, detector=True, partons=True, channel=channel)
        truth_z.append(events.z)
        truth_keys.append(_key(np.full(len(events), index), events.entry))
    keys = np.concatenate(truth_keys)
    order = np.argsort(keys, kind="stable")
    keys, true_z = keys[order], np.concatenate(truth_z)[order]
    samples, truths, unmatched = [], [], 0
    for posterior in posteriors:
        file_index = np.array([names.index(n) if n in names else -1 for n in posterior.inputs])
        index = file_index[posterior.source] if len(file_index) else np.full(len(posterior), -1)
        wanted = _key(index, posterior.event.astype(np.int64))
        position = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        found = (index >= 0) & (keys[position] == wanted) if len(keys) else np.zeros(
            len(wanted), dtype=bool
        )
        samples.append(posterior.z[found])
        truths.append(true_z[position[found]])
        unmatched += int(np.count_nonzero(~found))
    matched = MatchedPosterior(np.concatenate(samples), np.concatenate(truths), unmatched)
    return matched if len(matched) else None


def _key(file_index: np.ndarray, entry: np.ndarray) -> np.ndarray:
    """One int64 per (file, entry): the entry in the low 40 bits."""
    return (np.asarray(file_index, dtype=np.int64) << 40) + np.asarray(entry, dtype=np.int64)


__all__ = [
    "CALIBRATION_LEVELS",
    "COVERAGE_LEVELS",
    "COVERAGE_QUANTITIES",
    "PARTON_GROUPS",
    "PARTON_MASSES",
    "PARTON_OBSERVABLES",
    "calibration_curves",
    "coverage",
    "coverage_table",
    "MatchedPosterior",
    "mass_ks",
    "matched_posterior",
    "parton_classifier_test",
    "parton_event_features",
    "parton_feature_names",
    "parton_four_momenta",
    "parton_quantities",
    "plot_calibration",
]
