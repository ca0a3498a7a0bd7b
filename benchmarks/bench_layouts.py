"""The demo's recipe on the samples of two layouts of the same generated size, side by side.

Issue 23's target for ``mujets``: with the demo's recipe on a generated muon+jets sample,
Table 1 at or below the paper's Turbo-Sim row, and the classifier AUC and the peak figures
within 0.05 and 5 % of what ``ejets`` reaches with the same recipe. This runs the demo
(`turbosim_hep.demo.run_demo`, its settings but for the number of events) once per
``LAYOUT=SAMPLE`` and prints Table 1, the AUC and the peaks of each.

``--generated N`` keeps the events of the first N generated of each sample (the ``event``
branch of ``turbosim-hep generate`` files: every selected event and the kept rejected
ones), so that samples of different sizes are compared at the same generated size::

    turbosim-hep generate -n 120000 --layout mujets --seed 3031 --rejected-fraction 0.25 \\
        --mantissa-bits 16 -o mujets_120k.root
    python benchmarks/bench_layouts.py ejets=turbosim_hep/data/ttbar_sample.root \\
        mujets=mujets_120k.root --generated 120000 -o layouts-run

Each demo takes most of the two cores for 5 to 15 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import uproot

from turbosim_hep import demo
from turbosim_hep.io import read_events
from turbosim_hep.validation.report import TABLE1, table1_markdown

PEAKS = ("m_W_had", "m_t_had", "m_t_lep", "m_tt")


def selected_within(sample: str, layout: str, generated: int | None) -> int | None:
    """Selected events of ``sample`` among its first ``generated`` generated events."""
    if generated is None:
        return None
    batch, _ = read_events(sample, layout)
    with uproot.open(sample) as file:
        event = file["Events"]["event"].array(library="np")
    return int(np.count_nonzero(event[batch.entry] < generated))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LAYOUT=SAMPLE")
    parser.add_argument("--generated", type=int, default=None, metavar="N",
                        help="keep the events of the first N generated of each sample")
    parser.add_argument("-o", "--output", default="layouts-run", metavar="DIR")
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args()
    rows = {}
    for run in args.runs:
        layout, sample = run.split("=", 1)
        max_events = selected_within(sample, layout, args.generated)
        demo.DEFAULT = dataclasses.replace(demo.DEFAULT, max_events=max_events)
        metrics = demo.run_demo(Path(args.output) / layout, sample=sample, layout=layout,
                                seed=args.seed, force=True, progress=False)
        rows[layout] = metrics
    print()
    print(f"demo recipe, {args.generated or 'all'} generated events per sample")
    for layout, metrics in rows.items():
        peaks = metrics["peaks"]
        print(f"\n{layout}: {metrics['demo']['split']} selected events (train/val/test)")
        print(table1_markdown(metrics))
        print(f"classifier AUC {metrics['classifier']['auc']:.3f} "
              f"(floor {metrics['classifier']['auc_floor']:.3f})")
        print("peaks (height ratio / FWHM ratio): " + ", ".join(
            f"{m} {peaks[m]['height_ratio']:.2f} / {peaks[m]['fwhm_ratio']:.2f}" for m in PEAKS
        ))
    summary = {
        layout: {
            "table1": {key: m["table1"][key] for key in TABLE1},
            "auc": m["classifier"]["auc"],
            "peaks": {p: m["peaks"][p] for p in PEAKS},
            "split": m["demo"]["split"],
        }
        for layout, m in rows.items()
    }
    Path(args.output, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
