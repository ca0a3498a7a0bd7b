"""The infer stage's transfers on CUDA: pinned buffers, a copy stream beside the compute stream.

`CudaStaging` runs a model function over the replicas of a chunk in batches. Each batch
goes through one of two slots, in turn: its host arrays are copied into the slot's
pinned buffers (allocated once, reused for every batch of every chunk), sent to the
device on the copy stream, run on the compute stream, and its outputs come back on the
copy stream into the slot's pinned output buffer. CUDA events order the two streams, so
that the copies of one batch overlap the computation of the other; the host waits only
before it reuses a slot's pinned input buffer (its previous upload is done) and before
it hands outputs over for writing (their download is done).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: A model function on device tensors: ``(inputs, noise) -> outputs``.
Function = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class Batch:
    """Rows ``lo:hi`` of the ``job``-th array of a run."""

    job: int
    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo


def plan_batches(sizes: Sequence[int], batch_size: int) -> list[Batch]:
    """The batches of arrays of ``sizes`` rows: each array cut into at most ``batch_size``.

    Batches do not straddle two arrays (two replicas of a chunk hold different events).
    """
    return [
        Batch(job, lo, min(lo + batch_size, size))
        for job, size in enumerate(sizes)
        for lo in range(0, size, batch_size)
    ]


def pinned(shape: tuple[int, int]) -> torch.Tensor:
    """An uninitialised float32 host tensor in page-locked memory (asynchronous copies)."""
    return torch.empty(shape, dtype=torch.float32, pin_memory=True)


class _Slot:
    """Pinned host and device buffers of one batch in flight, and the events that guard them.

    Attributes
    ----------
    uploaded : torch.cuda.Event
        Recorded on the copy stream once the host inputs are on the device: the pinned
        inputs may be overwritten.
    computed : torch.cuda.Event
        Recorded on the compute stream after the function: the device inputs may be
        overwritten and the outputs may be downloaded.
    downloaded : torch.cuda.Event
        Recorded on the copy stream once the outputs are in the pinned output buffer.
    """

    def __init__(self, device: torch.device, widths: tuple[int, int, int]):
        self.device = device
        self.widths = widths
        self.capacity = 0
        # the host waits on these two: it sleeps rather than spins, leaving the core to
        # the reader and writer threads
        self.uploaded = torch.cuda.Event(blocking=True)
        self.computed = torch.cuda.Event()
        self.downloaded = torch.cuda.Event(blocking=True)

    def reserve(self, rows: int) -> None:
        """Buffers of at least ``rows`` rows (reallocated, once idle, only to grow)."""
        if rows <= self.capacity:
            return
        self.downloaded.synchronize()  # the old buffers are out of use
        inputs, noise, _ = self.widths
        self.host_inputs, self.host_noise, self.host_outputs = (
            pinned((rows, width)) for width in self.widths
        )
        self.inputs = torch.empty((rows, inputs), dtype=torch.float32, device=self.device)
        self.noise = torch.empty((rows, noise), dtype=torch.float32, device=self.device)
        self.capacity = rows


class CudaStaging:
    """Runs a model function on CUDA over host arrays, copies and computation overlapped.

    Parameters
    ----------
    device : torch.device
        The CUDA device of the model.
    input_width, noise_width, output_width : int
        Values per event of the function's inputs, noise (0: none) and outputs.
    batch_size : int
        Events per forward pass.

    Attributes
    ----------
    copy_stream, compute_stream : torch.cuda.Stream
        The streams of the transfers and of the function.
    """

    def __init__(
        self,
        device: torch.device,
        input_width: int,
        noise_width: int,
        output_width: int,
        batch_size: int,
    ):
        self.batch_size = batch_size
        self.output_width = output_width
        self.copy_stream = torch.cuda.Stream(device)
        self.compute_stream = torch.cuda.Stream(device)
        widths = (input_width, noise_width, output_width)
        self._slots = [_Slot(device, widths) for _ in range(2)]

    def run(
        self, function: Function, jobs: Sequence[tuple[np.ndarray, np.ndarray | None]]
    ) -> list[np.ndarray]:
        """The outputs of ``function`` on every ``(inputs, noise)`` pair of host arrays.

        Parameters
        ----------
        function : callable
            ``(inputs, noise) -> outputs`` on tensors of the device.
        jobs : sequence of (numpy.ndarray, numpy.ndarray or None)
            float32 (n, input_width) inputs and (n, noise_width) noise (None without).

        Returns
        -------
        list of numpy.ndarray
            float32 (n, output_width) outputs of each job, in host memory of their own.
        """
        results = [
            np.empty((len(inputs), self.output_width), dtype=np.float32) for inputs, _ in jobs
        ]
        batches = plan_batches([len(inputs) for inputs, _ in jobs], self.batch_size)
        previous: tuple[_Slot, Batch, torch.Tensor] | None = None
        with torch.inference_mode():
            for index, batch in enumerate(batches):
                slot = self._slots[index % 2]
                inputs, noise = jobs[batch.job]
                self._upload(slot, inputs[batch.lo:batch.hi],
                             None if noise is None else noise[batch.lo:batch.hi])
                outputs = self._compute(slot, function, len(batch), noise is not None)
                if previous is not None:
                    self._download(*previous, results)
                previous = (slot, batch, outputs)
            if previous is not None:
                self._download(*previous, results)
        return results

    def _upload(self, slot: _Slot, inputs: np.ndarray, noise: np.ndarray | None) -> None:
        """Stage a batch in the slot's pinned buffers and send it on the copy stream."""
        rows = len(inputs)
        slot.reserve(rows)
        slot.uploaded.synchronize()  # the slot's previous batch has left the pinned buffers
        slot.host_inputs[:rows].numpy()[:] = inputs
        if noise is not None:
            slot.host_noise[:rows].numpy()[:] = noise
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(slot.computed)  # its device buffers are free
            slot.inputs[:rows].copy_(slot.host_inputs[:rows], non_blocking=True)
            if noise is not None:
                slot.noise[:rows].copy_(slot.host_noise[:rows], non_blocking=True)
            slot.uploaded.record(self.copy_stream)

    def _compute(
        self, slot: _Slot, function: Function, rows: int, with_noise: bool
    ) -> torch.Tensor:
        """Run the function on the slot's device inputs on the compute stream."""
        with torch.cuda.stream(self.compute_stream):
            self.compute_stream.wait_event(slot.uploaded)
            outputs = function(slot.inputs[:rows], slot.noise[:rows] if with_noise else None)
            slot.computed.record(self.compute_stream)
        return outputs

    def _download(
        self, slot: _Slot, batch: Batch, outputs: torch.Tensor, results: list[np.ndarray]
    ) -> None:
        """Bring a batch's outputs back on the copy stream, wait for them, and keep them.

        Called after the next batch is launched, so that the device computes that one
        while this one travels and is copied out of the pinned buffer.
        """
        rows = len(batch)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(slot.computed)
            slot.host_outputs[:rows].copy_(outputs, non_blocking=True)
            outputs.record_stream(self.copy_stream)  # not reused before the copy is done
            slot.downloaded.record(self.copy_stream)
        slot.downloaded.synchronize()  # the writer needs the values
        results[batch.job][batch.lo:batch.hi] = slot.host_outputs[:rows].numpy()
