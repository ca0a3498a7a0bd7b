"""Fidelity of a trained model against two lookup baselines, on the same independent events.

The selected events of each sample (``turbosim-hep generate`` with a seed no test or demo
uses) are split into two halves with a fixed seed. The two baselines of
``benchmarks/baselines.py`` learn on one half (or, with ``--learn-from demo``, on the
demo's training and validation events of the shipped sample: the model's own); every row
simulates the other half's partons and is compared with that half's detector truth:

- the trained model (``--model``; no acceptance: these partons passed the selection;
  the per-event noise of ``turbosim-hep simulate --seed S`` on the same file);
- binned parametric smearing (what Delphes does);
- the nearest-neighbour response;
- the detector truth of the learning half: the statistical floor of every figure.

For each sample a markdown table is printed: the seven detector-level columns of the
paper's Table 1 (KS distance x 10^-2), the ROC AUC of the classifier two-sample test
(`turbosim_hep.validation.classifier`: 0.5 when the classifier cannot tell the row from
the truth) and, for the hadronic top, the hadronic W, the leptonic top and m_tt, the
simulated/truth height at the truth's peak and the FWHM ratio
(`turbosim_hep.validation.peaks`).

The figures of benchmarks/fidelity.md::

    turbosim-hep generate -n 200000 --seed 4242 --jobs 2 -o ttbar_4242.root
    python benchmarks/bench_fidelity.py --model demo-output/model.pt --sample ttbar_4242.root

``--events N`` keeps N selected events of each sample, for a quick look. ``--threads``
is 1 by default: on a machine whose cores are busy with other work, the classifier's
OpenMP threads are several times slower than one thread.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from baselines import BinnedSmearing, NearestNeighbourResponse
from threadpoolctl import threadpool_limits

from turbosim_hep import metrics
from turbosim_hep.demo import DEFAULT, shipped_sample, split_indices
from turbosim_hep.inference import BATCH_EVENTS, cached_model, run_model
from turbosim_hep.io import EventBatch, read_events
from turbosim_hep.random import event_normal, stream_id
from turbosim_hep.validation.classifier import classifier_test, detector_values, event_features
from turbosim_hep.validation.peaks import mass_peaks
from turbosim_hep.validation.report import TABLE1, TABLE1_PARTON_COLUMNS

#: The detector-level columns of Table 1: column key -> quantity.
KS_COLUMNS: Mapping[str, str] = {
    key: name for key, (name, _) in TABLE1.items() if key not in TABLE1_PARTON_COLUMNS
}
#: The masses whose peaks are compared, in table order.
PEAKS: tuple[str, ...] = ("m_t_had", "m_W_had", "m_t_lep", "m_tt")
#: The seed of the demo's split (`turbosim_hep.demo.run_demo`'s default).
DEMO_SEED = 2021
#: Row labels.
MODEL, SMEARING, NEIGHBOUR, FLOOR = (
    "trained model", "binned smearing", "nearest-neighbour response",
    "detector truth, one half against the other",
)


def split_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the learning half and of the test half of n events, drawn with ``seed``."""
    learn, test = np.array_split(np.random.default_rng(seed).permutation(n), 2)
    return np.sort(learn), np.sort(test)


def read_sample(
    path: str, events: int | None, seed: int
) -> tuple[EventBatch, np.ndarray, np.ndarray]:
    """The selected events of a sample (the first ``events`` of them, or all) and the
    rows of its learning and test halves (`split_halves`)."""
    batch, _ = read_events(path)
    if events is not None:
        batch = batch.take(np.arange(min(events, len(batch))))
    learn, test = split_halves(len(batch), seed)
    return batch, learn, test


def demo_training_events() -> tuple[np.ndarray, np.ndarray]:
    """Partons and detector objects of the events the demo's model learns from: the
    training and validation parts of the shipped sample's selected events."""
    events, _ = read_events(shipped_sample())
    parts = split_indices(len(events), DEFAULT, DEMO_SEED)
    rows = np.sort(np.concatenate([parts["train"], parts["val"]]))
    return events.z[rows], events.x[rows]


def simulate_model(
    model_path: str, z: np.ndarray, entry: np.ndarray, seed: int, stream: int
) -> np.ndarray:
    """float32 (n, 24) detector objects of the model, with the per-event noise of
    ``simulate`` (keyed by ``seed``, the file's ``stream`` and the events' ``entry``)."""
    model = cached_model(model_path, "cpu")
    noise = None
    if model.decoder_noise_dim:
        noise = event_normal(seed, stream, entry, model.decoder_noise_dim)
    return run_model(model.simulate, np.ascontiguousarray(z), noise, torch.device("cpu"),
                     BATCH_EVENTS["cpu"])


def compare(
    truth: Mapping[str, np.ndarray], simulated: np.ndarray, *, folds: int, seed: int
) -> dict:
    """The figures of one row: simulated (n, 24) X against the truth's values.

    Returns
    -------
    dict
        ``ks`` (column key -> KS distance), ``classifier`` (`classifier_test`'s result),
        ``peaks`` (`mass_peaks`'s), ``valid`` (fraction of physically valid events).
    """
    values = detector_values(simulated)
    features = [event_features(v)[0] for v in (truth, values)]
    return {
        "ks": {key: metrics.ks_distance(truth[name], values[name])
               for key, name in KS_COLUMNS.items()},
        "classifier": classifier_test(*features, folds=folds, seed=seed),
        "peaks": mass_peaks(truth, values),
        "valid": metrics.valid_fraction(simulated),
    }


def markdown_table(rows: Mapping[str, dict]) -> str:
    """The rows' KS distances (x 10^-2), classifier AUC and peak ratios as a markdown table."""
    header = (["simulation"] + list(KS_COLUMNS) + ["classifier AUC"]
              + [f"{name}: height, FWHM ratio" for name in PEAKS])
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for label, row in rows.items():
        cells = [f"{100 * row['ks'][key]:.2f}" for key in KS_COLUMNS]
        cells.append(f"{row['classifier']['auc']:.3f}")
        cells += [
            f"{row['peaks'][name]['height_ratio']:.2f}, {row['peaks'][name]['fwhm_ratio']:.2f}"
            for name in PEAKS
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_sample(path: str, args: argparse.Namespace) -> dict[str, dict]:
    """All rows of one sample, printed as they come and then as a table."""
    events, learn, test = read_sample(path, args.events, args.seed)
    z, x = events.z[test], events.x[test]
    if args.learn_from == "demo":
        learn_z, learn_x = demo_training_events()
        source = "the demo's training events"
    else:
        learn_z, learn_x = events.z[learn], events.x[learn]
        source = "the other half"
    print(f"\n## {path}: {len(events)} selected events, {len(test)} compared; the baselines "
          f"learn from {len(learn_z)} events ({source})", flush=True)
    truth = detector_values(x)
    rng = np.random.default_rng(args.seed)
    simulations: dict[str, Callable[[], np.ndarray]] = {
        MODEL: lambda: simulate_model(args.model, z, events.entry[test], args.seed,
                                      stream_id(os.path.basename(path))),
        SMEARING: lambda: BinnedSmearing().fit(learn_z, learn_x).simulate(z, rng),
        NEIGHBOUR: lambda: NearestNeighbourResponse(args.neighbours)
        .fit(learn_z, learn_x)
        .simulate(z, rng),
        FLOOR: lambda: events.x[learn],
    }
    rows = {}
    for label, simulate in simulations.items():
        start = time.perf_counter()
        with threadpool_limits(args.threads):
            rows[label] = compare(truth, simulate(), folds=args.folds, seed=args.seed)
        print(f"  {label}: AUC {rows[label]['classifier']['auc']:.3f}, valid events "
              f"{rows[label]['valid']:.4f}, {time.perf_counter() - start:.0f} s", flush=True)
    print()
    print(markdown_table(rows))
    print(f"\nKS x 10^-2 (statistical floor for these sizes: "
          f"{100 * metrics.ks_floor(len(test), len(learn)):.2f}); AUC of a classifier "
          f"separating the row from the truth, {args.folds}-fold cross-validated (0.5: "
          f"indistinguishable; one half of the compared truth against the other: "
          f"{rows[FLOOR]['classifier']['auc_floor']:.3f}); peaks: simulated / truth height at "
          f"the truth's peak, FWHM simulated / truth.", flush=True)
    return rows


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags this benchmark and bench_unfolding.py share: the model, the events kept,
    the classifier's folds and the threads."""
    parser.add_argument("--model", required=True, help="trained model (turbosim-hep train)")
    parser.add_argument("--events", type=int, default=None, metavar="N",
                        help="keep the first N selected events of each sample (default: all)")
    parser.add_argument("--folds", type=int, default=5,
                        help="folds of the classifier's cross-validation (default 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of the classifier and the model (default 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shared_arguments(parser)
    parser.add_argument("--sample", required=True, nargs="+", type=Path,
                        help="generated files with partons and detector objects, one table each")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the split, the model's noise, the baselines' draws and "
                             "the classifier (default 1)")
    parser.add_argument("--learn-from", choices=("half", "demo"), default="half",
                        help="what the baselines learn from: the other half of the sample "
                             "(default) or the demo's training events of the shipped sample")
    parser.add_argument("--neighbours", type=int, default=1,
                        help="the nearest-neighbour response draws from this many nearest "
                             "learning events (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.sample:
        bench_sample(str(path), args)


if __name__ == "__main__":
    main()
