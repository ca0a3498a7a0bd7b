"""Trained models ready for fast inference: device choice, fused MLPs, a per-process cache.

Inference runs the same `TurboSim.simulate` / `TurboSim.unfold` as everywhere else; only
the fully connected stacks are swapped for `FusedMLP`, which computes the same function
with pre-transposed weights, ``torch.addmm`` and in-place activations, a block of rows
at a time so that the hidden activations stay in the CPU cache (no compilation step,
nothing to warm up; docs/simulate.md gives the measured gain).
`cached_model` keeps one prepared model per (file, content, device) in each process, so a
worker of a process pool or of a Dask cluster loads a model once, however many tasks
it runs; `cached_acceptance` does the same for the acceptance stored with it.

`plan_replicas` decides, for a chunk of parton-level events, which events each replica
simulates (the acceptance applied by sampling or by weight, `ACCEPTANCE_MODES`) and
draws their noise: the one policy of ``turbosim-hep simulate`` and of the coffea plugin.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from turbosim_hep import layout
from turbosim_hep.device import flush_denormals, resolve_device
from turbosim_hep.errors import InputError, TurbosimError
from turbosim_hep.model.acceptance import AcceptanceModel
from turbosim_hep.model.checkpoint import load_acceptance, load_model
from turbosim_hep.model.turbosim import TurboSim
from turbosim_hep.random import event_normal, event_uniform

#: Events per block of a fused MLP on a CPU (see `FusedMLP`); ``benchmarks/bench_simulate.py``
#: measures the choice.
CPU_BLOCK_ROWS = 4096
#: Events per forward pass of `run_model`: cache-sized on CPU, large on GPUs.
BATCH_EVENTS = {"cpu": 16_384, "cuda": 262_144}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FusedMLP(nn.Module):
    """Inference-only equivalent of an ``nn.Sequential`` of ``Linear`` layers and activations.

    Parameters
    ----------
    sequential : torch.nn.Sequential
        ``Linear`` layers, each optionally followed by ReLU, LeakyReLU, SiLU or GELU.
    block_rows : int, optional
        Rows pushed through the whole stack at a time (None: all at once). On a CPU a
        block of 4,096 events keeps the widest hidden layer (256 floats per event) in
        the cache, where a whole chunk would spill to memory. A GPU wants the whole
        chunk at once.
    """

    def __init__(self, sequential: nn.Sequential, block_rows: int | None = None):
        super().__init__()
        self.block_rows = block_rows
        self._steps: list[tuple[str, object]] = []
        for index, layer in enumerate(sequential):
            if isinstance(layer, nn.Linear):
                weight = layer.weight.detach().t().contiguous()
                bias = (
                    layer.bias.detach().clone()
                    if layer.bias is not None
                    else torch.zeros(layer.out_features, dtype=weight.dtype, device=weight.device)
                )
                self.register_buffer(f"weight{index}", weight)
                self.register_buffer(f"bias{index}", bias)
                self._steps.append(("linear", index))
            else:
                self._steps.append(("activation", _inplace(layer)))

    @staticmethod
    def supports(module: nn.Module) -> bool:
        """Whether ``module`` is a Sequential `FusedMLP` can replace."""
        return isinstance(module, nn.Sequential) and len(module) > 0 and all(
            isinstance(layer, nn.Linear) or _inplace(layer) is not None for layer in module
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.block_rows is None or inputs.shape[0] <= self.block_rows:
            return self._stack(inputs)
        blocks = torch.split(inputs, self.block_rows)
        return torch.cat([self._stack(block) for block in blocks])

    def _stack(self, h: torch.Tensor) -> torch.Tensor:
        for kind, step in self._steps:
            if kind == "linear":
                h = torch.addmm(getattr(self, f"bias{step}"), h, getattr(self, f"weight{step}"))
            else:
                h = step(h)
        return h


def _inplace(layer: nn.Module):
    """An activation as a function that may overwrite its input, or None if unknown."""
    if isinstance(layer, nn.ReLU):
        return torch.relu_
    if isinstance(layer, nn.LeakyReLU):
        slope = layer.negative_slope
        return lambda h: torch.nn.functional.leaky_relu_(h, slope)
    if isinstance(layer, nn.SiLU):
        return lambda h: torch.nn.functional.silu(h, inplace=True)
    if isinstance(layer, nn.GELU):
        approximate = layer.approximate
        return lambda h: torch.nn.functional.gelu(h, approximate=approximate)
    return None


def fuse_for_inference(model: TurboSim) -> TurboSim:
    """A copy of ``model`` whose MLP stacks are `FusedMLP`s (same outputs, faster).

    The copy is in eval mode and must only be used under ``torch.inference_mode()``
    (its activations work in place). On a CPU the stacks run in cache-sized blocks of
    `CPU_BLOCK_ROWS` events.
    """
    fused = copy.deepcopy(model).eval()
    on_cpu = next(fused.parameters()).device.type == "cpu"
    block_rows = CPU_BLOCK_ROWS if on_cpu else None
    for module in list(fused.modules()):
        for name, child in list(module.named_children()):
            if FusedMLP.supports(child):
                setattr(module, name, FusedMLP(child, block_rows=block_rows))
    return fused


@functools.lru_cache(maxsize=4)
def _cached(path: str, sha256: str, device: str) -> TurboSim:
    return fuse_for_inference(load_model(path, device=device))


def cached_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> TurboSim:
    """The model of a checkpoint, fused for inference, loaded once per process.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint written by ``turbosim-hep train``.
    device : str or torch.device
        Where the model runs (``auto`` is resolved with `resolve_device`).

    Raises
    ------
    InputError
        If the file is missing, corrupt, or not a turbosim-hep model.
    """
    return _cached(*_cache_key(path, device))


def _cache_key(path: str | os.PathLike, device: str | torch.device) -> tuple[str, str, str]:
    """(absolute path, content hash, resolved device) of a model file, checked to exist.

    The hash keys the per-process caches, so a file rewritten in place (a new training
    run) is loaded again.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise InputError(path, "no such file" if not os.path.exists(path) else "not a model file")
    return path, file_sha256(path), str(resolve_device(device))


def run_model(
    function: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    inputs: np.ndarray,
    noise: np.ndarray | None,
    device: torch.device,
    batch_size: int,
    width: int = layout.N_FEATURES,
) -> np.ndarray:
    """Apply ``model.simulate`` or ``model.unfold`` to host arrays in batches.

    On CUDA the host arrays are staged in pinned memory and every copy is asynchronous;
    the only synchronisation is the one before the results are handed back for writing.

    Parameters
    ----------
    function : callable
        ``(inputs, noise) -> outputs`` on tensors of the model's device.
    inputs : numpy.ndarray
        float32 (n, 24).
    noise : numpy.ndarray or None
        float32 (n, noise_dim) standard normals.
    device : torch.device
        The model's device.
    batch_size : int
        Events per forward pass.
    width : int
        Values per event of the function's output.

    Returns
    -------
    numpy.ndarray
        float32 (n, width) outputs.
    """
    n = len(inputs)
    cuda = device.type == "cuda"
    host_inputs = torch.from_numpy(inputs)
    host_noise = torch.from_numpy(noise) if noise is not None else None
    host_outputs = torch.empty((n, width), dtype=torch.float32, pin_memory=cuda)
    if cuda:
        host_inputs = host_inputs.pin_memory()
        host_noise = host_noise.pin_memory() if host_noise is not None else None
    with torch.inference_mode(), flush_denormals():
        for lo in range(0, n, batch_size):
            hi = min(lo + batch_size, n)
            batch = host_inputs[lo:hi].to(device, non_blocking=True)
            eps = None if host_noise is None else host_noise[lo:hi].to(device, non_blocking=True)
            host_outputs[lo:hi].copy_(function(batch, eps), non_blocking=True)
    if cuda:
        torch.cuda.current_stream(device).synchronize()  # writing needs the values
    return host_outputs.numpy()


# --- the acceptance, replicas and noise of simulated events ----------------------------

#: How ``simulate`` applies the acceptance epsilon(z) of a model: ``sample`` keeps an
#: event with probability epsilon, ``weight`` keeps every event with its weight times
#: epsilon, ``off`` keeps every event as if it were selected.
ACCEPTANCE_MODES: tuple[str, ...] = ("sample", "weight", "off")


def resolve_acceptance(
    requested: str | None, acceptance: AcceptanceModel | None, model: str
) -> str:
    """The acceptance mode of a simulation (`turbosim_hep.inference.ACCEPTANCE_MODES`).

    None (the default) means ``sample`` for a model with an acceptance: the output then
    holds the selected yield of a raw parton sample, the right answer for a user who
    counts events. A model without one (trained on selected events only) simulates every
    event as if it were selected, with a warning.

    Raises
    ------
    TurbosimError
        For an unknown mode, or ``sample``/``weight`` asked of a model without acceptance.
    """
    if requested is None:
        if acceptance is not None:
            return "sample"
        warnings.warn(
            f"{os.path.basename(model)} has no acceptance (its training files held no "
            "rejected events, or too few to learn from): every parton event is simulated as "
            "if it passed the selection",
            stacklevel=3,
        )
        return "off"
    if requested not in ACCEPTANCE_MODES:
        raise TurbosimError(
            f"--acceptance must be one of {', '.join(ACCEPTANCE_MODES)}, not {requested!r}"
        )
    if requested != "off" and acceptance is None:
        raise InputError(
            model,
            f"has no acceptance (its training files held no rejected events, or too few): "
            f"--acceptance {requested} needs one; retrain on files that keep them, or use "
            f"--acceptance off",
        )
    return requested


@functools.lru_cache(maxsize=4)
def _cached_acceptance(path: str, sha256: str, device: str) -> AcceptanceModel | None:
    return load_acceptance(path, device=device)


def cached_acceptance(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> AcceptanceModel | None:
    """The acceptance stored with a model (None if it has none), loaded once per process.

    Raises
    ------
    InputError
        If the file is missing, corrupt, or not a turbosim-hep model.
    """
    return _cached_acceptance(*_cache_key(path, device))


def applied_acceptance(
    requested: str | None, model: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[str, AcceptanceModel | None]:
    """The acceptance mode of a simulation (`resolve_acceptance`) and the acceptance it
    applies: the model's, loaded once per process (`cached_acceptance`), or None for
    ``off``, which does not load it at all.

    Raises
    ------
    TurbosimError
        As `resolve_acceptance`, or if the model's acceptance cannot be loaded.
    """
    stored = None if requested == "off" else cached_acceptance(model, device)
    mode = resolve_acceptance(requested, stored, str(model))
    return mode, (None if mode == "off" else stored)


def acceptance_probabilities(
    acceptance: AcceptanceModel, z: np.ndarray, device: torch.device, batch_size: int
) -> np.ndarray:
    """epsilon(z) of float32 (n, 24) parton-level events, as float64 (n,)."""
    with torch.inference_mode():
        values = run_model(lambda batch, _: acceptance(batch)[:, None], z, None, device,
                           batch_size, width=1)
    return values[:, 0].astype(np.float64)


@dataclass
class Replica:
    """The events of one copy of a chunk that go through the model.

    Attributes
    ----------
    replica : int
        Which copy (0 to K - 1 of ``simulate --oversample K`` or ``unfold --samples K``).
    rows : numpy.ndarray
        Positions of its events in the chunk (those the acceptance kept).
    noise : numpy.ndarray or None
        float32 (len(rows), noise_dim) noise of the decoder (or of the encoder).
    weight : numpy.ndarray
        float32 (len(rows),) event weights: the input's, times epsilon with the
        ``weight`` mode, over the number of replicas.
    outputs : numpy.ndarray or None
        float32 (len(rows), 24) model outputs, once inferred.
    """

    replica: int
    rows: np.ndarray
    noise: np.ndarray | None
    weight: np.ndarray
    outputs: np.ndarray | None = None


def plan_replicas(
    entry: np.ndarray,
    weight: np.ndarray,
    epsilon: np.ndarray | None,
    *,
    seed: int,
    stream: int,
    noise_dim: int,
    mode: str = "sample",
    oversample: int = 1,
    replicas: range | None = None,
) -> list[Replica]:
    """Which events of a chunk each replica simulates, with their noise and weights.

    Every random number is keyed by (seed, stream, entry, replica)
    (`turbosim_hep.random`): the decisions and the noise of an event do not depend on
    chunking, jobs or devices. Replica 0 of ``oversample=1`` with the ``off`` mode draws
    the same noise as a run without replicas.

    Parameters
    ----------
    entry : numpy.ndarray
        Entry numbers of the chunk's events in their input.
    weight : numpy.ndarray
        Their input weights.
    epsilon : numpy.ndarray or None
        Their acceptance (None: no acceptance, as ``off``).
    seed, stream : int
        Seed of the run and stream of the input file.
    noise_dim : int
        Noise values of the decoder per event (0: deterministic).
    mode : {"sample", "weight", "off"}
        How the acceptance applies (`ACCEPTANCE_MODES`).
    oversample : int
        Copies of each event, each with its own noise and acceptance decision.
    replicas : range, optional
        Which of the ``oversample`` copies to plan (default all): a run plans them in
        groups so that its memory does not grow with ``oversample``.

    Returns
    -------
    list of Replica
    """
    planned = []
    for replica in range(oversample) if replicas is None else replicas:
        rows = np.arange(len(entry))
        if epsilon is not None and mode == "sample":
            rows = np.flatnonzero(event_uniform(seed, stream, entry, replica=replica) < epsilon)
        weights = weight[rows].astype(np.float32) / np.float32(oversample)
        if epsilon is not None and mode == "weight":
            weights = (weights * epsilon[rows]).astype(np.float32)
        noise = None
        if noise_dim:
            noise = event_normal(seed, stream, entry[rows], noise_dim, replica=replica)
        planned.append(Replica(replica, rows, noise, weights))
    return planned
