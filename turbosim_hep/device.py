"""Devices: the torch device of a ``--device`` value, one rule for every command, and the
CPU's handling of denormal floats."""

from __future__ import annotations

import contextlib

import torch

from turbosim_hep.arguments import ArgumentError


def check_device_name(device: str | torch.device) -> None:
    """Check that ``device`` names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``)
    without asking whether this machine has it (a coffea worker may).

    Raises
    ------
    ArgumentError
        Naming the value and the expected ones.
    """
    if isinstance(device, torch.device) or device == "auto":
        return
    problem = f"must be auto, cpu, cuda or cuda:N, got {device!r}"
    if not isinstance(device, str):
        raise ArgumentError("device", problem)
    try:
        torch.device(device)
    except RuntimeError:
        raise ArgumentError("device", problem) from None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device of a ``--device`` value: ``auto`` picks CUDA when it is available.

    Raises
    ------
    ArgumentError
        If the value is not a device name (`check_device_name`), or names CUDA on a
        machine without it.
    """
    check_device_name(device)
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("device", f"{device}: CUDA is not available on this machine")
    return resolved


@contextlib.contextmanager
def flush_denormals():
    """Treat denormal floats as zero on CPU while inside, back to torch's default after.

    Denormals (below 1e-38 in float32) slow matrix products down several times; their
    values do not matter here.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
