"""Unfolding at parton level: a trained model against the nearest-neighbour posterior.

The selected events of each sample (``turbosim-hep generate`` with a seed no test or demo
uses) are split into two halves with a fixed seed, as ``benchmarks/bench_fidelity.py``
does. The nearest-neighbour posterior (``benchmarks/baselines.py``) learns on one half;
every row unfolds the other half's detector events K times and is compared with that
half's true partons:

- the trained model (``--model``): K draws of its encoder per event, with the
  per-event noise of ``turbosim-hep unfold --seed S --samples K`` on the same file;
- the nearest-neighbour posterior: the partons of the K learning events whose detector
  objects are closest, each rotated to the event's azimuth;
- the true partons of the learning half: the statistical floor of the distributions'
  figures (it has no posterior: no coverage, no resolution).

For each sample a markdown table is printed (`turbosim_hep.validation.unfolding`):

- b py / pz / E: KS distance (x 10^-2) of the b quark's momentum components, all K
  samples pooled, against the true b quarks (Table 1's b columns);
- the masses of the W- (e- nu-bar), W+ (u d-bar), anti-top (e- nu-bar b-bar), top
  (u d-bar b) and tt-bar system: KS x 10^-2, samples pooled;
- classifier AUC: unfolded (one draw per event) against true partons, on per-parton
  log pT, eta, phi and the masses (0.5: indistinguishable);
- coverage: the fraction of events whose true m_tt, top pT, anti-top pT and b pT lie in
  the central 68 % and 95 % intervals of the event's K samples (calibrated: 0.68, 0.95);
- resolution: median over events of |m_tt(one draw) - m_tt(true)| / m_tt(true).

The figures of benchmarks/unfolding.md::

    turbosim-hep generate -n 200000 --seed 4242 --jobs 2 -o ttbar_4242.root
    python benchmarks/bench_unfolding.py --model demo-output/model.pt --sample ttbar_4242.root

``--events N`` keeps N selected events of each sample, for a quick look; ``--plots DIR``
writes the calibration plot of the model and of the baseline.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from baselines import NearestNeighbourPosterior
from bench_fidelity import add_shared_arguments, read_sample
from threadpoolctl import threadpool_limits

from turbosim_hep import layout, metrics
from turbosim_hep.inference import BATCH_EVENTS, cached_model, run_model
from turbosim_hep.random import event_normal, stream_id
from turbosim_hep.validation import unfolding

#: Table 1's b columns: column key -> Z column.
B_COLUMNS: Mapping[str, str] = {"b_py": "py_b", "b_pz": "pz_b", "b_E": "E_b"}
#: Row labels.
MODEL, NEIGHBOUR, FLOOR = (
    "trained model", "nearest-neighbour posterior", "true partons, one half against the other"
)


def unfold_model(
    model_path: str, x: np.ndarray, entry: np.ndarray, seed: int, stream: int, samples: int
) -> np.ndarray:
    """float32 (n, K, 24) partons: K draws of the model's encoder per event, with the
    per-event noise of ``unfold --samples K`` (keyed by ``seed``, the file's ``stream``,
    the events' ``entry`` and the sample)."""
    model = cached_model(model_path, "cpu")
    x = np.ascontiguousarray(x)
    drawn = np.empty((len(x), samples, layout.N_FEATURES), dtype=np.float32)
    for sample in range(samples):  # K whole-array passes, not a loop over events
        noise = None
        if model.encoder_noise_dim:
            noise = event_normal(seed, stream, entry, model.encoder_noise_dim, replica=sample)
        drawn[:, sample] = run_model(model.unfold, x, noise, torch.device("cpu"),
                                     BATCH_EVENTS["cpu"])
    return drawn


def compare(truth: np.ndarray, samples: np.ndarray, *, folds: int, seed: int) -> dict:
    """The figures of one row: (n, K, 24) samples against the (n', 24) true partons.

    Returns
    -------
    dict
        ``b_ks`` (column key -> KS), ``mass_ks`` (`unfolding.mass_ks`), ``classifier``
        (`unfolding.parton_classifier_test` of sample 0), ``coverage``
        (`unfolding.coverage_table`; None with one sample per event or other events than
        the truth's), ``calibration`` (`unfolding.calibration_curves`; None likewise) and
        ``resolution`` (median |Δm_tt| / m_tt of sample 0; None likewise).
    """
    pooled = samples.reshape(-1, layout.N_FEATURES)
    one_draw = samples[:, 0]
    paired = samples.shape[1] > 1 and len(samples) == len(truth)
    resolution = None
    if paired:
        true_m, drawn_m = (unfolding.parton_quantities(z, ["m_tt"])["m_tt"]
                           for z in (truth, one_draw))
        resolution = float(np.median(np.abs(drawn_m - true_m) / true_m))
    return {
        "b_ks": {key: metrics.ks_distance(truth[:, layout.column_index("z", column)],
                                          pooled[:, layout.column_index("z", column)])
                 for key, column in B_COLUMNS.items()},
        "mass_ks": unfolding.mass_ks(truth, pooled),
        "classifier": unfolding.parton_classifier_test(truth, one_draw, folds=folds, seed=seed),
        "coverage": unfolding.coverage_table(samples, truth) if paired else None,
        "calibration": unfolding.calibration_curves(samples, truth) if paired else None,
        "resolution": resolution,
    }


def markdown_table(rows: Mapping[str, dict]) -> str:
    """The rows' figures as a markdown table (KS x 10^-2)."""
    coverage = [f"{name} {level}" for name in unfolding.COVERAGE_QUANTITIES
                for level in ("68", "95")]
    header = (["unfolded partons"] + list(B_COLUMNS) + list(unfolding.PARTON_MASSES)
              + ["classifier AUC"] + [f"coverage {c}" for c in coverage]
              + ["median |Δm_tt|/m_tt"])
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for label, row in rows.items():
        cells = [f"{100 * row['b_ks'][key]:.2f}" for key in B_COLUMNS]
        cells += [f"{100 * row['mass_ks'][name]:.2f}" for name in unfolding.PARTON_MASSES]
        cells.append(f"{row['classifier']['auc']:.3f}")
        if row["coverage"] is None:
            cells += ["–"] * len(coverage)
        else:
            cells += [f"{value:.3f}" for name in unfolding.COVERAGE_QUANTITIES
                      for value in row["coverage"][name].values()]
        cells.append("–" if row["resolution"] is None else f"{row['resolution']:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_sample(path: str, args: argparse.Namespace) -> dict[str, dict]:
    """All rows of one sample, printed as they come and then as a table."""
    events, learn, test = read_sample(path, args.events, args.seed)
    z, x = events.z[test], events.x[test]
    print(f"\n## {path}: {len(events)} selected events, {len(test)} unfolded {args.samples} "
          f"times; the baseline learns from the other {len(learn)}", flush=True)
    rows_of: dict[str, Callable[[], np.ndarray]] = {
        MODEL: lambda: unfold_model(args.model, x, events.entry[test], args.seed,
                                    stream_id(os.path.basename(path)), args.samples),
        NEIGHBOUR: lambda: NearestNeighbourPosterior(args.samples)
        .fit(events.z[learn], events.x[learn])
        .sample(x),
        FLOOR: lambda: events.z[learn][:, np.newaxis],
    }
    rows = {}
    for label, unfold in rows_of.items():
        start = time.perf_counter()
        with threadpool_limits(args.threads):
            rows[label] = compare(z, unfold(), folds=args.folds, seed=args.seed)
        print(f"  {label}: AUC {rows[label]['classifier']['auc']:.3f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        if args.plots is not None and rows[label]["calibration"] is not None:
            args.plots.mkdir(parents=True, exist_ok=True)
            stem = f"{Path(path).stem}_{label.split()[0]}_calibration"
            written = unfolding.plot_calibration(
                unfolding.CALIBRATION_LEVELS, rows[label]["calibration"], args.plots / stem,
                events=len(test), samples=args.samples,
            )
            print(f"  calibration plot: {written[0]}", flush=True)
    print()
    print(markdown_table(rows))
    print(f"\nKS x 10^-2 against the {len(test)} true partons, the K samples of every event "
          f"pooled (statistical floor for one draw per event: "
          f"{100 * metrics.ks_floor(len(test), len(learn)):.2f}); AUC of a classifier "
          f"separating one draw per event from the truth, {args.folds}-fold cross-validated "
          f"(0.5: indistinguishable; one half of the truth against the other: "
          f"{rows[FLOOR]['classifier']['auc_floor']:.3f}); coverage of the central 68 % and "
          f"95 % intervals of the {args.samples} samples of each event (calibrated: 0.68, "
          f"0.95); resolution of one draw.", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shared_arguments(parser)
    parser.add_argument("--sample", nargs="+", type=Path,
                        default=[Path("/work/runs/ttbar_4242.root")],
                        help="generated files with partons and detector objects, one table "
                             "each (default: /work/runs/ttbar_4242.root)")
    parser.add_argument("--samples", type=int, default=50, metavar="K",
                        help="posterior samples per event, of the model and the baseline "
                             "(default 50)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the split, the model's noise and the classifier "
                             "(default 1)")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR",
                        help="write the calibration plot of each row with samples to DIR "
                             "(<sample>_<row>_calibration.png, .pdf)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.sample:
        bench_sample(str(path), args)


if __name__ == "__main__":
    main()
