"""One input file through the model: read -> infer -> write, three concurrent stages.

The read stage (a thread) reads a chunk of selected events, drops and counts those with
non-finite inputs, and plans its replicas: the acceptance of every event (simulate, with
a model that has one), which events each replica keeps, and their noise
(`turbosim_hep.inference.plan_replicas`); the infer stage (the calling thread) runs the
model on each replica in batches (on CUDA through `turbosim_hep.pipeline.staging`); the
write stage (a thread) drops and counts the events with non-finite outputs and appends
the output columns to the ROOT file. Bounded queues connect the stages
(`turbosim_hep.pipeline.queues`): the slowest sets the rate, and the peak memory does
not grow with the number of events.

The random numbers of every event come from `turbosim_hep.random`, keyed by (seed,
input file name, entry number, replica): the output does not depend on chunk or batch
sizes, on the number of jobs or on where the work ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from turbosim_hep.errors import InputError
from turbosim_hep.inference import (
    Replica,
    acceptance_probabilities,
    cached_acceptance,
    cached_model,
    plan_replicas,
    run_model,
)
from turbosim_hep.io import Cutflow, EventBatch, EventSource, EventWriter, open_events
from turbosim_hep.layout import DEFAULT_LAYOUT, N_FEATURES, Layout
from turbosim_hep.model.acceptance import AcceptanceModel
from turbosim_hep.pipeline.columns import InputColumns, output_columns
from turbosim_hep.pipeline.job import Direction, Job
from turbosim_hep.pipeline.queues import run_stages
from turbosim_hep.pipeline.staging import CudaStaging
from turbosim_hep.pipeline.summary import (
    ACCEPTED_CUT,
    FINITE_INPUT_CUT,
    FINITE_OUTPUT_CUT,
    FileSummary,
)
from turbosim_hep.random import stream_id


@dataclass
class Chunk:
    """Events on their way through the stages.

    Attributes
    ----------
    entry : numpy.ndarray
        Entry numbers of the events in their input.
    inputs : numpy.ndarray
        float32 (n, 24) model inputs, all finite (charge-conjugate events CP-mirrored).
    conjugate : numpy.ndarray or None
        bool (n,): events of the charge-conjugate channel (None: none is).
    weight : numpy.ndarray
        float32 (n,) input weights.
    epsilon : numpy.ndarray or None
        float64 (n,) acceptance of each event, where the model's acceptance applies.
    replicas : list of Replica
        The copies of the chunk that go through the model, once planned: all of them,
        or one group of them (`Planner`).
    last_group : bool
        Whether ``replicas`` holds the chunk's last replica (its events then count as
        written).
    """

    entry: np.ndarray
    inputs: np.ndarray
    conjugate: np.ndarray | None
    weight: np.ndarray
    epsilon: np.ndarray | None = None
    replicas: list[Replica] = dataclasses.field(default_factory=list)
    last_group: bool = True

    def __len__(self) -> int:
        return len(self.entry)


# --- read ------------------------------------------------------------------------------


def reads(direction: Direction) -> dict[str, bool]:
    """What the input must hold: the partons (simulate) or the detector objects (unfold)."""
    return {"detector": direction == "unfold", "partons": direction == "simulate"}


def open_input(
    path: str | os.PathLike, direction: Direction, layout: Layout = DEFAULT_LAYOUT
) -> EventSource:
    """The reader of an input file in a layout, checked to hold what ``direction`` needs.

    Raises
    ------
    InputError
        If the file cannot be read or lacks the partons (simulate) or the detector
        objects (unfold).
    """
    source = open_events(path, layout)
    source.require(**reads(direction))
    return source


def finite_chunks(
    batches: Iterable[EventBatch], direction: Direction, steps: Cutflow
) -> Iterator[Chunk]:
    """The model inputs of each batch, without the events holding NaN or infinite values
    in their four-vectors or their weight (which every output weight is a multiple of).

    The events kept are counted in ``steps`` as `FINITE_INPUT_CUT`; chunks left empty
    are skipped.
    """
    for batch in batches:
        inputs = batch.z if direction == "simulate" else batch.x
        finite = np.isfinite(inputs).all(axis=1) & np.isfinite(batch.weights)
        steps.add(FINITE_INPUT_CUT, np.count_nonzero(finite))
        if not finite.all():
            batch, inputs = batch.take(finite), inputs[finite]
        if len(inputs):
            inputs = np.ascontiguousarray(inputs, dtype=np.float32)
            yield Chunk(batch.entry, inputs, batch.conjugate, batch.weights)


#: Replica events planned at once, in chunks of the run: the replicas of a chunk go
#: through the stages in groups of at most ``REPLICA_CHUNKS * chunk_events`` events, so
#: that the memory of ``--oversample K`` does not grow with K (up to 8 replicas of a full
#: chunk share the input branches of one group, `kept_input_columns`).
REPLICA_CHUNKS = 8


def replica_groups(events: int, oversample: int, chunk_events: int) -> list[range]:
    """The groups of replicas of a chunk of ``events`` events planned at once (in order).

    Each group holds at most ``REPLICA_CHUNKS * chunk_events`` replica events (and at
    least one replica).
    """
    size = max(1, REPLICA_CHUNKS * chunk_events // max(events, 1))
    return [range(lo, min(lo + size, oversample)) for lo in range(0, oversample, size)]


@dataclass(frozen=True)
class Planner:
    """The read stage's last step: the acceptance, replicas and noise of each chunk.

    Attributes
    ----------
    job : Job
        Seed, acceptance mode and replicas of the run.
    stream : int
        Random stream of the input file (`turbosim_hep.random.stream_id` of its name).
    noise_dim : int
        Noise values of the model's function per event.
    acceptance : AcceptanceModel or None
        The model's acceptance where it applies (simulate, mode other than ``off``).
    device : torch.device
        Where the acceptance runs.
    steps : Cutflow
        Counts the replica events the acceptance keeps (`ACCEPTED_CUT`) when it applies.
    """

    job: Job
    stream: int
    noise_dim: int
    acceptance: AcceptanceModel | None
    device: torch.device
    steps: Cutflow

    def __call__(self, chunk: Chunk) -> Iterator[Chunk]:
        """The chunk with its acceptance (where it applies), once per group of replicas
        (`replica_groups`), each with that group's planned replicas."""
        if self.acceptance is not None:
            chunk.epsilon = acceptance_probabilities(
                self.acceptance, chunk.inputs, self.device, self.job.batch_size
            )
        groups = replica_groups(len(chunk), self.job.oversample, self.job.chunk_events)
        for group in groups:
            replicas = plan_replicas(
                chunk.entry, chunk.weight, chunk.epsilon, seed=self.job.seed,
                stream=self.stream, noise_dim=self.noise_dim, mode=self.job.acceptance,
                oversample=self.job.oversample, replicas=group,
            )
            if self.acceptance is not None:
                self.steps.add(ACCEPTED_CUT, sum(len(r.rows) for r in replicas))
            yield dataclasses.replace(
                chunk, replicas=replicas, last_group=group is groups[-1]
            )

    def chunks(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        """Every group of replicas of every chunk, in order."""
        for chunk in chunks:
            yield from self(chunk)


# --- infer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Inference:
    """The infer stage: the model's function on every replica of a chunk, in batches.

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
    staging : CudaStaging or None
        The pinned buffers and streams of a CUDA device (None on the CPU, where the
        host arrays are used in place).
    """

    function: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    noise_dim: int
    device: torch.device
    batch_size: int
    staging: CudaStaging | None = None

    @classmethod
    def of(cls, job: Job) -> Inference:
        """The decoder (simulate) or the encoder (unfold) of the job's model."""
        device = torch.device(job.device)
        model = cached_model(job.model, device)
        if job.direction == "simulate":
            function, noise_dim = model.simulate, model.decoder_noise_dim
        else:
            function, noise_dim = model.unfold, model.encoder_noise_dim
        staging = None
        if device.type == "cuda":
            staging = CudaStaging(device, N_FEATURES, noise_dim, N_FEATURES,
                                  job.batch_size)
        return cls(function, noise_dim, device, job.batch_size, staging)

    def __call__(self, chunk: Chunk) -> Chunk:
        """The chunk with the outputs of each replica (its noise, now used, dropped)."""
        if self.staging is None:
            for replica in chunk.replicas:
                replica.outputs = run_model(
                    self.function, replica_inputs(chunk, replica), replica.noise, self.device,
                    self.batch_size,
                )
        else:  # every replica in one run: the copies of one overlap the others' batches
            jobs = [(replica_inputs(chunk, r), r.noise) for r in chunk.replicas]
            outputs = self.staging.run(self.function, jobs)
            for replica, values in zip(chunk.replicas, outputs, strict=True):
                replica.outputs = values
        for replica in chunk.replicas:
            replica.noise = None
        return chunk


def replica_inputs(chunk: Chunk, replica: Replica) -> np.ndarray:
    """The model inputs of a replica's events (the chunk's own array when it keeps all)."""
    return chunk.inputs if len(replica.rows) == len(chunk) else chunk.inputs[replica.rows]


# --- write -----------------------------------------------------------------------------


def finite_outputs(replica: Replica, steps: Cutflow) -> Replica:
    """The replica without the events whose outputs hold NaN or infinite values.

    The events kept are counted in ``steps`` as `FINITE_OUTPUT_CUT`.
    """
    finite = np.isfinite(replica.outputs).all(axis=1)
    steps.add(FINITE_OUTPUT_CUT, np.count_nonzero(finite))
    if finite.all():
        return replica
    return dataclasses.replace(
        replica, rows=replica.rows[finite], weight=replica.weight[finite],
        outputs=replica.outputs[finite],
    )


def replica_columns(
    chunk: Chunk, replica: Replica, inputs: InputColumns, job: Job
) -> dict[str, object]:
    """The output branches of one replica of a chunk (`output_columns` of its events),
    ``inputs`` being the input branches of those events."""

    def of(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[replica.rows]

    return output_columns(
        inputs, replica.outputs, job.direction, conjugate=of(chunk.conjugate),
        weight=replica.weight, acceptance=of(chunk.epsilon),
        replica=replica.replica if job.oversample > 1 else None, layout=job.layout,
    )


def kept_input_columns(
    chunk: Chunk, replicas: list[Replica], job: Job, source: int
) -> list[InputColumns]:
    """The input branches of each replica, made once for the events any of them keeps.

    Every replica of a chunk shares its input branches (``--oversample``): they are made
    for the union of the replicas' rows, and each replica takes its own.
    """
    if max(len(r.rows) for r in replicas) == len(chunk):
        rows = np.arange(len(chunk))
    else:
        rows = np.unique(np.concatenate([r.rows for r in replicas]))
    conjugate = None if chunk.conjugate is None else chunk.conjugate[rows]
    shared = InputColumns.of(
        chunk.entry[rows], chunk.inputs[rows], job.direction, source, conjugate, job.layout
    )
    return [shared.take(np.searchsorted(rows, r.rows)) for r in replicas]


@dataclass(frozen=True)
class ChunkWriter:
    """The write stage: the output columns of every replica of a chunk, appended in order.

    Attributes
    ----------
    writer : EventWriter
        The output (entered).
    job : Job
        Direction and replicas of the run.
    source : int
        Index of the input in the output's ``inputs`` metadata.
    steps : Cutflow
        Counts the replica events with finite outputs (`FINITE_OUTPUT_CUT`).
    written : callable
        Called with the number of input events of each chunk written (a progress bar).
    """

    writer: EventWriter
    job: Job
    source: int
    steps: Cutflow
    written: Callable[[int], object] = lambda events: None

    def __call__(self, chunk: Chunk) -> None:
        """Append the chunk's replicas, without their events with non-finite outputs.

        The input branches are made once for all replicas (`kept_input_columns`).
        """
        finite = [finite_outputs(replica, self.steps) for replica in chunk.replicas]
        kept = [replica for replica in finite if len(replica.rows)]
        if kept:
            inputs = kept_input_columns(chunk, kept, self.job, self.source)
            for replica, columns in zip(kept, inputs, strict=True):
                self.writer.write(replica_columns(chunk, replica, columns, self.job))
        if chunk.last_group:
            self.written(len(chunk))


# --- the stages together ---------------------------------------------------------------


@dataclass(frozen=True)
class FileStages:
    """The three stages of one input file, built but not run.

    `process_file` runs them concurrently; ``benchmarks/bench_simulate.py`` runs each
    alone to measure its own rate.

    Attributes
    ----------
    summary : FileSummary
        Filled in as the stages run.
    chunks : iterator of Chunk
        The read stage: read, checked and planned chunks (one per group of replicas).
    infer : Inference
        The infer stage.
    write : ChunkWriter
        The write stage.
    """

    summary: FileSummary
    chunks: Iterator[Chunk]
    infer: Inference
    write: ChunkWriter


def file_stages(
    path: str,
    job: Job,
    writer: EventWriter,
    source: int = 0,
    written: Callable[[int], object] = lambda events: None,
) -> FileStages:
    """The read, infer and write stages of one input into an open writer.

    Parameters
    ----------
    path : str
        The input file.
    job : Job
        Model, seed, device, sizes, channel, acceptance and replicas.
    writer : EventWriter
        The output (entered).
    source : int
        Index of the input in the output's ``inputs`` metadata.
    written : callable
        Called with the number of input events of each chunk written.

    Raises
    ------
    InputError
        If the file cannot be read.
    """
    acceptance = _acceptance(job)
    summary = FileSummary(
        path, applies_acceptance=acceptance is not None, oversample=job.oversample
    )
    inference = Inference.of(job)
    batches = open_input(path, job.direction, job.layout).iterate(
        **reads(job.direction), cutflow=summary.read, chunk_events=job.chunk_events,
        channel=job.channel,
    )
    plan = Planner(
        job, stream_id(os.path.basename(path)), inference.noise_dim, acceptance,
        inference.device, summary.pipeline,
    )
    chunks = plan.chunks(finite_chunks(batches, job.direction, summary.pipeline))
    write = ChunkWriter(writer, job, source, summary.pipeline, written)
    return FileStages(summary, chunks, inference, write)


def process_file(
    path: str, job: Job, writer: EventWriter, source: int = 0, progress: bool = False
) -> FileSummary:
    """Run one input through the model into an open writer (three concurrent stages).

    Parameters
    ----------
    path : str
        The input file.
    job : Job
        Model, seed, device, sizes, channel, acceptance and replicas.
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
    bar = tqdm(desc=os.path.basename(path), unit=" events", disable=not progress, leave=False)
    stages = file_stages(path, job, writer, source, bar.update)
    with bar, torch_threads(job.threads):
        run_stages(stages.chunks, stages.infer, stages.write)
    summary = stages.summary
    summary.seconds = time.perf_counter() - start_time
    if summary.finite_inputs == 0 or (summary.simulated and summary.written == 0):
        raise InputError(path, f"no usable events ({summary.describe()})")
    return summary


def _acceptance(job: Job) -> AcceptanceModel | None:
    """The model's acceptance where the job applies it (simulate, mode not ``off``)."""
    if job.direction != "simulate" or job.acceptance == "off":
        return None
    return cached_acceptance(job.model, job.device)


@contextlib.contextmanager
def torch_threads(threads: int):
    """Use ``threads`` torch threads inside (0: unchanged), then restore the setting."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
