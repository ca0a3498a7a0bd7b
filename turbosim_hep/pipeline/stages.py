"""One input file through the model: read -> infer -> write, three overlapping stages.

The read stage (a thread) reads a chunk of selected events, drops and counts those with
non-finite inputs and draws their noise; the infer stage (the calling thread) runs the
model on the chunk in batches; the write stage (a thread) drops and counts the events
with non-finite outputs and appends the output columns to the ROOT file. At most three
chunks are in memory at any time, so the peak memory does not grow with the number of
events.

The noise of every event comes from `turbosim_hep.random.event_normal` keyed by (seed,
input file name, entry number): the output does not depend on chunk or batch sizes, on
the number of jobs or on where the work ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from turbosim_hep.errors import InputError
from turbosim_hep.inference import cached_model, run_model
from turbosim_hep.io import Cutflow, EventBatch, EventSource, EventWriter, open_events
from turbosim_hep.pipeline.columns import output_columns
from turbosim_hep.pipeline.job import Direction, Job
from turbosim_hep.pipeline.summary import FINITE_INPUT_CUT, FINITE_OUTPUT_CUT, FileSummary
from turbosim_hep.random import event_normal, stream_id


@dataclass
class Chunk:
    """Events on their way through the stages.

    Attributes
    ----------
    entry : numpy.ndarray
        Entry numbers of the events in their input.
    inputs : numpy.ndarray
        float32 (n, 24) model inputs, all finite.
    noise : numpy.ndarray or None
        float32 (n, noise_dim) noise of the model (None once used, or without noise).
    outputs : numpy.ndarray or None
        float32 (n, 24) model outputs, once inferred.
    """

    entry: np.ndarray
    inputs: np.ndarray
    noise: np.ndarray | None = None
    outputs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.entry)

    def take(self, rows: np.ndarray) -> Chunk:
        """The events ``rows`` (a boolean mask or indices) of every array."""
        arrays = (getattr(self, field.name) for field in dataclasses.fields(self))
        return Chunk(*(None if array is None else array[rows] for array in arrays))


# --- read ------------------------------------------------------------------------------


def reads(direction: Direction) -> dict[str, bool]:
    """What the input must hold: the partons (simulate) or the detector objects (unfold)."""
    return {"detector": direction == "unfold", "partons": direction == "simulate"}


def open_input(path: str | os.PathLike, direction: Direction) -> EventSource:
    """The reader of an input file, checked to hold what ``direction`` needs.

    Raises
    ------
    InputError
        If the file cannot be read or lacks the partons (simulate) or the detector
        objects (unfold).
    """
    source = open_events(path)
    source.require(**reads(direction))
    return source


def finite_chunks(
    batches: Iterable[EventBatch], direction: Direction, steps: Cutflow
) -> Iterator[Chunk]:
    """The model inputs of each batch, without the events holding NaN or infinite values.

    The events kept are counted in ``steps`` as `FINITE_INPUT_CUT`; chunks left empty
    are skipped.
    """
    for batch in batches:
        inputs = batch.z if direction == "simulate" else batch.x
        finite = np.isfinite(inputs).all(axis=1)
        steps.add(FINITE_INPUT_CUT, np.count_nonzero(finite))
        entry = batch.entry
        if not finite.all():
            entry, inputs = entry[finite], inputs[finite]
        if len(inputs):
            yield Chunk(entry, np.ascontiguousarray(inputs, dtype=np.float32))


def with_noise(chunks: Iterable[Chunk], seed: int, stream: int, noise_dim: int) -> Iterator[Chunk]:
    """The chunks with the noise of their events (none when ``noise_dim`` is 0).

    The noise is `turbosim_hep.random.event_normal` of (seed, stream, entry).
    """
    for chunk in chunks:
        if noise_dim:
            chunk.noise = event_normal(seed, stream, chunk.entry, noise_dim)
        yield chunk


# --- infer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Inference:
    """The infer stage: the model's function on chunks, in batches on its device.

    Attributes
    ----------
    function : callable
        ``model.simulate`` or ``model.unfold`` of a model fused for inference.
    noise_dim : int
        Noise values the function takes per event.
    device : torch.device
        Where the model runs.
    batch_size : int
        Events per forward pass.
    """

    function: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    noise_dim: int
    device: torch.device
    batch_size: int

    @classmethod
    def of(cls, job: Job) -> Inference:
        """The decoder (simulate) or the encoder (unfold) of the job's model."""
        device = torch.device(job.device)
        model = cached_model(job.model, device)
        if job.direction == "simulate":
            return cls(model.simulate, model.decoder_noise_dim, device, job.batch_size)
        return cls(model.unfold, model.encoder_noise_dim, device, job.batch_size)

    def __call__(self, chunk: Chunk) -> Chunk:
        """The chunk with its outputs (its noise, now used, dropped)."""
        outputs = run_model(self.function, chunk.inputs, chunk.noise, self.device, self.batch_size)
        return dataclasses.replace(chunk, noise=None, outputs=outputs)


# --- write -----------------------------------------------------------------------------


def finite_outputs(chunk: Chunk, steps: Cutflow) -> Chunk:
    """The chunk without the events whose outputs hold NaN or infinite values.

    The events kept are counted in ``steps`` as `FINITE_OUTPUT_CUT`.
    """
    finite = np.isfinite(chunk.outputs).all(axis=1)
    steps.add(FINITE_OUTPUT_CUT, np.count_nonzero(finite))
    return chunk if finite.all() else chunk.take(finite)


# --- the stages together ---------------------------------------------------------------


def overlap(
    chunks: Iterator[Chunk], infer: Callable[[Chunk], Chunk], write: Callable[[Chunk], None]
) -> None:
    """Run the three stages: chunk k+1 is read and chunk k-1 written while k is inferred.

    Parameters
    ----------
    chunks : iterator of Chunk
        The read stage; advanced in a reader thread.
    infer : callable
        The infer stage; runs in the calling thread.
    write : callable
        The write stage; runs in a writer thread, one chunk at a time, in order.
    """
    with ThreadPoolExecutor(1) as reading, ThreadPoolExecutor(1) as writing:
        pending_read = reading.submit(next, chunks, None)
        pending_write: Future | None = None
        try:
            while (chunk := pending_read.result()) is not None:
                pending_read = reading.submit(next, chunks, None)
                chunk = infer(chunk)
                if pending_write is not None:
                    pending_write.result()
                pending_write = writing.submit(write, chunk)
            if pending_write is not None:
                pending_write.result()
        finally:
            pending_read.cancel()


def process_file(
    path: str, job: Job, writer: EventWriter, source: int = 0, progress: bool = False
) -> FileSummary:
    """Run one input through the model into an open writer (three overlapping stages).

    Parameters
    ----------
    path : str
        The input file.
    job : Job
        Model, seed, device and sizes.
    writer : EventWriter
        The output (entered).
    source : int
        Index of the input in the output's ``inputs`` metadata.
    progress : bool
        Show a progress bar.

    Returns
    -------
    FileSummary
        Cut-flow and time of the file.

    Raises
    ------
    InputError
        If the file cannot be read, or none of its events can be used.
    """
    start_time = time.perf_counter()
    summary = FileSummary(path)
    inference = Inference.of(job)
    batches = open_input(path, job.direction).iterate(
        **reads(job.direction), cutflow=summary.read, chunk_events=job.chunk_events
    )
    chunks = with_noise(
        finite_chunks(batches, job.direction, summary.pipeline),
        job.seed,
        stream_id(os.path.basename(path)),
        inference.noise_dim,
    )
    bar = tqdm(desc=os.path.basename(path), unit=" events", disable=not progress, leave=False)

    def write(chunk: Chunk) -> None:
        kept = finite_outputs(chunk, summary.pipeline)
        if len(kept):
            columns = output_columns(kept.entry, kept.inputs, kept.outputs, job.direction, source)
            writer.write(columns)
        bar.update(len(chunk))

    with bar, _torch_threads(job.threads):
        overlap(chunks, inference, write)
    summary.seconds = time.perf_counter() - start_time
    if summary.written == 0:
        raise InputError(path, f"no usable events ({summary.describe()})")
    return summary


@contextlib.contextmanager
def _torch_threads(threads: int):
    """Use ``threads`` torch threads inside (0: unchanged), then restore the setting."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
