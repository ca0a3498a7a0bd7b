"""The classifier two-sample test: can a classifier tell the simulation from the truth?

A gradient-boosted classifier (scikit-learn's `HistGradientBoostingClassifier`) learns to
separate truth events from simulated ones on equal-size samples; its ROC AUC on the
events it did not learn (k-fold cross-validation) says how different the two samples
are: 0.5 when they are indistinguishable, 1 when every event can be told apart. Unlike
the KS distance of one quantity, it sees the correlations between the objects of an
event. The same test of one half of the truth against the other gives the floor that
statistical fluctuations alone reach. This is the multivariate test of the CaloChallenge
(Krause et al., arXiv:2410.21611).

- `event_features`: the features of each detector-level event (per-object log pT, eta,
  phi and the reconstructed masses) from the unbinned values the validation processor
  keeps; `object_features`, their per-object part, serves the parton-level test of
  unfolding too (`turbosim_hep.validation.unfolding.parton_event_features`);
- `detector_values`: those values from an (n, 24) X array, for code that holds arrays
  rather than a processor output;
- `classifier_test`: the cross-validated AUC and its floor, on plain NumPy arrays.

scikit-learn is imported when `classifier_test` first runs, not with this module: the
commands that never run the test do not pay for its import.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from turbosim_hep import kinematics, metrics, physics
from turbosim_hep.layout import DEFAULT_LAYOUT, N_COMPONENTS, N_JETS, Layout

#: The reconstructed masses of the paper's Table 1 among the features.
TABLE1_MASSES: tuple[str, ...] = ("m_tt", "m_W_had", "m_t_had", "m_t_lep")
#: Every pair and every triplet of the four jets (indices into the jets).
JET_PAIRS = np.array(list(itertools.combinations(range(N_JETS), 2)))
JET_TRIPLETS = np.array(list(itertools.combinations(range(N_JETS), 3)))
#: Events per side the test uses at most (a reproducible random subsample beyond).
MAX_EVENTS = 50_000
#: Fewer events per side than this give an AUC of NaN (too few to train and test on).
MIN_EVENTS = 100
#: The classifier: boosting stops once 10 rounds in a row no longer improve the loss on
#: a tenth of the training events held out, so its cost follows the difficulty.
CLASSIFIER_SETTINGS: Mapping[str, object] = {
    "max_iter": 200,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 10,
}
#: Quantile bins of each feature (the classifier's own default number).
BINS = 255

_FIRST_JET = DEFAULT_LAYOUT.x_objects.index("jet1")  # every lepton+jets layout's
#: The per-object variables of `object_features`, in order.
OBJECT_VARIABLES: tuple[str, ...] = ("log_pt", "eta", "phi")
#: The detector-level objects without an eta feature: the MET has none.
_NO_ETA: tuple[str, ...] = ("met",)


def _object_pairs(objects: Sequence[str], no_eta: Collection[str]) -> list[tuple[str, str]]:
    """(object, variable) of every per-object feature, in order."""
    return [
        (obj, variable)
        for obj, variable in itertools.product(objects, OBJECT_VARIABLES)
        if not (variable == "eta" and obj in no_eta)
    ]


def object_feature_names(objects: Sequence[str], no_eta: Collection[str] = ()) -> list[str]:
    """Names of the columns of `object_features`: ``<variable>_<object>``."""
    return [f"{variable}_{obj}" for obj, variable in _object_pairs(objects, no_eta)]


def object_features(
    p4: np.ndarray, objects: Sequence[str], no_eta: Collection[str] = ()
) -> tuple[np.ndarray, list[str]]:
    """Log pT, eta and phi of every object of every event.

    The per-object part of the features, at detector level (`event_features`) as at
    parton level (`turbosim_hep.validation.unfolding.parton_event_features`).

    Parameters
    ----------
    p4 : numpy.ndarray
        (n, k, 4) four-momenta (px, py, pz, E) of k objects per event.
    objects : sequence of str
        The k objects' names, in order.
    no_eta : collection of str
        Objects whose eta is left out (the MET, whose eta means nothing).

    Returns
    -------
    tuple of (numpy.ndarray, list of str)
        float64 (n, 3k - len(no_eta)) features, object by object (log pT, eta, phi),
        and their names (`object_feature_names`). The log of a zero pT is -inf.
    """
    p4 = np.asarray(p4, dtype=np.float64)
    if p4.ndim != 3 or p4.shape[1:] != (len(objects), N_COMPONENTS):
        raise ValueError(f"expected (n, {len(objects)}, 4) four-momenta, got shape {p4.shape}")
    pt, eta, phi, _ = kinematics.ptetaphim_from_p4(p4)
    with np.errstate(divide="ignore"):
        log_pt = np.log(pt)
    keep = [
        not (variable == "eta" and obj in no_eta)
        for obj, variable in itertools.product(objects, OBJECT_VARIABLES)
    ]
    features = np.stack([log_pt, eta, phi], axis=2).reshape(len(p4), -1)[:, keep]
    return features, object_feature_names(objects, no_eta)


def finite_or_nan(features: np.ndarray) -> np.ndarray:
    """The features with every non-finite value NaN, which the classifier takes as missing."""
    return np.where(np.isfinite(features), features, np.nan)


def feature_names(layout: Layout = DEFAULT_LAYOUT) -> list[str]:
    """Names of the columns of `event_features`, in order.

    ``log_pt_<object>``, ``eta_<object>`` (not for the MET, which has none) and
    ``phi_<object>`` of the six objects of the layout's X space (default ``ejets``), then
    the `TABLE1_MASSES`, then the invariant mass of every jet pair (``m_jet1_jet2``, ...)
    and of every jet triplet (``m_jet1_jet2_jet3``, ...).
    """
    jets = layout.x_objects[_FIRST_JET:]
    combinations = [*JET_PAIRS, *JET_TRIPLETS]
    return (
        object_feature_names(layout.x_objects, _NO_ETA)
        + list(TABLE1_MASSES)
        + ["m_" + "_".join(jets[j] for j in combination) for combination in combinations]
    )


def event_features(
    values: Mapping[str, np.ndarray], layout: Layout = DEFAULT_LAYOUT
) -> tuple[np.ndarray, list[str]]:
    """The classifier's features of every detector-level event.

    Parameters
    ----------
    values : mapping of str to numpy.ndarray
        Per-event values as `turbosim_hep.validation.processor.dataset_values` gives them
        for a detector-level dataset: ``x_<column>`` for every X column of the layout
        and the reconstructed `TABLE1_MASSES`.
    layout : turbosim_hep.layout.Layout
        The final state (default ``ejets``).

    Returns
    -------
    tuple of (numpy.ndarray, list of str)
        float64 (n, k) features and their names (`feature_names`). Values that are not
        finite (a reconstruction without a solution, the log of a zero pT) are NaN, which
        the classifier treats as missing.
    """
    x = np.stack([np.asarray(values[f"x_{c}"], dtype=np.float64) for c in layout.x_columns], 1)
    p4 = x.reshape(len(x), len(layout.objects), N_COMPONENTS)
    per_object, _ = object_features(p4, layout.x_objects, _NO_ETA)
    jets = p4[:, _FIRST_JET:]
    combined = [
        kinematics.ptetaphim_from_p4(jets[:, groups].sum(axis=2))[3]
        for groups in (JET_PAIRS, JET_TRIPLETS)
    ]
    reconstructed = np.stack([np.asarray(values[m], dtype=np.float64) for m in TABLE1_MASSES], 1)
    features = np.concatenate([per_object, reconstructed, *combined], axis=1)
    return finite_or_nan(features), feature_names(layout)


def detector_values(x: np.ndarray, layout: Layout = DEFAULT_LAYOUT) -> dict[str, np.ndarray]:
    """The per-event values `event_features` reads, from an (n, 24) X array.

    The X columns of the layout (default ``ejets``) as ``x_<column>`` and the
    reconstructed observables of `turbosim_hep.physics.reconstruct`, as the validation
    processor keeps them.
    """
    x = np.asarray(x)
    values = {f"x_{c}": x[:, i] for i, c in enumerate(layout.x_columns)}
    observables = physics.reconstruct(x)
    return values | {name: observables[name] for name in physics.OBSERVABLE_NAMES}


def classifier_test(
    truth: np.ndarray,
    simulation: np.ndarray,
    *,
    truth_weights: np.ndarray | None = None,
    simulation_weights: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
    max_events: int = MAX_EVENTS,
    threads: int | None = 1,
) -> dict:
    """Cross-validated ROC AUC of a classifier separating simulated from truth events.

    Both samples are brought to the same size, that of the smaller one and at most
    ``max_events``, by drawing events without replacement. A
    `sklearn.ensemble.HistGradientBoostingClassifier` (`CLASSIFIER_SETTINGS`) is trained
    on all folds but one of a stratified k-fold split and scores the remaining one; the
    AUC is that of all the out-of-fold scores together (`turbosim_hep.metrics.roc_auc`).
    The floor is the same test of one half of the truth sample against the other.

    Parameters
    ----------
    truth, simulation : numpy.ndarray
        (n, k) and (m, k) features (`event_features`); NaN marks a missing value.
    truth_weights, simulation_weights : numpy.ndarray, optional
        Event weights (1 where not given). The AUC is the weighted one, with the signed
        weights. The classifier trains with their absolute values, each class's scaled
        to a mean of 1: gradient boosting with negative weights (an NLO generator's) has
        no minimum to converge to, while the AUC counts them as they are.
    folds : int
        Folds of the cross-validation.
    seed : int
        Seed of the subsampling, of the folds and of the classifier: a fixed seed gives
        the same result.
    max_events : int
        Events per side at most; more make the test slower and a little more sensitive.
    threads : int, optional
        OpenMP threads of the classifier (None: scikit-learn's default, every core).
        One by default: the test is small, and on a machine busy with other work, OpenMP
        threads waiting for each other at every step of the boosting make it many times
        slower.

    Returns
    -------
    dict
        JSON-serialisable: ``auc`` (0.5: indistinguishable; above: the simulation can be
        told apart), ``auc_floor`` (truth against truth), ``folds``, ``events`` (events
        per side), ``floor_events`` (events per side of the floor) and ``features``
        (their number). An AUC is NaN when it had fewer than `MIN_EVENTS` per side.
    """
    truth, simulation = np.asarray(truth), np.asarray(simulation)
    if truth.ndim != 2 or simulation.ndim != 2 or truth.shape[1] != simulation.shape[1]:
        raise ValueError(
            f"expected (n, k) features with the same k, got {truth.shape} and {simulation.shape}"
        )
    rng = np.random.default_rng(seed)
    n = min(len(truth), len(simulation), max_events)
    rows = [rng.choice(len(sample), n, replace=False) for sample in (truth, simulation)]
    weights = [
        np.ones(n) if w is None else np.asarray(w, dtype=np.float64)[r]
        for w, r in zip((truth_weights, simulation_weights), rows, strict=True)
    ]
    settings = {"folds": folds, "seed": seed, "threads": threads}
    auc = _cross_validated_auc(truth[rows[0]], simulation[rows[1]], *weights, **settings)
    halves = np.array_split(rng.permutation(n), 2)
    floor = _cross_validated_auc(
        *(truth[rows[0]][h] for h in halves), *(weights[0][h] for h in halves), **settings
    )
    return {
        "auc": auc,
        "auc_floor": floor,
        "folds": folds,
        "events": n,
        "floor_events": len(halves[1]),
        "features": truth.shape[1],
    }


def _cross_validated_auc(
    truth: np.ndarray,
    simulation: np.ndarray,
    truth_weights: np.ndarray,
    simulation_weights: np.ndarray,
    *,
    folds: int,
    seed: int,
    threads: int | None,
) -> float:
    """Weighted AUC of the out-of-fold scores of truth (0) against simulation (1)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    if min(len(truth), len(simulation)) < MIN_EVENTS:
        return float("nan")
    if not (np.any(truth_weights) and np.any(simulation_weights)):
        return float("nan")  # a class of zero weight: nothing to learn or to rank
    features = _quantile_bins(np.concatenate([truth, simulation]))
    label = np.repeat([False, True], [len(truth), len(simulation)])
    weights = np.concatenate([truth_weights, simulation_weights])
    training_weights = np.concatenate(
        [np.abs(w) / np.mean(np.abs(w)) for w in (truth_weights, simulation_weights)]
    )
    # limited once scikit-learn, above, has loaded its OpenMP runtime
    with threadpool_limits(threads, user_api="openmp"):
        score = cross_val_predict(
            HistGradientBoostingClassifier(**CLASSIFIER_SETTINGS, random_state=seed),
            features,
            label,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            method="predict_proba",
            params={"sample_weight": training_weights},
        )[:, 1]
    return metrics.roc_auc(score, label, weights)


def _quantile_bins(features: np.ndarray) -> np.ndarray:
    """Each feature replaced by the index of its quantile bin among all events (NaN kept).

    `HistGradientBoostingClassifier` bins the features itself, on every fit; with sample
    weights it finds each bin edge by a weighted percentile of its own, which costs far
    more than the boosting. Binned here once, unweighted, the features have at most
    `BINS` distinct values, which it takes as its bins directly.
    """
    levels = np.linspace(0.0, 1.0, BINS + 1)[1:-1]
    edges = np.nanquantile(features, levels, axis=0)  # (BINS - 1, features)
    index = [np.searchsorted(e, f) for e, f in zip(edges.T, features.T, strict=True)]
    return np.where(np.isnan(features), np.nan, np.stack(index, axis=1))


__all__ = [
    "CLASSIFIER_SETTINGS",
    "MAX_EVENTS",
    "OBJECT_VARIABLES",
    "TABLE1_MASSES",
    "classifier_test",
    "detector_values",
    "event_features",
    "feature_names",
    "finite_or_nan",
    "object_feature_names",
    "object_features",
]
