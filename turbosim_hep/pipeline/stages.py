"""One input file through the model: read -> infer -> write, three overlapping stages.

A reader thread reads a chunk, drops and counts the events with non-finite values and
draws their noise; the main thread runs the model on the chunk in batches; a writer
thread builds the output columns and appends them to the ROOT file. At most three
chunks are in memory at any time, so the peak memory does not grow with the number of
events.

The noise of every event comes from `turbosim_hep.random.event_normal` keyed by (seed,
input file name, entry number): the output does not depend on chunk or batch sizes, on
the number of jobs or on where the work ran.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from turbosim_hep import layout
from turbosim_hep.errors import InputError
from turbosim_hep.inference import cached_model, run_model
from turbosim_hep.io import Cutflow, EventBatch, EventSource, EventWriter, open_events
from turbosim_hep.pipeline.columns import output_columns
from turbosim_hep.pipeline.job import Direction, Job
from turbosim_hep.pipeline.summary import FINITE_INPUT_CUT, FINITE_OUTPUT_CUT, FileSummary
from turbosim_hep.random import event_normal, stream_id

# --- reading ---------------------------------------------------------------------------


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
    noise: np.ndarray | None
    outputs: np.ndarray | None = None


def _prepared_chunks(path: str, job: Job, noise_dim: int, cutflow: Cutflow) -> Iterator[Chunk]:
    """Chunks of finite events with their noise; counts the non-finite ones."""
    source = open_input(path, job.direction)
    stream = stream_id(os.path.basename(path))
    batches = source.iterate(
        **reads(job.direction), cutflow=cutflow, chunk_events=job.chunk_events
    )
    for batch in batches:
        inputs = batch.z if job.direction == "simulate" else batch.x
        finite = np.isfinite(inputs).all(axis=1)
        cutflow.add(FINITE_INPUT_CUT, np.count_nonzero(finite))
        if not finite.all():
            batch = EventBatch(entry=batch.entry[finite])
            inputs = inputs[finite]
        if len(inputs) == 0:
            continue
        noise = event_normal(job.seed, stream, batch.entry, noise_dim) if noise_dim else None
        yield Chunk(batch.entry, np.ascontiguousarray(inputs, dtype=np.float32), noise)


# --- one file --------------------------------------------------------------------------


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
    device = torch.device(job.device)
    model = cached_model(job.model, device)
    function = model.simulate if job.direction == "simulate" else model.unfold
    noise_dim = model.decoder_noise_dim if job.direction == "simulate" else model.encoder_noise_dim
    cutflow = Cutflow()
    chunks = _prepared_chunks(path, job, noise_dim, cutflow)
    bar = tqdm(desc=os.path.basename(path), unit=" events", disable=not progress, leave=False)

    def write(chunk: Chunk) -> None:
        finite = np.isfinite(chunk.outputs).all(axis=1)
        cutflow.add(FINITE_OUTPUT_CUT, np.count_nonzero(finite))
        if not finite.all():
            chunk = Chunk(chunk.entry[finite], chunk.inputs[finite], None, chunk.outputs[finite])
        if len(chunk.entry):
            writer.write(
                output_columns(chunk.entry, chunk.inputs, chunk.outputs, job.direction, source)
            )
        bar.update(len(finite))

    with (
        ThreadPoolExecutor(1) as reading,
        ThreadPoolExecutor(1) as writing,
        bar,
        _torch_threads(job.threads),
    ):
        pending_read = reading.submit(next, chunks, None)
        pending_write: Future | None = None
        try:
            while (chunk := pending_read.result()) is not None:
                pending_read = reading.submit(next, chunks, None)
                chunk.outputs = run_model(
                    function, chunk.inputs, chunk.noise, device, job.batch_size
                )
                chunk.noise = None
                if pending_write is not None:
                    pending_write.result()
                pending_write = writing.submit(write, chunk)
            if pending_write is not None:
                pending_write.result()
        finally:
            pending_read.cancel()
    summary = FileSummary(path, _complete_cutflow(cutflow), time.perf_counter() - start_time)
    if summary.written == 0:
        raise InputError(path, f"no usable events ({_describe(summary.cutflow)})")
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


def _complete_cutflow(cutflow: Cutflow) -> dict[str, int]:
    """The counts with the two finiteness steps present even when no chunk reached them."""
    counts = cutflow.as_dict()
    counts.setdefault("all", 0)
    counts.setdefault(layout.PARTON_CUT if "four_jets" not in counts else "four_jets", 0)
    for step in (FINITE_INPUT_CUT, FINITE_OUTPUT_CUT):
        counts.setdefault(step, 0)
    return counts


def _describe(cutflow: dict[str, int]) -> str:
    return ", ".join(f"{name}: {count}" for name, count in cutflow.items())
