"""The end-to-end demo: train, simulate, unfold and validate on the shipped sample.

Every step is the library's own (`training.train`, `pipeline.simulate_files` and
`unfold_files`, `validation.validate`), run on a deterministic split of the shipped
pp -> tt-bar sample, which holds every selected event and a weighted fraction of the
rejected ones:

1. split the events into training, validation and test parts (fixed seed; the selected
   events and the rejected ones each in the same proportions);
2. write the selected test events as a truth file and the partons of every test event,
   selected or not, as a raw parton file (the project's own ROOT format);
3. train the ``turbosim`` preset on the selected training events (validation part for
   model selection), and the detector acceptance on all training events;
4. ``simulate`` the selected test partons several times (`--oversample`; more simulated
   events per truth event lower the statistical floor of the KS distances) and
   ``unfold`` the test detector events; ``simulate`` every test parton event with the
   acceptance, sampled and as a weight;
5. run the validation analysis of the test truth against each and write the reports:
   Table 1 of the paper for the selected partons, and the selected yield and Table 1 that
   the acceptance gives from the raw partons.

``--quick`` runs the same code path on a small subset for one epoch (for tests).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from turbosim_hep.errors import InputError, TurbosimError
from turbosim_hep.generate.run import generate_file
from turbosim_hep.io import Cutflow, EventBatch, EventFile, EventWriter, read_events
from turbosim_hep.io.formats import LAYOUT_KEY
from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns
from turbosim_hep.layout import BUILTIN_LAYOUTS, DEFAULT_LAYOUT, Layout, resolve_layout
from turbosim_hep.metrics import ks_floor
from turbosim_hep.model import ModelConfig
from turbosim_hep.model.presets import loss_config as preset_loss
from turbosim_hep.pipeline import RunSummary, simulate_files, unfold_files
from turbosim_hep.training import PairedEvents, TrainConfig, TrainResult, train
from turbosim_hep.training.acceptance import AcceptanceSettings
from turbosim_hep.training.data import LabelledPartons
from turbosim_hep.validation import report, validate

#: The shipped sample (package data).
SAMPLE_NAME = "ttbar_sample.root"


@dataclass(frozen=True)
class DemoSettings:
    """How much of the sample the demo uses, and how it trains.

    The defaults are the best of the settings tried within the ten-minute budget on two
    CPU cores (``benchmarks/demo_settings.md``).

    Attributes
    ----------
    test_fraction, val_fraction : float
        Parts of the events held out for the test and for model selection.
    max_events : int or None
        Use at most this many selected events of the sample, and the rejected events
        among them (None: all).
    epochs : int
        Training epochs.
    lr : float
        Learning rate of the encoder and the decoder (3e-4 trains faster than the
        reference 1e-4 and stayed stable; 1e-3 did not).
    gp_interval, ema_decay, select_on_physics
        Lazy gradient penalty, moving average of the weights and choice of the best
        epoch (see `turbosim_hep.training.TrainConfig`).
    model : tuple of (str, object)
        `turbosim_hep.model.ModelConfig` settings that replace the defaults, as (name,
        value) pairs.
    weights : tuple of (str, float)
        Loss weights that replace the `turbosim` preset's, as (term, weight) pairs.
    scores : tuple of (str, str)
        Losses of d terms that replace the preset's l_p (``LossConfig.score``), as
        (term, score) pairs.
    mass_weight : float
        Weight of the mass term added to the `turbosim` preset
        (`turbosim_hep.model.losses.LossConfig`).
    threads : int
        Torch threads of the training on a CPU (0: every core; the demo runs alone).
    replicas : int
        Simulated events per test parton event (``simulate --oversample``).
    posterior_samples : int
        Unfolded parton events per test detector event (``unfold --samples``): enough
        for the coverage of the per-event posterior intervals in the report.
    acceptance : AcceptanceSettings
        How the acceptance is trained.
    plots : bool or tuple of str
        Plots of the report (see `turbosim_hep.validation.report.write_report`); the
        reports of the acceptance check plot Table 1's quantities of these (about a
        second per plot on 2 cores).
    generated_events : int
        Events the demo generates for a layout that has no shipped sample and was given
        none (the shipped ``ejets`` sample was generated from 520,000).
    """

    test_fraction: float = 0.3
    val_fraction: float = 0.1
    max_events: int | None = None
    epochs: int = 60
    lr: float = 3e-4
    gp_interval: int = 4
    ema_decay: float | None = 0.999
    select_on_physics: bool = True
    model: tuple[tuple[str, object], ...] = (
        ("x_head", "radiation"), ("z_head", "chain"),
        ("encoder_noise_mode", "cat"), ("encoder_noise_sigma", 1.0),
    )
    weights: tuple[tuple[str, float], ...] = (("Dzt", 5.0), ("dxh", 0.0), ("dzt", 30.0),
                                              ("dzh", 3.0))
    scores: tuple[tuple[str, str], ...] = (("dzt", "energy"), ("dzh", "energy"))
    mass_weight: float = 100.0
    threads: int = 0
    replicas: int = 4
    posterior_samples: int = 50
    acceptance: AcceptanceSettings = field(default_factory=AcceptanceSettings)
    plots: bool | tuple[str, ...] = True
    generated_events: int = 520_000


DEFAULT = DemoSettings()
#: The same run on a small subset: one epoch of 36 steps, averaged over ~10 steps.
QUICK = replace(
    DEFAULT, max_events=6000, epochs=1, ema_decay=0.9, replicas=1, posterior_samples=8,
    acceptance=AcceptanceSettings(epochs=2), plots=("m_t_had", "x_E_jet1"), generated_events=4000,
)
#: The acceptance modes the demo checks on the raw test partons.
ACCEPTANCE_CHECKS = ("sample", "weight")


def shipped_sample() -> Path:
    """Path of the shipped sample inside the installed package."""
    return Path(str(resources.files("turbosim_hep") / "data" / SAMPLE_NAME))


def split_indices(n: int, settings: DemoSettings, seed: int) -> dict[str, np.ndarray]:
    """Deterministic train / val / test indices (sorted) of n events."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(settings.test_fraction * n))
    n_val = int(round(settings.val_fraction * n))
    parts = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    return {name: np.sort(index) for name, index in parts.items()}


def run_demo(
    output_dir: str | os.PathLike,
    *,
    sample: str | os.PathLike | None = None,
    device: str = "auto",
    quick: bool = False,
    seed: int = 2021,
    force: bool = False,
    progress: bool = True,
    layout: Layout | str | None = None,
) -> dict:
    """Run the demo and write everything under ``output_dir``.

    Parameters
    ----------
    output_dir : str or os.PathLike
        Directory for the model, the ROOT files, the reports and ``demo.json`` (the
        split, the settings, the acceptance check and the wall time); created if
        missing, refused if it holds files unless ``force``.
    sample : path, optional
        Events to use instead of the shipped sample (own format or Delphes, with partons;
        the acceptance is checked when it holds rejected events). Without one, the
        shipped sample for ``ejets``, and for another layout a sample the demo generates
        first (``settings.generated_events`` events, as ``turbosim-hep generate`` does).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    quick : bool
        Use `QUICK` instead of `DEFAULT` (a one-minute run for tests).
    seed : int
        Seed of the split, the training and the simulation.
    force : bool
        Reuse a non-empty output directory, replacing what the demo writes there.
    progress : bool
        Show progress bars.
    layout : turbosim_hep.layout.Layout or str, optional
        The final state (a `Layout`, a built-in name or a layout file). Default: the
        built-in layout the sample's metadata names, else ``ejets``.

    Returns
    -------
    dict
        The validation metrics of the selected partons
        (`turbosim_hep.validation.report.compute_metrics`) with the demo's facts added
        under ``demo`` (and the acceptance check under ``demo["acceptance"]``).
    """
    started = time.perf_counter()
    settings = QUICK if quick else DEFAULT
    out = _prepare_directory(output_dir, force=force)
    layout = _demo_layout(layout, sample)
    if sample is None and layout != DEFAULT_LAYOUT:
        sample = out / f"sample_{layout.name}.root"
        _step(0, f"generating {settings.generated_events:,} {layout.name} events", sample)
        try:
            generate_file(sample, settings.generated_events, seed=seed,
                          jobs=os.cpu_count() or 1, rejected_fraction=0.25, mantissa_bits=16,
                          force=True, progress=progress, layout=layout)
        except ImportError as err:  # no Pythia: the [generate] extra is not installed
            raise TurbosimError(f"{err}; or give --sample") from None
    sample = Path(sample) if sample is not None else shipped_sample()
    if not sample.exists():
        raise InputError(
            sample, "no such file (the shipped sample is missing from this installation)"
        )

    _step(1, f"reading and splitting the sample ({layout.name})", sample)
    split = _split_sample(sample, settings, seed, layout)

    _step(2, "writing the test truth and the raw test partons", out)
    files = _write_test_files(split, out, sample.name, seed, layout)

    _step(3, f"training the turbosim preset for {settings.epochs} epochs", files.model)
    result = _train(sample, split, files, settings, seed=seed, device=device, progress=progress,
                    layout=layout)

    _step(4, f"simulating the test partons ({settings.replicas}x) and unfolding the test events",
          out)
    checks = ACCEPTANCE_CHECKS if result.acceptance is not None else ()
    accepted = _simulate_and_unfold(files, checks, settings, seed=seed, device=device,
                                    progress=progress)

    _step(5, "validating against the test truth", out / "report")
    metrics = validate(files.truth, [files.simulated], out / "report", unfolded=files.unfolded,
                       plots=settings.plots, force=True, progress=progress, layout=layout)
    acceptance = _check_acceptance(files, accepted, settings, metrics["table1"],
                                   progress=progress, layout=layout)
    metrics["demo"] = _facts(sample, split, settings, result, acceptance)
    metrics["demo"]["layout"] = layout.name
    metrics["demo"]["wall_seconds"] = time.perf_counter() - started
    (out / "demo.json").write_text(json.dumps(metrics["demo"], indent=2) + "\n")
    _summary(metrics, out)
    return metrics


@dataclass(frozen=True)
class _Split:
    """The sample split into training, validation and test parts (step 1)."""

    batch: EventBatch  # the selected events (at most settings.max_events)
    cutflow: Cutflow  # of the whole sample
    labelled: EventBatch  # every event, selected or not, labelled
    parts: dict[str, np.ndarray]  # indices of the selected events of each part in batch
    test_events: np.ndarray  # which labelled events are in the test part, selected or not

    @property
    def test(self) -> np.ndarray:
        """Indices of the selected test events in `batch`."""
        return self.parts["test"]


@dataclass(frozen=True)
class _Files:
    """What the demo writes under its directory."""

    out: Path

    @property
    def truth(self) -> Path:
        """The selected test events (step 2)."""
        return self.out / "test_truth.root"

    @property
    def partons(self) -> Path:
        """The partons of every test event, selected or not (step 2)."""
        return self.out / "test_partons.root"

    @property
    def model(self) -> Path:
        """The trained model (step 3)."""
        return self.out / "model.pt"

    @property
    def simulated(self) -> Path:
        """The test partons simulated (step 4)."""
        return self.out / "simulated.root"

    @property
    def unfolded(self) -> Path:
        """The test detector events unfolded (step 4)."""
        return self.out / "unfolded.root"

    def accepted(self, mode: str) -> Path:
        """Every test parton event simulated with the acceptance in ``mode`` (step 4)."""
        return self.out / f"accepted_{mode}.root"


def _demo_layout(layout: Layout | str | None, sample: str | os.PathLike | None) -> Layout:
    """The layout asked for; else the built-in one the sample's metadata names; else
    ``ejets`` (the shipped sample's)."""
    if layout is not None:
        return resolve_layout(layout)
    if sample is None or not os.path.isfile(sample):
        return DEFAULT_LAYOUT
    return BUILTIN_LAYOUTS.get(EventFile(sample).stored_layout, DEFAULT_LAYOUT)


def _split_sample(sample: Path, settings: DemoSettings, seed: int, layout: Layout) -> _Split:
    """Step 1: read the sample and split it (the selected events and the rejected ones
    each in the same proportions)."""
    batch, cutflow = read_events(sample, layout)
    labelled, _ = read_events(sample, layout, labels=True)
    if settings.max_events is not None and len(batch) > settings.max_events:
        batch = batch.take(slice(0, settings.max_events))
        labelled = labelled.take(labelled.entry <= batch.entry[-1])
    parts = split_indices(len(batch), settings, seed)
    rejected = np.flatnonzero(~labelled.passed)
    rejected_parts = split_indices(len(rejected), settings, seed + 1)
    examples = {  # every event of each part, selected or not, by entry in the sample
        name: np.sort(np.concatenate([batch.entry[parts[name]], labelled.entry[rejected[index]]]))
        for name, index in rejected_parts.items()
    }
    print(
        f"    {len(batch)} selected events: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items())
        + f"; {len(rejected)} rejected events kept in the sample"
    )
    return _Split(batch, cutflow, labelled, parts, np.isin(labelled.entry, examples["test"]))


def _write_test_files(
    split: _Split, out: Path, sample_name: str, seed: int, layout: Layout
) -> _Files:
    """Step 2: the selected test events as a truth file, and the partons of every test
    event, selected or not, as a raw parton file."""
    files = _Files(out)
    batch, test = split.batch, split.test
    facts = {"sample": sample_name, "split": "test", "seed": seed, LAYOUT_KEY: layout.name}
    with EventWriter(files.truth, force=True, metadata=facts) as writer:
        writer.write(
            event_columns(batch.entry[test])
            | reco_columns(batch.x[test], layout=layout)
            | parton_columns(batch.z[test], layout=layout)
        )
    raw = split.labelled.take(split.test_events)
    with EventWriter(files.partons, force=True, metadata=facts | {"content": "raw"}) as writer:
        writer.write(
            event_columns(raw.entry, weight=raw.weights) | parton_columns(raw.z, layout=layout)
        )
    return files


def _train(
    sample: Path, split: _Split, files: _Files, settings: DemoSettings, *, seed: int,
    device: str, progress: bool, layout: Layout,
) -> TrainResult:
    """Step 3: train the ``turbosim`` preset on the selected training events (the
    validation part for model selection), and the acceptance on every training event."""
    parts = split.parts
    fit = np.concatenate([parts["train"], parts["val"]])
    learn = split.labelled.take(~split.test_events)
    result = train(
        [sample],
        files.model,
        model_config=ModelConfig.from_dict(dict(settings.model)),
        loss_config=preset_loss(
            "turbosim", dict(settings.weights), mass_weight=settings.mass_weight,
            score=dict(settings.scores),
        ),
        train_config=TrainConfig(
            epochs=settings.epochs,
            lr=settings.lr,
            gp_interval=settings.gp_interval,
            ema_decay=settings.ema_decay,
            select_on_physics=bool(settings.select_on_physics),
            threads=settings.threads,
            val_fraction=len(parts["val"]) / len(fit),
            seed=seed,
            device=device,
            layout=layout,
        ),
        force=True,
        progress=progress,
        events=PairedEvents(z=split.batch.z[fit], x=split.batch.x[fit]),
        labelled=LabelledPartons(learn.z, learn.passed, learn.weights),
        acceptance_settings=settings.acceptance,
    )
    print(f"    best epoch {result.best_epoch}, validation KS sum {result.best_ks:.3f}")
    if result.acceptance is not None:
        print(f"    acceptance: out-of-fold AUC {result.acceptance['auc']:.3f}")
    return result


def _simulate_and_unfold(
    files: _Files, checks: tuple[str, ...], settings: DemoSettings, *, seed: int, device: str,
    progress: bool,
) -> dict[str, RunSummary]:
    """Step 4: simulate the selected test partons (``settings.replicas`` times each) and
    unfold the test detector events; simulate every test parton event with the acceptance
    in each mode of ``checks``, whose summaries are returned."""
    simulate_files(files.model, [files.truth], files.simulated, seed=seed, device=device,
                   acceptance="off", oversample=settings.replicas, force=True, progress=progress)
    unfold_files(files.model, [files.truth], files.unfolded, seed=seed, device=device,
                 samples=settings.posterior_samples, force=True, progress=progress)
    return {
        mode: simulate_files(
            files.model, [files.partons], files.accepted(mode), seed=seed, device=device,
            acceptance=mode, oversample=settings.replicas, force=True, progress=progress,
        )
        for mode in checks
    }


def _check_acceptance(
    files: _Files, accepted: dict[str, RunSummary], settings: DemoSettings,
    table1: dict[str, float | None], *, progress: bool, layout: Layout,
) -> dict[str, dict]:
    """Step 5, the acceptance: validate each file of ``accepted`` against the test truth;
    its Table 1, the selected yield it predicts and the events it holds, by mode. The
    acceptance does not change the unfolding: the b columns are those of the main
    report's ``table1``, and its 50 samples per event are not analysed twice more."""
    acceptance = {}
    unfolding = {key: table1[key] for key in report.TABLE1_PARTON_COLUMNS}
    table1_quantities = tuple(name for name, _ in report.TABLE1.values())
    plots = (
        table1_quantities if settings.plots is True
        else tuple(q for q in settings.plots or () if q in table1_quantities)
    )
    for mode, summary in accepted.items():
        checked = validate(files.truth, [summary.output], files.out / f"report_acceptance_{mode}",
                           plots=plots, force=True, progress=progress, layout=layout)
        acceptance[mode] = {
            "table1": checked["table1"] | unfolding,
            "predicted_selected": checked["yield"]["simulation"],
            "events_written": summary.written,
        }
    return acceptance


def _facts(
    sample: Path, split: _Split, settings: DemoSettings, result: TrainResult,
    acceptance: dict[str, dict],
) -> dict:
    """The demo's facts for ``demo.json`` (all but the wall time)."""
    test = split.test
    facts = {
        "sample": str(sample),
        "sample_cutflow": split.cutflow.as_dict(),
        "split": {k: len(v) for k, v in split.parts.items()},
        "replicas": settings.replicas,
        "epochs": settings.epochs,
        "best_epoch": result.best_epoch,
        "ks_floor": ks_floor(len(test), settings.replicas * len(test)),
    }
    if acceptance:
        raw = split.labelled.take(split.test_events)
        facts["acceptance"] = {
            "validation": result.acceptance,
            "test_events": len(raw),
            "test_events_weighted": float(raw.weights.sum()),
            "observed_selected": len(test),
            **acceptance,
        }
    return facts


def _prepare_directory(output_dir: str | os.PathLike, *, force: bool) -> Path:
    report.check_report_directory(output_dir, force=force)
    out = Path(output_dir)
    out.mkdir(exist_ok=True)
    return out


def _step(number: int, what: str, where: os.PathLike | str) -> None:
    print(f"[{number}/5] {what} ({where})", flush=True)


def _summary(metrics: dict, out: Path) -> None:
    demo = metrics["demo"]
    print()
    print(
        f"Table 1 (KS distance x 10^-2), selected test partons in: test split of "
        f"{demo['split']['test']} events, {demo['replicas']} simulated per event; statistical "
        f"floor ~{100 * demo['ks_floor']:.2f}"
    )
    print(report.table1_markdown(metrics))
    valid = metrics.get("valid_fraction")
    if valid is not None:
        print(f"physically valid simulated events: {100 * valid:.2f}%")
    classifier = metrics.get("classifier")
    if classifier:
        print(
            f"classifier two-sample test: AUC {classifier['auc']:.3f} (one half of the truth "
            f"against the other: {classifier['auc_floor']:.3f}; 0.5 = indistinguishable)"
        )
    unfolding = metrics.get("unfolding")
    if unfolding:
        masses = ", ".join(f"{name} {100 * ks:.2f}" for name, ks in unfolding["mass_ks"].items())
        print(f"unfolded partons ({unfolding['samples_per_event']} per event): KS x 10^-2 of "
              f"their masses {masses}")
        parton_classifier = unfolding.get("classifier")
        if parton_classifier:
            print(f"  classifier, unfolded against true partons: AUC "
                  f"{parton_classifier['auc']:.3f} (floor {parton_classifier['auc_floor']:.3f})")
        if unfolding.get("coverage"):
            cover = "; ".join(
                f"{name} {levels['0.68']:.2f} / {levels['0.95']:.2f}"
                for name, levels in unfolding["coverage"].items()
            )
            print(f"  coverage of the 68 % / 95 % posterior intervals: {cover}")
    checked = demo.get("acceptance")
    if checked:
        observed = checked["observed_selected"]
        print()
        print(
            f"Acceptance, every test parton event in ({checked['test_events']} events standing "
            f"for {checked['test_events_weighted']:.0f} generated): {observed} selected"
        )
        for mode in ACCEPTANCE_CHECKS:
            predicted = checked[mode]["predicted_selected"]
            row = " | ".join(
                f"{100 * v:.2f}" if v is not None else "-" for v in checked[mode]["table1"].values()
            )
            print(
                f"  {mode:<6}  predicted {predicted:9.1f} ({predicted / observed - 1:+.2%}); "
                f"Table 1: {row}"
            )
    print(f"wall time {demo['wall_seconds']:.0f} s; report in {out / 'report'} "
          "(metrics.md, plots)")
