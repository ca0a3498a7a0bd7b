"""Paired training events: parton-level Z and detector-level X of the same events, read
from files, split into training and validation parts, and staged on the device."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from turbosim_hep.errors import InputError
from turbosim_hep.layout import DEFAULT_LAYOUT, Layout

#: Seed of the train/validation split: fixed, so the split does not move with ``seed``.
SPLIT_SEED = 20211206


@dataclass
class PairedEvents:
    """Paired parton-level (``z``) and detector-level (``x``) events, float32 (n, 24) each."""

    z: np.ndarray
    x: np.ndarray

    def __len__(self) -> int:
        return len(self.z)

    def split(self, val_fraction: float) -> tuple[PairedEvents, PairedEvents]:
        """Training and validation parts, by a fixed permutation (independent of any seed)."""
        order = np.random.default_rng(SPLIT_SEED).permutation(len(self))
        n_val = max(1, int(round(val_fraction * len(self))))
        val, train = order[:n_val], order[n_val:]
        return PairedEvents(self.z[train], self.x[train]), PairedEvents(self.z[val], self.x[val])

    def fingerprint(self) -> list[float]:
        """A few numbers identifying the data set (to refuse resuming on other data)."""
        sums = [float(a.sum(dtype=np.float64)) for a in (self.z, self.x)]
        return [float(len(self)), *sums]


def read_pairs(
    paths: Sequence[str | os.PathLike],
    channel: str | None = None,
    layout: Layout | str = DEFAULT_LAYOUT,
) -> PairedEvents:
    """Selected, paired events of ROOT files (Delphes or turbosim-hep) or HDF5 exports.

    Parameters
    ----------
    paths : sequence of path
        The files.
    channel : str, optional
        Which channel's events (default the layout's reference one, or ``both``);
        charge-conjugate ones come CP-mirrored into the reference channel's slots
        (`turbosim_hep.layout.CHANNELS`), so both train one model.
    layout : turbosim_hep.layout.Layout or str
        The final state (default ``ejets``).

    Raises
    ------
    InputError
        If a file cannot be read, lacks the detector objects or the partons, or holds no
        selected event.
    """
    from turbosim_hep.io import open_events

    zs, xs = [], []
    for path in paths:
        path = os.fspath(path)
        batch, _ = open_events(path, layout).read(detector=True, partons=True, channel=channel)
        if len(batch) == 0:
            raise InputError(path, "no event passes the selection with a complete parton record")
        bad = ~(np.isfinite(batch.z).all(1) & np.isfinite(batch.x).all(1))
        if bad.any():
            raise InputError(path, f"{int(bad.sum())} events hold non-finite values")
        zs.append(batch.z)
        xs.append(batch.x)
    if not zs:
        raise ValueError("no input file given")
    return PairedEvents(
        np.concatenate(zs).astype(np.float32), np.concatenate(xs).astype(np.float32)
    )


@dataclass
class LabelledPartons:
    """Parton-level events with their selection outcome: the examples of the acceptance.

    Attributes
    ----------
    z : numpy.ndarray
        float32 (n, 24) partons of every event with a complete parton record.
    passed : numpy.ndarray
        bool (n,): whether the event passed the reference selection.
    weight : numpy.ndarray
        float32 (n,): the events each one stands for (``genWeight`` of a thinned sample).
    """

    z: np.ndarray
    passed: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.z)

    def subset(self, index: np.ndarray) -> LabelledPartons:
        """The events at ``index``."""
        return LabelledPartons(self.z[index], self.passed[index], self.weight[index])


def read_labelled(
    paths: Sequence[str | os.PathLike],
    channel: str | None = None,
    layout: Layout | str = DEFAULT_LAYOUT,
) -> LabelledPartons:
    """Every event with the six partons of some files, labelled by the selection.

    The examples of the acceptance (`turbosim_hep.training.acceptance`): files that keep
    the events the selection rejects (Delphes output, ``turbosim-hep generate`` files)
    give both outcomes; files of selected events only (HDF5 exports, ``--selected-only``)
    give passing events alone.

    Parameters
    ----------
    paths : sequence of path
        The files (as for `read_pairs`).
    channel : str, optional
        Which channel's events.
    layout : turbosim_hep.layout.Layout or str
        The final state whose selection labels the events (default ``ejets``).

    Raises
    ------
    InputError
        If a file cannot be read or lacks the detector objects or the partons.
    """
    from turbosim_hep.io import EventBatch, open_events

    batches = [
        open_events(path, layout).read(labels=True, channel=channel)[0]
        for path in map(os.fspath, paths)
    ]
    batch = EventBatch.concatenate(batches)
    finite = np.isfinite(batch.z).all(axis=1)
    return LabelledPartons(
        batch.z[finite].astype(np.float32), batch.passed[finite], batch.weights[finite]
    )


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` as a float32 tensor on ``device`` (through pinned memory to a GPU)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)
