"""``turbosim-hep train``: train a Turbo-Sim model on paired parton- and detector-level events."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from turbosim_hep.cli._common import add_layout_flag, add_progress_flag
from turbosim_hep.cli._types import (
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed_int,
)

#: The command's line in ``turbosim-hep --help``.
HELP = "train a Turbo-Sim model (encoder X -> Z, decoder Z -> X)"


def _assignment(kind: str, value_type: Callable[[str], Any] = str):
    """The ``type`` of a NAME=VALUE flag; ``value_type`` converts and checks the value."""

    def parse(text: str) -> tuple[str, Any]:
        name, sep, value = text.partition("=")
        if not sep or not name or not value:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        return name.strip(), value_type(value.strip())

    return parse


#: Every flag that sets a model, loss or training setting, by destination.
SETTING_FLAGS: dict[str, str] = {
    "preset": "--preset", "config": "--config", "weight": "--weight",
    "divergence": "--divergence", "score": "--score", "mass_weight": "--mass-weight",
    "batch_size": "--batch-size",
    "lr": "--lr", "lr_final_fraction": "--lr-final-fraction", "ema_decay": "--ema-decay",
    "select_on_physics": "--select-on-physics", "gp_interval": "--gp-interval", "amp": "--amp",
    "seed": "--seed", "epochs": "--epochs", "patience": "--patience", "device": "--device",
    "graphs": "--no-graphs", "threads": "--threads", "channel": "--channel",
    "acceptance": "--no-acceptance", "layout": "--layout",
}


def __getattr__(name: str) -> Any:
    # RESUME_FLAGS, the flags a resumed run takes (those of the settings it may change),
    # comes from the training settings, which import torch: computed on first use, so
    # that importing this module for ``turbosim-hep --help`` stays cheap
    if name == "RESUME_FLAGS":
        return _resume_flags()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _resume_flags() -> dict[str, str]:
    """The flags a resumed run takes: those of the settings it may change."""
    from turbosim_hep.training.config import RESUMABLE_SETTINGS

    return {dest: SETTING_FLAGS[dest] for dest in RESUMABLE_SETTINGS}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    # the flags' choices and help list the loss terms and presets, which import torch:
    # this parser is built only when the command is train (turbosim_hep.cli.build_parser)
    from turbosim_hep.model.losses import (
        DISTRIBUTION_TERMS,
        DIVERGENCES,
        SCORES,
        SUPERVISED_TERMS,
        TERMS,
    )
    from turbosim_hep.model.presets import DEFAULT_PRESET, preset_names

    parser = subparsers.add_parser(
        "train",
        help=HELP,
        description="Train a Turbo-Sim model on the selected, paired events of DATA. "
        "A fixed fraction of the events is set aside for validation; after every epoch the "
        "model is validated (sum of per-feature KS distances), the best one is kept, and "
        "MODEL.pt is rewritten so that --resume can continue a killed run. A JSON-lines "
        "log is written beside it (MODEL.log.jsonl). Settings: defaults < --config file < "
        "flags.",
    )
    parser.add_argument(
        "data",
        nargs="+",
        metavar="DATA",
        help="ROOT files (Delphes or turbosim-hep) or HDF5 exports",
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="MODEL.pt", help="model file to write"
    )
    parser.add_argument(
        "--preset",
        choices=preset_names(),
        help=f"named set of loss weights (default: {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="YAML file with preset/model/loss/train sections"
    )
    parser.add_argument(
        "--weight",
        action="append",
        type=_assignment("TERM=VALUE", non_negative_float),
        default=[],
        metavar="TERM=VALUE",
        help=f"override one loss weight; terms: {', '.join(TERMS)} (repeatable)",
    )
    parser.add_argument(
        "--divergence",
        action="append",
        type=_assignment("TERM=KIND"),
        default=[],
        metavar="TERM=KIND",
        help=f"estimator of a D term ({', '.join(DISTRIBUTION_TERMS)}): {', '.join(DIVERGENCES)}",
    )
    parser.add_argument(
        "--score",
        action="append",
        type=_assignment("TERM=KIND"),
        default=[],
        metavar="TERM=KIND",
        help=f"loss of a d term ({', '.join(SUPERVISED_TERMS)}): {', '.join(SCORES)} "
        "(energy: the energy score of two draws, which trains a conditional distribution)",
    )
    parser.add_argument(
        "--mass-weight",
        type=non_negative_float,
        metavar="W",
        help="weight of the mass term on x~ (jet-pair, triplet and top masses; default 0: off)",
    )
    parser.add_argument("--epochs", type=positive_int, metavar="N", help="total number of epochs")
    parser.add_argument(
        "--batch-size", type=positive_int, metavar="B", help="events per step (default 100)"
    )
    parser.add_argument(
        "--lr", type=positive_float, help="learning rate of the networks (default 1e-4)"
    )
    parser.add_argument(
        "--lr-final-fraction",
        type=fraction(zero=False, one=True),
        metavar="F",
        help="cosine decay of the learning rates to F times their value at the last epoch "
        "(default 1: constant)",
    )
    parser.add_argument(
        "--patience", type=positive_int, metavar="N", help="stop after N epochs without improvement"
    )
    parser.add_argument(
        "--ema-decay",
        type=fraction(zero=False, one=False),
        metavar="D",
        help="keep a moving average of the weights with this decay, e.g. 0.999 (default off)",
    )
    parser.add_argument(
        "--select-on-physics",
        action="store_true",
        default=None,
        help="pick the best epoch also by the KS of the reconstructed tt-bar masses",
    )
    parser.add_argument(
        "--gp-interval",
        type=positive_int,
        metavar="K",
        help="gradient penalty every K-th critic update, K times as strong (default 1)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)"
    )
    parser.add_argument(
        "--amp", action="store_true", default=None, help="mixed precision (bfloat16) on CUDA"
    )
    parser.add_argument(
        "--no-graphs",
        dest="graphs",
        action="store_false",
        default=None,
        help="on CUDA, run each step eagerly instead of replaying it as a captured CUDA graph "
        "(ignored on the CPU)",
    )
    parser.add_argument(
        "--threads", type=non_negative_int, metavar="N", help="CPU threads for torch (default 1)"
    )
    parser.add_argument("--seed", type=seed_int, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--channel",
        metavar="CHANNEL",
        help="train on the layout's reference channel (the default; ejets: electron), its "
        "charge conjugate (ejets: positron, CP-mirrored into the same slots) or both",
    )
    add_layout_flag(
        parser, default=None, default_text="the config file's, else ejets, the paper's"
    )
    parser.add_argument(
        "--no-acceptance",
        dest="acceptance",
        action="store_false",
        default=None,
        help="do not learn the detector acceptance (learnt by default when DATA holds "
        "events the selection rejects, and stored with the model for simulate)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in MODEL.pt with its stored settings "
        f"(only {', '.join(_resume_flags().values())} may be given)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing MODEL.pt")
    add_progress_flag(parser)
    return parser


def _new_run(args: argparse.Namespace):
    """Train a new model with the settings of the flags and the config file."""
    from turbosim_hep.training import build_configs, read_config_file, train

    weights = dict(args.weight)
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_final_fraction": args.lr_final_fraction,
        "patience": args.patience,
        "gp_interval": args.gp_interval,
        "ema_decay": args.ema_decay,
        "select_on_physics": args.select_on_physics,
        "device": args.device,
        "amp": args.amp,
        "graphs": args.graphs,
        "threads": args.threads,
        "seed": args.seed,
        "channel": args.channel,
        "acceptance": args.acceptance,
        "layout": args.layout,
    }
    file_config = read_config_file(args.config) if args.config else None
    model_config, loss_config, train_config = build_configs(
        file_config,
        preset=args.preset,
        weights=weights,
        divergence=dict(args.divergence),
        score=dict(args.score),
        loss_overrides={"mass_weight": args.mass_weight} if args.mass_weight is not None else None,
        train_overrides={k: v for k, v in overrides.items() if v is not None},
        source=args.config or "command line",
    )
    return train(
        args.data,
        args.output,
        model_config=model_config,
        loss_config=loss_config,
        train_config=train_config,
        force=args.force,
        progress=args.progress,
    )


def _resumed_run(args: argparse.Namespace):
    """Continue the run saved in the output file; only `RESUME_FLAGS` may be given."""
    from turbosim_hep.errors import TurbosimError
    from turbosim_hep.training import train

    given = {
        dest: flag for dest, flag in SETTING_FLAGS.items() if getattr(args, dest) not in (None, [])
    }
    resume_flags = _resume_flags()
    fixed = [flag for dest, flag in given.items() if dest not in resume_flags]
    if fixed:
        raise TurbosimError(
            f"{args.output}: --resume continues the run with its stored settings; "
            f"{', '.join(fixed)} cannot change (only {', '.join(resume_flags.values())})"
        )
    return train(
        args.data,
        args.output,
        resume=True,
        resume_changes={dest: getattr(args, dest) for dest in given},
        progress=args.progress,
    )


def run(args: argparse.Namespace) -> int:
    from turbosim_hep.training import log_path_for

    result = _resumed_run(args) if args.resume else _new_run(args)
    last = result.history[-1] if result.history else {}
    print(
        f"{args.output}: best epoch {result.best_epoch} of {len(result.history)}, "
        f"validation KS sum {result.best_ks:.4f} (X {last.get('ks_x', float('nan')):.4f}, "
        f"Z {last.get('ks_z', float('nan')):.4f} at the last epoch), "
        f"valid events {last.get('valid_fraction', float('nan')):.4f}; "
        f"log {log_path_for(args.output)}"
    )
    print(_describe_acceptance(result))
    return 0


def _describe_acceptance(result) -> str:
    """One line on the acceptance stored with the model (``result``: a `TrainResult`)."""
    record = result.acceptance
    if record is None and result.config is not None and not result.config.acceptance:
        return (
            "acceptance: none (the run was asked not to learn one, --no-acceptance); "
            "simulate will treat every parton event as selected"
        )
    if record is None:
        return (
            "acceptance: none (the data hold no events the selection rejects, or too few "
            "to learn from); simulate will treat every parton event as selected"
        )
    return (
        f"acceptance: out-of-fold AUC {record['auc']:.4f}, BCE {record['bce']:.4f}, "
        f"calibration error {record['calibration_error']:.4f}, predicted "
        f"{record['predicted_selected']:.1f} selected events for {record['observed_selected']:.0f}"
    )
