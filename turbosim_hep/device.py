"""Devices: the torch device of a ``--device`` value, one rule for every command, and the
CPU's handling of denormal floats."""

from __future__ import annotations

import contextlib

import torch

from turbosim_hep.errors import InputError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device of a ``--device`` value: ``auto`` picks CUDA when it is available.

    Raises
    ------
    InputError
        If CUDA is asked for and not available, or the name is not a device.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise InputError(str(device), "not a torch device (use auto, cpu or cuda)") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(str(device), "CUDA is not available on this machine")
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
