"""Try demo settings and print the Table 1 each gives (issue: the demo's fidelity).

Each variant runs the whole demo (`turbosim_hep.demo.run_demo`) with some fields of
`DemoSettings` changed, in its own directory, and prints its wall time and Table 1.
What was tried so far, and what it gave, is recorded in ``benchmarks/demo_settings.md``.

    python benchmarks/search_demo_settings.py --workdir /tmp/search epochs=40 epochs=80
    python benchmarks/search_demo_settings.py --workdir /tmp/search epochs=80,lr=1e-4
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from turbosim_hep import demo
from turbosim_hep.validation import report


def parse_variant(text: str) -> dict[str, object]:
    """``"epochs=80,lr=3e-4,w_Dzt=5"`` -> ``{"epochs": 80, "lr": 0.0003, "weights": {"Dzt": 5}}``.

    ``w_<term>`` sets one loss weight of the `turbosim` preset.
    """
    fields = {f.name: f.type for f in dataclasses.fields(demo.DemoSettings)}
    values: dict[str, object] = {}
    weights = dict(demo.DEFAULT.weights)
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.startswith("w_"):
            weights[name[2:]] = float(value)
            values["weights"] = tuple(weights.items())
            continue
        if name not in fields:
            raise SystemExit(f"unknown setting {name!r}; known: {', '.join(fields)}")
        values[name] = int(value) if value.isdigit() else float(value)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=VALUE[,NAME=VALUE]")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    default = demo.DEFAULT
    for text in args.variants:
        demo.DEFAULT = dataclasses.replace(default, **parse_variant(text))
        metrics = demo.run_demo(args.workdir / text.replace(",", "_"), force=True, progress=False)
        print(f"\n== {text}: {metrics['demo']['wall_seconds']:.0f} s")
        print(report.table1_markdown(metrics))
    demo.DEFAULT = default


if __name__ == "__main__":
    main()
