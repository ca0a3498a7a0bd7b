"""One-file checkpoints: weights, configuration, standardisation, the layout and its version,
history.

A checkpoint is a dictionary of tensors and plain Python values written with
`torch.save` and read with ``torch.load(weights_only=True)``: loading never unpickles
arbitrary objects. The standardisation and the parton masses are buffers of the model,
so they are part of its state dict. A training run also stores its ``training_state``
(last weights, optimisers, critics, random-number generators) so ``--resume`` can
continue it, and, when its files held rejected events, the detector acceptance
(`turbosim_hep.model.acceptance`) with its settings and training history.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any

import torch

from turbosim_hep import __version__
from turbosim_hep.device import resolve_device
from turbosim_hep.errors import InputError, read_head
from turbosim_hep.layout import BUILTIN_LAYOUTS, DEFAULT_LAYOUT, LAYOUT_VERSION, Layout
from turbosim_hep.model.acceptance import N_FEATURES, AcceptanceModel, acceptance_from_state
from turbosim_hep.model.turbosim import ModelConfig, TurboSim
from turbosim_hep.outputs import AtomicOutput

#: Identifies a turbosim-hep model file.
FORMAT = "turbosim-hep-model"
#: Bumped when the checkpoint structure changes.
FORMAT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike,
    model: TurboSim,
    *,
    loss_config: Mapping[str, Any] | None = None,
    train_config: Mapping[str, Any] | None = None,
    history: list[Mapping[str, Any]] | None = None,
    training_state: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    model_state: Mapping[str, torch.Tensor] | None = None,
    acceptance: Mapping[str, Any] | None = None,
    layout: Layout = DEFAULT_LAYOUT,
    force: bool = True,
) -> None:
    """Write a model (and optionally its training record) to one file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; written to a temporary file beside it and renamed, so a killed
        process never leaves a half-written checkpoint.
    model : TurboSim
        The model whose weights, configuration and standardisation are stored.
    loss_config, train_config : mapping, optional
        Plain-Python configuration of the objective and of the training run.
    history : list of mapping, optional
        The per-epoch log.
    training_state : mapping, optional
        What `--resume` needs (tensors and plain values only).
    metadata : mapping, optional
        Further plain-Python facts (data set, seed, ...).
    model_state : mapping, optional
        Weights to store instead of the model's current ones (for example the best
        epoch's, while ``model`` holds the last).
    acceptance : mapping, optional
        The acceptance classifier: ``config`` (`AcceptanceConfig` as a dict), ``state``
        (its state dict) and any plain-Python record (settings, training history).
    layout : turbosim_hep.layout.Layout
        The layout of the events the model was trained on (stored as its plain data).
    force : bool
        Replace an existing file (False: refuse one, even if it appears while writing).

    Raises
    ------
    OutputError
        If ``path`` cannot be written (`turbosim_hep.errors.WriteError` on a full disk)
        or exists and ``force`` is False.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "layout_version": LAYOUT_VERSION,
        "layout": layout.to_dict(),
        "turbosim_hep_version": __version__,
        "model_config": model.config.to_dict(),
        "model_state": {
            k: v.detach().cpu() for k, v in (model_state or model.state_dict()).items()
        },
        "loss_config": dict(loss_config or {}),
        "train_config": dict(train_config or {}),
        "history": [dict(h) for h in history or []],
        "training_state": dict(training_state) if training_state is not None else None,
        "metadata": dict(metadata or {}),
        "acceptance": _plain_acceptance(acceptance),
    }
    # Serialised in memory and written with plain system calls: torch.save writing a
    # file reports a full disk as an obscure RuntimeError, this as a WriteError.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with AtomicOutput(path, force=force) as output:
        output.write_bytes(buffer.getbuffer())


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint file.

    Returns
    -------
    dict
        The stored dictionary (tensors mapped to ``device``).

    Raises
    ------
    InputError
        If the file is missing, unreadable, not a turbosim-hep model, or made for
        another event layout.
    ArgumentError
        If ``device`` is not a device, or not one of this machine
        (`turbosim_hep.device.resolve_device`).
    """
    path = os.fspath(path)
    device = resolve_device(device)  # an unknown or absent device is not a corrupt file
    if read_head(path, "model file") != b"PK\x03\x04":  # torch.save writes a zip archive
        raise InputError(path, "not a turbosim-hep model file (not a torch checkpoint)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        problem = f"not a readable turbosim-hep model: corrupt or truncated ({_reason(err)})"
        raise InputError(path, problem) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "not a turbosim-hep model file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise InputError(
            path,
            f"model file format {payload.get('format_version')} is not the supported "
            f"format {FORMAT_VERSION}",
        )
    if payload.get("layout_version") != LAYOUT_VERSION:
        raise InputError(
            path,
            f"model was trained for event layout version {payload.get('layout_version')}, "
            f"this turbosim-hep uses version {LAYOUT_VERSION}; retrain it",
        )
    checkpoint_layout(payload, path)  # a bad stored layout fails here, in one line
    return payload


def checkpoint_layout(payload: Mapping[str, Any], path: str | os.PathLike) -> Layout:
    """The layout of the events a loaded checkpoint was trained on.

    Models written before layouts were values store none: theirs is ``ejets``.

    Raises
    ------
    InputError
        Naming the file, if the stored layout is not a valid one.
    """
    stored = payload.get("layout")
    if stored is None:
        return DEFAULT_LAYOUT
    try:
        layout = Layout.from_dict(stored)
    except ValueError as err:
        raise InputError(path, f"model file holds a bad layout ({err})") from None
    builtin = BUILTIN_LAYOUTS.get(layout.name)
    return builtin if builtin == layout else layout


def load_model_layout(path: str | os.PathLike) -> Layout:
    """The layout of a model file's events (see `checkpoint_layout`).

    Raises
    ------
    InputError
        Naming the file, if it is missing, corrupt, or not a model.
    """
    return checkpoint_layout(load_checkpoint(path), path)


def model_from_checkpoint(
    payload: Mapping[str, Any], path: str | os.PathLike, state_key: str = "model_state"
) -> TurboSim:
    """Build the `TurboSim` stored in a loaded checkpoint (``state_key``: which weights)."""
    try:
        model = TurboSim(ModelConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload[state_key])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        problem = f"model file does not match this turbosim-hep ({_reason(err)})"
        raise InputError(path, problem) from err
    return model


def acceptance_from_checkpoint(
    payload: Mapping[str, Any], path: str | os.PathLike
) -> AcceptanceModel | None:
    """The acceptance classifier stored in a loaded checkpoint, or None if it has none."""
    record = payload.get("acceptance")
    if not record:
        return None
    state = record.get("state", {})
    remedy = "retrain the model, or simulate with --acceptance off"
    stored = state.get("feature_mean")
    if stored is not None and stored.shape != (N_FEATURES,):
        raise InputError(
            path,
            f"its acceptance was trained on {stored.shape[0]} features of another "
            f"turbosim-hep version, this one computes {N_FEATURES}; {remedy}",
        )
    # the buffers do not depend on the architecture: one absent is an older version's
    missing = sorted(name for name, _ in AcceptanceModel().named_buffers() if name not in state)
    if stored is not None and missing:
        raise InputError(
            path,
            f"its acceptance is from another turbosim-hep version (it lacks "
            f"{', '.join(missing)}); {remedy}",
        )
    if stored is not None and not any(name.startswith("members.") for name in state):
        raise InputError(
            path,
            f"its acceptance is a single network of an older turbosim-hep version, not the "
            f"cross-fitted ensemble this one uses; {remedy}",
        )
    try:
        return acceptance_from_state(record["config"], record["state"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        problem = f"acceptance does not match this turbosim-hep ({_reason(err)})"
        raise InputError(path, problem) from err


def load_acceptance(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> AcceptanceModel | None:
    """The acceptance classifier of a model file, in eval mode on ``device``.

    Returns None for a model trained on files without rejected events, or too few (it
    has none).

    Raises
    ------
    InputError
        Naming the file, if it is missing, corrupt, or from another layout version.
    """
    acceptance = acceptance_from_checkpoint(load_checkpoint(path, device), path)
    return None if acceptance is None else acceptance.to(device).eval()


def _plain_acceptance(acceptance: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The acceptance record with its tensors on the CPU (what `torch.save` stores)."""
    if acceptance is None:
        return None
    record = dict(acceptance)
    record["state"] = {k: v.detach().cpu() for k, v in record["state"].items()}
    return record


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> TurboSim:
    """The trained model of a checkpoint, in eval mode on ``device``.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by `save_checkpoint` (``turbosim-hep train -o``).
    device : str or torch.device
        Where to put the model.

    Raises
    ------
    InputError
        Naming the file, if it is missing, corrupt, or from another layout version.
    """
    payload = load_checkpoint(path, device)
    model = model_from_checkpoint(payload, path)
    return model.to(device).eval()


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) < 160 else text[:157] + "..."
