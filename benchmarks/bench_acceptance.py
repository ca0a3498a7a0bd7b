"""Right yields from raw parton samples: the acceptance of a trained model, checked.

On a generated sample that keeps every event (``turbosim-hep generate`` without
``--selected-only``, with a seed no test or demo uses), this prints:

1. the selected yield the acceptance predicts, sum of epsilon(z) over every event with
   the six partons, against the number that passed the detector selection, with the
   standard error sqrt(sum epsilon (1 - epsilon)) (targets: within 2 % and 3 standard
   errors);
2. the calibration in bins of the true m_tt (of the six partons), the leading b-quark
   pT and the electron |eta|: mean epsilon against the observed pass fraction, and their
   pull, in every bin with at least 200 events (target: all pulls within 3); plotted with
   mplhep (``calibration.png`` in the work directory). The pull's standard error is that
   of the check sample's pass fraction; with ``--bootstrap N`` the classifier's own
   statistical error is estimated too (the spread of the binned mean epsilon over N
   acceptances trained on bootstrap resamples of ``--training-sample``, the shipped
   sample by default, of 70 % of its size as the demo's; an example drawn k times counts
   once with k times its weight) and a second pull uses both errors;
3. Table 1 of the selected truth against ``simulate`` of (a) the selected partons with
   ``--acceptance off`` (the reference), (b) every parton event with ``--acceptance
   sample`` and (c) with ``--acceptance weight`` (target: (b) and (c) within 1.2 times
   (a) in every column), and the yield each of (b) and (c) gives. Every simulation has
   ``--replicas`` replicas per event: with 4, the kept events of ``sample`` (a random
   13 % of the replicas) add a fluctuation of their own that 16 average out.

The sample of the figures in docs/simulate.md::

    turbosim-hep generate -n 200000 --seed 4242 --jobs 2 -o ttbar_4242.root
    python benchmarks/bench_acceptance.py --model demo-output/model.pt \\
        --sample ttbar_4242.root --workdir bench-acceptance
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from turbosim_hep import layout
from turbosim_hep.demo import shipped_sample
from turbosim_hep.inference import acceptance_probabilities, cached_acceptance
from turbosim_hep.io import EventWriter, read_events
from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns
from turbosim_hep.metrics import binned_pass_fraction
from turbosim_hep.pipeline import simulate_files, unfold_files
from turbosim_hep.validation import validate
from turbosim_hep.validation.report import TABLE1

#: Fewest events of a calibration bin that is judged.
MIN_BIN_EVENTS = 200
#: Bin edges of the calibration variables (GeV for m_tt and pT).
CALIBRATION_BINS = {
    "true m_tt [GeV]": np.array([300, 350, 400, 450, 500, 550, 600, 700, 800, 1000, 1300, 2000]),
    "leading b-quark pT [GeV]": np.array([0, 20, 30, 40, 50, 60, 70, 80, 100, 125, 150, 200, 300,
                                          500]),
    "electron |eta|": np.array([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0,
                                4.0, 6.0]),
}


def parton_variables(z: np.ndarray) -> dict[str, np.ndarray]:
    """The calibration variables of (n, 24) parton events."""
    p4 = z.reshape(len(z), layout.N_OBJECTS, layout.N_COMPONENTS).astype(np.float64)
    total = p4.sum(axis=1)
    m_tt = np.sqrt(np.maximum(total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1), 0.0))
    pt = np.hypot(p4[..., 0], p4[..., 1])
    b_slots = [layout.Z_OBJECTS.index(name) for name in ("b", "bbar")]
    electron = p4[:, layout.Z_OBJECTS.index("e-")]
    eta = np.arcsinh(electron[:, 2] / np.maximum(np.hypot(electron[:, 0], electron[:, 1]), 1e-9))
    return dict(zip(CALIBRATION_BINS, (m_tt, pt[:, b_slots].max(axis=1), np.abs(eta)),
                    strict=True))


def bin_indices(z: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each calibration variable: the bin of every event, and which are inside."""
    indices = {}
    for name, values in parton_variables(z).items():
        edges = CALIBRATION_BINS[name]
        index = np.clip(np.digitize(values, edges) - 1, 0, len(edges) - 2)
        indices[name] = (index, (values >= edges[0]) & (values < edges[-1]))
    return indices


def bootstrap_spread(
    training_sample: str, fraction: float, z: np.ndarray, passed: np.ndarray,
    weight: np.ndarray, replicas: int,
) -> dict[str, np.ndarray]:
    """The spread (standard deviation) of the binned mean epsilon of the check events over
    acceptances trained on ``replicas`` bootstrap resamples of the training sample, each
    of ``fraction`` times its number of events."""
    from turbosim_hep.training.acceptance import AcceptanceSettings, fit_acceptance
    from turbosim_hep.training.data import LabelledPartons

    events, _ = read_events(training_sample, labels=True)
    examples = LabelledPartons(events.z, events.passed, events.weights)
    indices = bin_indices(z)
    means: dict[str, list[np.ndarray]] = {name: [] for name in CALIBRATION_BINS}
    for replica in range(replicas):
        size = round(fraction * len(examples))
        drawn = np.random.default_rng(replica).integers(0, len(examples), size)
        # each example once, weighted by how often it was drawn: copies of one example in
        # two folds would give the calibration logits of members that learnt it
        counts = np.bincount(drawn, minlength=len(examples))
        rows = np.flatnonzero(counts)
        resample = LabelledPartons(examples.z[rows], examples.passed[rows],
                                   examples.weight[rows] * counts[rows])
        model, _ = fit_acceptance(resample, AcceptanceSettings(seed=replica), progress=False)
        with torch.no_grad():
            epsilon = model(torch.from_numpy(np.ascontiguousarray(z))).double().numpy()
        for name, (index, inside) in indices.items():
            table = binned_pass_fraction(index[inside], epsilon[inside], passed[inside],
                                         weight[inside], len(CALIBRATION_BINS[name]) - 1)
            means[name].append(table["predicted"])
        print(f"  bootstrap acceptance {replica + 1}/{replicas} trained", flush=True)
    return {name: np.std(values, axis=0, ddof=1) for name, values in means.items()}


def write_file(path: Path, entry, z, x=None, weight=None) -> Path:
    columns = event_columns(entry, weight=weight) | parton_columns(z)
    if x is not None:
        columns |= reco_columns(x)
    with EventWriter(path, force=True) as writer:
        writer.write(columns)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model with an acceptance")
    parser.add_argument("--sample", required=True, help="generated file with every event")
    parser.add_argument("--workdir", default="bench-acceptance", help="files and reports")
    parser.add_argument("--replicas", type=int, default=16,
                        help="--oversample of simulate (default 16: the simulation's own "
                             "fluctuation is then small against the truth's)")
    parser.add_argument("--seed", type=int, default=17, help="seed of simulate")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="also estimate the classifier's error from N bootstrap fits")
    parser.add_argument("--training-sample", default=str(shipped_sample()),
                        help="sample of the bootstrap fits (default: the shipped one)")
    parser.add_argument("--bootstrap-fraction", type=float, default=0.7,
                        help="events of each bootstrap fit, as a fraction of the training "
                             "sample (default 0.7: the demo's acceptance learns from 70 %%)")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)

    labelled, _ = read_events(args.sample, labels=True)
    selected, _ = read_events(args.sample)
    weight = labelled.weights.astype(np.float64)
    if not np.all(weight == 1.0):
        print("note: the sample is weighted; yields and fractions below are weighted")
    acceptance = cached_acceptance(args.model, "cpu")
    if acceptance is None:
        raise SystemExit(f"{args.model} has no acceptance")
    epsilon = acceptance_probabilities(acceptance, labelled.z, torch.device("cpu"), 65_536)
    passed = labelled.passed.astype(np.float64)
    results: dict = {"events": len(labelled), "selected": int(passed.sum())}

    # 1. the yield
    predicted, observed = float(np.sum(weight * epsilon)), float(np.sum(weight * passed))
    error = float(np.sqrt(np.sum(weight**2 * epsilon * (1 - epsilon))))
    results["yield"] = {"predicted": predicted, "observed": observed, "error": error}
    print(f"{len(labelled)} events with the six partons, {observed:.0f} selected "
          f"({observed / weight.sum():.2%})")
    print(f"predicted selected yield {predicted:.1f} +- {error:.1f}: "
          f"{predicted / observed - 1:+.2%}, {(predicted - observed) / error:+.2f} standard errors")

    # 2. the calibration
    spread = {}
    if args.bootstrap:
        print(f"training {args.bootstrap} acceptances on bootstrap resamples of "
              f"{args.training_sample}")
        spread = bootstrap_spread(args.training_sample, args.bootstrap_fraction, labelled.z,
                                  passed, weight, args.bootstrap)
    results["calibration"] = {}
    worst = {"check": 0.0, "both": 0.0}
    for name, (index, inside) in bin_indices(labelled.z).items():
        edges = CALIBRATION_BINS[name]
        table = binned_pass_fraction(
            index[inside], epsilon[inside], passed[inside], weight[inside], len(edges) - 1
        )
        # the standard error of the predicted mean: sqrt(sum eps (1 - eps)) / n per bin
        variance = np.bincount(index[inside], weights=(weight**2 * epsilon * (1 - epsilon))[inside],
                               minlength=len(edges) - 1)
        error = np.sqrt(variance) / np.maximum(table["weight"], 1e-12)
        pull = (table["predicted"] - table["observed"]) / error
        judged = table["events"] >= MIN_BIN_EVENTS
        record = {
            "edges": edges.tolist(), "events": table["events"].tolist(),
            "predicted": table["predicted"].tolist(), "observed": table["observed"].tolist(),
            "error": error.tolist(), "pull": pull.tolist(),
        }
        worst["check"] = max(worst["check"], float(np.nanmax(np.abs(pull[judged]))))
        line = (f"calibration in {name}: largest |pull| {np.nanmax(np.abs(pull[judged])):.2f}"
                f" over {judged.sum()} bins with >= {MIN_BIN_EVENTS} events")
        if spread:
            both = (table["predicted"] - table["observed"]) / np.hypot(error, spread[name])
            record |= {"classifier_error": spread[name].tolist(), "pull_both": both.tolist()}
            worst["both"] = max(worst["both"], float(np.nanmax(np.abs(both[judged]))))
            line += f"; {np.nanmax(np.abs(both[judged])):.2f} with the classifier's error"
        results["calibration"][name] = record
        print(line)
    print(f"largest |pull| of all judged bins: {worst['check']:.2f}"
          + (f"; {worst['both']:.2f} with the classifier's error" if spread else ""))
    plot_calibration(results["calibration"], work / "calibration.png")

    # 3. Table 1 of the three simulations against the selected truth
    truth = write_file(work / "truth.root", selected.entry, selected.z, selected.x)
    raw = write_file(work / "partons.root", labelled.entry, labelled.z, weight=labelled.weights)
    unfolded = work / "unfolded.root"
    unfold_files(args.model, [truth], unfolded, seed=args.seed, force=True, progress=False)
    runs = {
        "selected partons, off": ([truth], "off"),
        "all partons, sample": ([raw], "sample"),
        "all partons, weight": ([raw], "weight"),
    }
    results["table1"] = {}
    for name, (inputs, mode) in runs.items():
        out = work / f"sim_{mode}.root"
        simulate_files(args.model, inputs, out, seed=args.seed, acceptance=mode,
                       oversample=args.replicas, force=True, progress=False)
        metrics = validate(truth, [out], work / f"report_{mode}", unfolded=unfolded,
                           plots=[name for name, _ in TABLE1.values()], force=True,
                           progress=False)
        results["table1"][name] = {"table1": metrics["table1"], "yield": metrics["yield"]}
    reference = results["table1"]["selected partons, off"]["table1"]
    print()
    print("Table 1 (KS x 10^-2) | " + " | ".join(TABLE1))
    for name, row in results["table1"].items():
        values = " | ".join(f"{100 * v:.2f}" for v in row["table1"].values())
        ratio = max(row["table1"][k] / reference[k] for k in TABLE1)
        print(f"{name} | {values} | largest ratio to the reference {ratio:.2f}; "
              f"yield {row['yield']['simulation']:.1f}")
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures in {work / 'results.json'}, plot {work / 'calibration.png'}")


def plot_calibration(calibration: dict, path: Path) -> None:
    """Mean epsilon and observed pass fraction per bin, with their pulls below."""
    import matplotlib.pyplot as plt
    import mplhep

    with plt.style.context(mplhep.style.ROOT):
        fig, axes = plt.subplots(
            2, len(calibration), figsize=(7 * len(calibration), 7), sharex="col",
            gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05, "wspace": 0.3},
        )
        for column, (name, table) in enumerate(calibration.items()):
            edges = np.asarray(table["edges"])
            centres = 0.5 * (edges[1:] + edges[:-1])
            judged = np.asarray(table["events"]) >= MIN_BIN_EVENTS
            observed = np.asarray(table["observed"])
            predicted = np.asarray(table["predicted"])
            error = np.asarray(table["error"])
            top, bottom = axes[0, column], axes[1, column]
            mplhep.histplot(np.where(judged, predicted, np.nan), edges, ax=top,
                            label=r"mean $\varepsilon(z)$")
            top.errorbar(centres[judged], observed[judged], yerr=error[judged], fmt="o",
                         color="black", label="observed pass fraction")
            top.set_ylabel("selected fraction")
            top.legend(fontsize="small")
            bottom.axhspan(-3, 3, color="0.9")
            bottom.plot(centres[judged], np.asarray(table["pull"])[judged], "o", color="black",
                        label="the check sample")
            if "pull_both" in table:
                bottom.plot(centres[judged], np.asarray(table["pull_both"])[judged], "o",
                            mfc="none", color="tab:blue",
                            label="the check sample and the classifier")
            bottom.axhline(0, color="0.5")
            bottom.set_ylim(-4.5, 4.5)
            bottom.set_ylabel("pull")
            bottom.set_xlabel(name)
        if any("pull_both" in table for table in calibration.values()):
            fig.legend(*axes[1, 0].get_legend_handles_labels(), loc="upper center",
                       ncols=2, title="pull: (mean epsilon - pass fraction) / standard error of",
                       bbox_to_anchor=(0.5, 0.0), fontsize="small", title_fontsize="small")
        fig.savefig(path, bbox_inches="tight", dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main()
