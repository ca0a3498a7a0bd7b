"""The validation report: distances to the truth, the paper's Table 1, plots, histograms.

From the output of `turbosim_hep.validation.processor.TtbarValidationProcessor`:

- `compute_metrics`: for every histogrammed quantity the KS distance (on the unbinned
  values, as the paper does) and the Wasserstein-1 distance between the truth and the
  simulation, the fraction of physically valid simulated events, and the ten columns
  of Table 1 of the Turbo-Sim paper, a classifier two-sample test of the detector-level
  events (`turbosim_hep.validation.classifier`) and the mass peaks
  (`turbosim_hep.validation.peaks`);
- `write_report`: ``metrics.json``, ``metrics.md`` (Table 1 next to the published rows),
  one mplhep plot per quantity (PNG and PDF) and the filled histograms as ROOT
  (``histograms.root``, one directory per dataset, readable with uproot's ``to_hist``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

import numpy as np
import uproot

from turbosim_hep import metrics
from turbosim_hep.errors import TurbosimError
from turbosim_hep.layout import DEFAULT_LAYOUT, Layout
from turbosim_hep.outputs import AtomicOutput, check_output_path, writing
from turbosim_hep.validation import classifier, peaks, unfolding
from turbosim_hep.validation.processor import (
    DATASET_AXIS,
    REPLICA_VALUES,
    WEIGHT_VALUES,
    dataset_values,
)
from turbosim_hep.validation.quantities import layout_quantities, quantity_by_name

#: Table 1 of the Turbo-Sim paper: column key -> (quantity of the processor, header).
TABLE1: Mapping[str, tuple[str, str]] = {
    "b_py": ("z_py_b", "$p_y^b$"),
    "b_pz": ("z_pz_b", "$p_z^b$"),
    "b_E": ("z_E_b", "$E^b$"),
    "jet1_py": ("x_py_jet1", "$p_y^{jet1}$"),
    "jet1_pz": ("x_pz_jet1", "$p_z^{jet1}$"),
    "jet1_E": ("x_E_jet1", "$E^{jet1}$"),
    "m_tt": ("m_tt", "$m_{tt}$"),
    "m_W_had": ("m_W_had", "$m_W^{had}$"),
    "m_t_lep": ("m_t_lep", "$m_t^{lep}$"),
    "m_t_had": ("m_t_had", "$m_t^{had}$"),
}
#: The columns of Table 1 that compare partons (unfolding) rather than detector objects.
TABLE1_PARTON_COLUMNS = ("b_py", "b_pz", "b_E")

#: Published KS distances (x 10^-2): Table 1 of Quétant et al., "Turbo-Sim: a generalised
#: generative model with a physical latent space", NeurIPS ML4PS 2021.
PUBLISHED_TABLE1: Mapping[str, tuple[float, ...]] = {
    "Turbo-Sim (published)": (5.28, 7.28, 3.96, 2.89, 10.3, 4.43, 2.97, 7.72, 5.20, 8.52),
    "OTUS (published)": (1.59, 1.23, 2.76, 3.78, 2.39, 5.75, 15.8, 11.7, 14.1, 24.9),
}

#: Dataset names the report compares.
TRUTH, SIMULATION, UNFOLDED = "truth", "simulation", "unfolded"
#: Stem of the calibration plot of the unfolded posterior, in ``plots/``.
CALIBRATION_PLOT = "unfolding_calibration"


def compute_metrics(
    output: Mapping,
    *,
    truth: str = TRUTH,
    simulation: str = SIMULATION,
    unfolded: str | None = None,
    posterior: unfolding.MatchedPosterior | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> dict:
    """Distances between the truth and the simulation for every quantity.

    Parameters
    ----------
    output : mapping
        Output of a run of `TtbarValidationProcessor` (with ``keep_values``).
    truth, simulation : str
        Dataset names of the truth and of the fast simulation.
    unfolded : str, optional
        Dataset holding unfolded partons; when given, the parton-level quantities (and
        the b columns of Table 1) compare it with the truth instead of ``simulation``,
        and the ``unfolding`` section judges it at parton level (`unfolding_metrics`).
    posterior : turbosim_hep.validation.unfolding.MatchedPosterior, optional
        The posterior samples of the unfolded events beside their truth: the coverage of
        the ``unfolding`` section.
    layout : turbosim_hep.layout.Layout
        The final state of the events (default ``ejets``): the names of its quantities.

    Returns
    -------
    dict
        JSON-serialisable: ``layout`` (its name), ``datasets``, ``events``, ``yield``
        (weighted events), ``cutflow``, ``valid_fraction``, ``ks_floor``, ``quantities``
        (name -> ``ks``, ``w1``, ``n_truth``, ``n_sim``, ``w_truth``, ``w_sim``, ``compared_with``,
        ``label``), ``table1`` (column -> KS or None), ``table1_notes``,
        ``classifier`` (`classifier_metrics`; None without detector-level values in both
        datasets), ``peaks`` (`peaks.mass_peaks`: mass -> peak figures) and
        ``unfolding`` (`unfolding_metrics`; None without ``unfolded``).

    Notes
    -----
    Datasets with event weights (`WEIGHT_VALUES`) other than 1 are compared with the
    weighted distributions: weighted KS and Wasserstein-1 distances, and a statistical
    floor from the effective numbers of events, (sum w)^2 / sum w^2.
    """
    truth_values = dataset_values(output, truth)
    if not truth_values:
        raise ValueError(f"the output holds no values of the truth dataset {truth!r}")
    candidates = {simulation: dataset_values(output, simulation)}
    if unfolded is not None:
        candidates[unfolded] = dataset_values(output, unfolded)

    quantities = {}
    for quantity in layout_quantities(layout):
        other = unfolded if (unfolded is not None and quantity.space == "z") else simulation
        a, b = truth_values.get(quantity.name), candidates[other].get(quantity.name)
        if a is None or b is None:
            continue
        wa, wb = _weights(truth_values, len(a), truth), _weights(candidates[other], len(b), other)
        quantities[quantity.name] = {
            "ks": metrics.ks_distance(a, b, wa, wb),
            "w1": metrics.wasserstein1(a, b, wa, wb),
            "n_truth": int(len(a)),
            "n_sim": int(len(b)),
            "w_truth": float(len(a) if wa is None else wa.sum()),
            "w_sim": float(len(b) if wb is None else wb.sum()),
            "compared_with": other,
            "label": quantity.label,
        }

    notes = {}
    table1 = {}
    for key, (name, _) in TABLE1.items():
        table1[key] = quantities[name]["ks"] if name in quantities else None
    # An input copied through (simulate keeps its partons, unfold its detector objects)
    # matches the truth exactly and measures nothing: say so next to the table.
    parton_name = TABLE1[TABLE1_PARTON_COLUMNS[0]][0]
    if parton_name in quantities and quantities[parton_name]["compared_with"] == simulation:
        if _same_values(truth_values[parton_name], candidates[simulation][parton_name]):
            notes["b"] = (
                "the simulated file carries the truth partons (its simulation input), "
                "so the b columns do not measure unfolding; pass the unfolded file"
            )
    detector_name = TABLE1["jet1_E"][0]
    if detector_name in quantities:
        if _same_values(truth_values[detector_name], candidates[simulation][detector_name]):
            notes["detector"] = (
                "the simulated file carries the truth detector objects (an unfold output, "
                "or the truth itself), so the jet1 and mass columns do not measure simulation"
            )
    valid = output.get("valid", {}).get(simulation, {})
    n_truth = _selected(output, truth)
    n_sim = _selected(output, simulation)
    effective = [
        _effective_events(values, n)
        for values, n in ((truth_values, n_truth), (candidates[simulation], n_sim))
    ]
    return {
        "layout": layout.name,
        "datasets": {"truth": truth, "simulation": simulation, "unfolded": unfolded},
        "events": {"truth": n_truth, "simulation": n_sim},
        "yield": {
            "truth": output.get("yield", {}).get(truth),
            "simulation": output.get("yield", {}).get(simulation),
        },
        "cutflow": {k: dict(v) for k, v in output.get("cutflow", {}).items()},
        "valid_fraction": (valid["valid"] / valid["checked"]) if valid.get("checked") else None,
        "ks_floor": metrics.ks_floor(*effective) if all(effective) else None,
        "quantities": quantities,
        "table1": table1,
        "table1_notes": notes,
        "classifier": classifier_metrics(
            truth_values, candidates[simulation], truth, simulation, layout
        ),
        "peaks": peak_metrics(truth_values, candidates[simulation], truth, simulation),
        "unfolding": (
            unfolding_metrics(
                truth_values, candidates[unfolded], truth, unfolded, posterior, layout
            )
            if unfolded is not None
            else None
        ),
    }


def table1_markdown(result: Mapping) -> str:
    """Table 1 (KS x 10^-2) of this run next to the published Turbo-Sim and OTUS rows."""
    header = "| model | " + " | ".join(h for _, h in TABLE1.values()) + " |"
    rule = "|---" * (len(TABLE1) + 1) + "|"
    notes = result.get("table1_notes", {})
    marks = {k: "*" for k in TABLE1_PARTON_COLUMNS} if "b" in notes else {}
    if "detector" in notes:
        marks |= {k: "†" for k in TABLE1 if k not in TABLE1_PARTON_COLUMNS}

    def cell(key: str, value: float | None) -> str:
        if value is None or not np.isfinite(value):
            return "n/a"
        return f"{100 * value:.2f}{marks.get(key, '')}"

    rows = [header, rule]
    rows.append("| this run | " + " | ".join(cell(k, result["table1"][k]) for k in TABLE1) + " |")
    for model, values in PUBLISHED_TABLE1.items():
        rows.append(f"| {model} | " + " | ".join(f"{v:g}" for v in values) + " |")
    return "\n".join(rows)


def metrics_markdown(result: Mapping) -> str:
    """The whole ``metrics.md``: Table 1, run facts and the per-quantity distances."""
    events = result["events"]
    lines = [
        "# Turbo-Sim validation against the truth",
        "",
        f"Truth: {events['truth']} selected events; simulation: {events['simulation']}.",
    ]
    if result["valid_fraction"] is not None:
        lines.append(f"Physically valid simulated events: {result['valid_fraction']:.4f}.")
    if result["ks_floor"] is not None:
        lines.append(
            f"Statistical floor of the KS distance for these sample sizes: "
            f"{100 * result['ks_floor']:.2f} x 10^-2."
        )
    lines += ["", "## Table 1: Kolmogorov-Smirnov distance to the truth (x 10^-2)", ""]
    lines.append(table1_markdown(result))
    for key, note in result.get("table1_notes", {}).items():
        mark = "\\*" if key == "b" else "†"
        lines += ["", f"{mark} {note}."]
    lines += [
        "",
        "b columns: parton level (unfolding); jet1 and masses: detector level (simulation).",
        "",
        "## All quantities",
        "",
        "| quantity | KS (x 10^-2) | W1 [GeV] | truth events | compared events | compared with |",
        "|---|---|---|---|---|---|",
    ]
    for name, q in result["quantities"].items():
        lines.append(
            f"| `{name}` | {100 * q['ks']:.2f} | {q['w1']:.3g} | {q['n_truth']} | {q['n_sim']} "
            f"| {q['compared_with']} |"
        )
    if result.get("classifier"):
        lines += ["", "## Classifier two-sample test", "", classifier_markdown(result)]
    if result.get("peaks"):
        lines += ["", "## Mass peaks", "", peaks_markdown(result)]
    if result.get("unfolding"):
        lines += ["", "## Unfolding: the unfolded partons against the true ones", "",
                  unfolding_markdown(result)]
    return "\n".join(lines) + "\n"


def plot_comparison(
    output: Mapping, name: str, result: Mapping, stem: str | os.PathLike
) -> list[str]:
    """One truth-versus-simulation plot with a ratio panel, saved as PNG and PDF.

    The simulation is scaled to the (weighted) number of truth events when the samples
    differ in size; the ratio panel shows simulation / truth with the statistical uncertainty of
    the simulation (points) and of the truth (hatched band).

    Returns
    -------
    list of str
        The files written.
    """
    import matplotlib.pyplot as plt
    import mplhep

    q = result["quantities"][name]
    h = output["hists"][name]
    truth = h[{DATASET_AXIS: result["datasets"]["truth"]}]
    other = h[{DATASET_AXIS: q["compared_with"]}]
    scale = q["w_truth"] / q["w_sim"] if q["w_sim"] else 1.0
    simulated_label = "Turbo-Sim" if q["compared_with"] != "unfolded" else "Turbo-Sim (unfolded)"
    if not np.isclose(scale, 1.0):
        other = other * scale
        simulated_label += " (scaled to truth)"
    with plt.style.context(mplhep.style.ROOT):
        fig, ax_main, ax_ratio = mplhep.comp.hists(
            other,
            truth,
            xlabel=q["label"],
            ylabel="Events / bin",
            h1_label=simulated_label,
            h2_label="Truth",
            comparison="split_ratio",
            comparison_ylabel="Sim. / truth",
            comparison_ylim=(0.4, 1.6),
        )
        ax_ratio.set_yticks([0.5, 1.0, 1.5])  # clear of the x tick labels below
        ax_main.set_title(
            f"KS = {q['ks']:.4f}   W$_1$ = {q['w1']:.3g} GeV", fontsize="small", loc="right"
        )
        ax_main.legend(loc="best", fontsize="small")
        # the tight bounding box, measured once for both formats (one draw less each)
        bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
        paths = []
        for suffix in (".png", ".pdf"):
            path = os.fspath(stem) + suffix
            fig.savefig(path, bbox_inches=bbox, dpi=110)
            paths.append(path)
        plt.close(fig)
    return paths


def save_histograms(output: Mapping, path: str | os.PathLike) -> None:
    """The histograms as ROOT TH1s, ``<dataset>/<quantity>`` (uproot ``to_hist`` reads them)."""
    with uproot.recreate(path) as file:
        for name, h in output["hists"].items():
            for dataset in h.axes[DATASET_AXIS]:
                file[f"{dataset}/{name}"] = h[{DATASET_AXIS: dataset}]


def write_report(
    output: Mapping,
    result: Mapping,
    directory: str | os.PathLike,
    *,
    force: bool = False,
    plots: bool | Iterable[str] = True,
    layout: Layout = DEFAULT_LAYOUT,
) -> str:
    """Write the report directory: metrics, table, plots and histograms.

    The report is built in a temporary directory beside ``directory`` and renamed into
    place at the end (`turbosim_hep.outputs.AtomicOutput`), so an interrupted run or a
    full disk leaves nothing half-written.

    Parameters
    ----------
    output : mapping
        Output of the processor run.
    result : mapping
        Output of `compute_metrics`.
    directory : str or os.PathLike
        The report directory; it must not exist (or be empty) unless ``force``.
    plots : bool or iterable of str
        Plot every compared quantity (True), none (False) or those of the named ones
        that were compared; unless none, also the calibration plot of the unfolded
        posterior where the metrics have one. Plots (a PNG and a PDF per quantity) are
        the slowest part of the report.
    layout : turbosim_hep.layout.Layout
        The final state of the events (default ``ejets``): the quantities ``plots``
        may name.

    Returns
    -------
    str
        The report directory.
    """
    with AtomicOutput(directory, force=force, directory=True) as report:
        _write_report_files(output, result, report, plots, layout)
    return report.path


def _write_report_files(
    output: Mapping,
    result: Mapping,
    report: AtomicOutput,
    plots: bool | Iterable[str],
    layout: Layout,
) -> None:
    """The files of `write_report` into the report's temporary directory; an `OSError`
    (full disk) is raised as `turbosim_hep.errors.WriteError` naming the report."""
    names = list(result["quantities"]) if plots is True else list(plots or ())
    known = quantity_by_name(layout)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown quantities to plot: {', '.join(unknown)}")
    names = [name for name in names if name in result["quantities"]]  # compared ones
    directory = report.tmp_path
    with writing(report.path):
        with open(os.path.join(directory, "metrics.json"), "w") as handle:
            json.dump(_json_safe(result), handle, indent=2)
        with open(os.path.join(directory, "metrics.md"), "w") as handle:
            handle.write(metrics_markdown(result))
        save_histograms(output, os.path.join(directory, "histograms.root"))
        if names:
            os.mkdir(os.path.join(directory, "plots"))
        for name in names:
            plot_comparison(output, name, result, os.path.join(directory, "plots", name))
        calibration = (result.get("unfolding") or {}).get("calibration")
        if plots and calibration:
            os.makedirs(os.path.join(directory, "plots"), exist_ok=True)
            unfolding.plot_calibration(
                calibration["levels"],
                calibration["observed"],
                os.path.join(directory, "plots", CALIBRATION_PLOT),
                events=result["unfolding"]["coverage_events"],
                samples=result["unfolding"]["samples_per_event"],
            )


def check_report_directory(
    directory: str | os.PathLike, *, force: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> str:
    """Check that a report directory may be written; raise `OutputError` if not.

    It must not exist or be empty (unless ``force``), and not hold any of ``inputs``
    (replacing it would delete them).
    """
    return check_output_path(directory, force=force, directory=True, inputs=inputs)


def _weights(values: Mapping[str, np.ndarray], n: int, dataset: str) -> np.ndarray | None:
    """The event weights of a dataset's ``n`` values; None where they are all 1."""
    weights = values.get(WEIGHT_VALUES)
    if weights is None or np.all(weights == 1.0):
        return None
    if len(weights) != n:
        raise ValueError(
            f"dataset {dataset!r} mixes weighted files with files that lack some quantity; "
            "validate them as separate datasets"
        )
    total = float(np.sum(weights, dtype=np.float64))
    if not total > 0:
        raise TurbosimError(
            f"the event weights of the {dataset} events sum to {total:g} (negative weights "
            "outweigh the positive ones): they describe no distribution to compare"
        )
    return weights


def _effective_events(values: Mapping[str, np.ndarray], n: int) -> float:
    """(sum w)^2 / sum w^2 of a dataset's event weights (``n`` when unweighted)."""
    weights = values.get(WEIGHT_VALUES)
    if weights is None or np.all(weights == 1.0) or not len(weights):
        return float(n)
    w = weights.astype(np.float64)
    return float(w.sum() ** 2 / np.sum(w**2))


def _selected(output: Mapping, dataset: str) -> int:
    cutflow = output.get("cutflow", {}).get(dataset, {})
    return int(next(reversed(cutflow.values()), 0)) if cutflow else 0


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and np.array_equal(np.sort(a), np.sort(b))


def _json_safe(value):
    """NaN and infinities as null, NumPy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def classifier_metrics(
    truth_values: Mapping[str, np.ndarray],
    simulation_values: Mapping[str, np.ndarray],
    truth: str,
    simulation: str,
    layout: Layout = DEFAULT_LAYOUT,
) -> dict | None:
    """`classifier.classifier_test` of the simulation's detector-level events against the
    truth's (of ``layout``), with the datasets' event weights; None unless both have them.

    Returns
    -------
    dict or None
        The test's result plus ``feature_names``.
    """
    needed = [f"x_{c}" for c in layout.x_columns] + list(classifier.TABLE1_MASSES)
    if not all(name in values for name in needed for values in (truth_values, simulation_values)):
        return None
    (a, names), (b, _) = (
        classifier.event_features(v, layout) for v in (truth_values, simulation_values)
    )
    result = classifier.classifier_test(
        a,
        b,
        truth_weights=_weights(truth_values, len(a), truth),
        simulation_weights=_weights(simulation_values, len(b), simulation),
    )
    return result | {"feature_names": names}


def peak_metrics(
    truth_values: Mapping[str, np.ndarray],
    simulation_values: Mapping[str, np.ndarray],
    truth: str,
    simulation: str,
) -> dict[str, dict[str, float]]:
    """`peaks.mass_peaks` of the reconstructed masses, with the datasets' event weights."""
    masses = [m for m in peaks.PEAK_MASSES if m in truth_values and m in simulation_values]
    if not masses:
        return {}
    return peaks.mass_peaks(
        truth_values,
        simulation_values,
        _weights(truth_values, len(truth_values[masses[0]]), truth),
        _weights(simulation_values, len(simulation_values[masses[0]]), simulation),
    )


def classifier_markdown(result: Mapping) -> str:
    """The classifier test's AUC and its floor, in a sentence."""
    return _classifier_sentence(result["classifier"], "the simulation", "per-object")


def _classifier_sentence(c: Mapping, compared: str, objects: str) -> str:
    return (
        f"A gradient-boosted classifier, {c['folds']}-fold cross-validated on "
        f"{c['events']} events per side and {c['features']} features ({objects} log pT, "
        f"eta, phi and masses), separates {compared} from the truth with an ROC AUC of "
        f"{_number(c['auc'], '.3f')}; one half of the truth against the other "
        f"({c['floor_events']} events per side) gives {_number(c['auc_floor'], '.3f')}. "
        f"0.5: indistinguishable."
    )


def peaks_markdown(result: Mapping) -> str:
    """The mass-peak figures as a table, one row per mass."""
    rows = [
        "Both histograms normalised to unit area; height: simulation / truth in the "
        "truth's highest bin.",
        "",
        "| mass | peak truth [GeV] | peak simulation [GeV] | height ratio "
        "| FWHM truth [GeV] | FWHM simulation [GeV] | FWHM ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in result["peaks"].items():
        cells = [
            _number(p[key], spec)
            for key, spec in (
                ("peak_truth", ".1f"), ("peak_simulation", ".1f"), ("height_ratio", ".2f"),
                ("fwhm_truth", ".1f"), ("fwhm_simulation", ".1f"), ("fwhm_ratio", ".2f"),
            )
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def unfolding_metrics(
    truth_values: Mapping[str, np.ndarray],
    unfolded_values: Mapping[str, np.ndarray],
    truth: str,
    unfolded: str,
    posterior: unfolding.MatchedPosterior | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> dict | None:
    """The parton-level figures of unfolded events against the truth's partons.

    Parameters
    ----------
    truth_values, unfolded_values : mapping
        The datasets' unbinned values (`dataset_values`), with the 24 ``z_`` columns.
    truth, unfolded : str
        Their dataset names (for error messages).
    posterior : turbosim_hep.validation.unfolding.MatchedPosterior, optional
        Posterior samples beside their truth, for the coverage.
    layout : turbosim_hep.layout.Layout
        The final state (default ``ejets``): the names of its Z columns.

    Returns
    -------
    dict or None
        None unless both datasets have partons. ``mass_ks``: KS distance of every mass of
        `unfolding.PARTON_MASSES` (all rows, weighted), ``ks_floor``; ``classifier``:
        `unfolding.parton_classifier_test` on one draw per event (the rows of sample 0
        where the file holds several: they are not independent events);
        ``samples_per_event``: K of the unfolded rows (1 without a ``replica`` branch);
        ``coverage`` (quantity -> ``{"0.68": fraction, "0.95": fraction}``),
        ``calibration`` (``levels`` and per quantity the ``observed`` fractions),
        ``coverage_events`` and ``coverage_unmatched``: None without ``posterior``.
    """
    columns = [f"z_{c}" for c in layout.z_columns]
    if not all(c in values for c in columns for values in (truth_values, unfolded_values)):
        return None
    truth_z, unfolded_z = (
        np.stack([np.asarray(values[c]) for c in columns], axis=1)
        for values in (truth_values, unfolded_values)
    )
    truth_weights = _weights(truth_values, len(truth_z), truth)
    unfolded_weights = _weights(unfolded_values, len(unfolded_z), unfolded)
    replica = unfolded_values.get(REPLICA_VALUES)
    first = np.ones(len(unfolded_z), dtype=bool) if replica is None else replica == 0
    samples = 1 if replica is None else len(np.unique(replica))
    one_draw = unfolded_z[first]
    result = {
        "mass_ks": unfolding.mass_ks(truth_z, unfolded_z, truth_weights, unfolded_weights),
        "ks_floor": (
            metrics.ks_floor(len(truth_z), len(one_draw)) if len(truth_z) and len(one_draw)
            else None
        ),
        "events": {"truth": int(len(truth_z)), "unfolded": int(len(one_draw))},
        "samples_per_event": samples,
        "classifier": unfolding.parton_classifier_test(
            truth_z,
            one_draw,
            truth_weights=truth_weights,
            unfolded_weights=None if unfolded_weights is None else unfolded_weights[first],
            layout=layout,
        ),
        "coverage": None,
        "calibration": None,
        "coverage_events": None,
        "coverage_unmatched": None,
    }
    if posterior is not None:
        levels = unfolding.CALIBRATION_LEVELS
        curves = unfolding.calibration_curves(posterior.samples, posterior.truth, levels)
        result |= {
            "coverage": unfolding.coverage_table(posterior.samples, posterior.truth),
            "calibration": {
                "levels": levels.tolist(),
                "observed": {name: curve.tolist() for name, curve in curves.items()},
            },
            "coverage_events": len(posterior),
            "coverage_unmatched": posterior.unmatched,
            "samples_per_event": posterior.samples.shape[1],
        }
    return result


def unfolding_markdown(result: Mapping) -> str:
    """The parton-level section: mass KS table, classifier sentence and coverage table."""
    u = result["unfolding"]
    labels = [f"`{name}`" for name in u["mass_ks"]]
    floor = u["ks_floor"]
    lines = [
        f"Unfolded partons ({u['events']['unfolded']} events, {u['samples_per_event']} "
        f"sample(s) each) against the true partons ({u['events']['truth']} events): the "
        "masses of the W- (lepton, neutrino), the W+ (u d-bar), the anti-top (lepton, "
        "neutrino, b-bar), the top (u d-bar b) and the tt-bar system, KS distance x 10^-2"
        + (f" (statistical floor {100 * floor:.2f})." if floor else "."),
        "",
        "| " + " | ".join(labels) + " |",
        "|---" * len(labels) + "|",
        "| " + " | ".join(_number(100 * v if v is not None else None, ".2f")
                          for v in u["mass_ks"].values()) + " |",
        "",
        _classifier_sentence(u["classifier"], "one draw of the unfolded partons", "per-parton"),
    ]
    if u.get("coverage"):
        levels = list(next(iter(u["coverage"].values())))
        lines += [
            "",
            f"Coverage of the posterior ({u['coverage_events']} events, "
            f"{u['samples_per_event']} samples each"
            + (f"; {u['coverage_unmatched']} without a truth left out" if u["coverage_unmatched"]
               else "")
            + "): the fraction of events whose true value lies in the central interval of its "
            "samples (calibrated: the nominal level; below: too narrow or biased; above: too "
            f"wide). The calibration curve, every level from 0.05 to 0.95, is `calibration` in "
            f"metrics.json and `plots/{CALIBRATION_PLOT}.png` (unless plots were turned off).",
            "",
            "| quantity | " + " | ".join(f"{100 * float(level):g} % interval" for level in levels)
            + " |",
            "|---" * (len(levels) + 1) + "|",
        ]
        for name, row in u["coverage"].items():
            lines.append(f"| `{name}` | " + " | ".join(_number(v, ".3f") for v in row.values())
                         + " |")
    elif u["samples_per_event"] == 1:
        lines += ["", "One sample per event: no coverage (unfold with `--samples K`, K >= 50)."]
    else:
        lines += ["", "No coverage: the unfolded events could not be matched to the truth "
                  "(each is matched by its input's file name and entry, see the `inputs` "
                  "metadata of the unfolded file)."]
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    """A figure formatted with ``spec``; n/a for a missing or non-finite one (metrics.json
    stores those as null)."""
    return format(value, spec) if value is not None and np.isfinite(value) else "n/a"


__all__ = [
    "CALIBRATION_PLOT",
    "PUBLISHED_TABLE1",
    "TABLE1",
    "check_report_directory",
    "classifier_markdown",
    "classifier_metrics",
    "compute_metrics",
    "metrics_markdown",
    "peak_metrics",
    "peaks_markdown",
    "plot_comparison",
    "save_histograms",
    "table1_markdown",
    "unfolding_markdown",
    "unfolding_metrics",
    "write_report",
]
