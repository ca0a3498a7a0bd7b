"""Streaming fast simulation (Z -> X) and unfolding (X -> Z) of whole files.

A file goes through three overlapping stages: a reader thread reads a chunk, drops and
counts the events with non-finite values and draws their noise; the main thread runs
the model on the chunk in batches; a writer thread builds the output columns and
appends them to the ROOT file. At most three chunks are in memory at any time, so the
peak memory does not grow with the number of events.

The noise of every event comes from `turbosim_hep.random.event_normal` keyed by (seed,
input file name, entry number): the output does not depend on chunk or batch sizes, on
the number of jobs or on where the work ran.

Several inputs are simulated in parallel, in local processes (`--jobs`) or on a Dask
distributed cluster (`--scheduler`). Each task writes one part beside the output;
the parts are then copied in input order into the single output file and removed. The
output's branch ``source`` gives the position of each event's input in the metadata
list ``inputs``, and ``event`` its entry number there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import awkward as ak
import numpy as np
import torch
import uproot
from tqdm.auto import tqdm

from turbosim_hep import __version__, layout
from turbosim_hep.device import resolve_device
from turbosim_hep.errors import InputError, TurbosimError, read_head
from turbosim_hep.inference import BATCH_EVENTS, cached_model, file_sha256, run_model
from turbosim_hep.io import formats
from turbosim_hep.io.lhe import LHEFile, is_lhe
from turbosim_hep.io.reader import Cutflow, EventBatch, EventFile
from turbosim_hep.io.writer import (
    EventWriter,
    event_columns,
    parton_columns,
    reco_columns,
)
from turbosim_hep.outputs import check_output_path
from turbosim_hep.random import event_normal, stream_id

Direction = Literal["simulate", "unfold"]

#: Events the readers hand over at a time: small enough that the first read and the last
#: write, which nothing overlaps, stay short (1M events: 340k events/s against 290k with
#: 200,000), large enough for baskets of a sensible size.
DEFAULT_STEP_SIZE = 100_000

#: Cut-flow steps this module adds after the reader's own.
FINITE_INPUT_CUT = "finite_input"
FINITE_OUTPUT_CUT = "finite_output"


@dataclass(frozen=True)
class Job:
    """Everything one input file needs, plain values only (sent to other processes).

    Attributes
    ----------
    direction : {"simulate", "unfold"}
        Z -> X with the decoder or X -> Z with the encoder.
    model : str
        Checkpoint path.
    seed : int
        Seed of the per-event noise.
    device : str
        Torch device (already resolved).
    batch_size : int
        Events per forward pass.
    step_size : int
        Events per chunk read.
    threads : int
        Torch intra-op threads of the inference (0: leave torch's setting).
    """

    direction: Direction
    model: str
    seed: int
    device: str
    batch_size: int
    step_size: int = DEFAULT_STEP_SIZE
    threads: int = 0


@dataclass
class FileSummary:
    """What happened to one input file.

    Attributes
    ----------
    path : str
        The input.
    cutflow : dict
        Events after each step: ``all``, the selection or final-state requirement,
        ``finite_input`` and ``finite_output``.
    seconds : float
        Wall time spent on the file.
    """

    path: str
    cutflow: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Events in the input."""
        return self.cutflow.get("all", 0)

    @property
    def selected(self) -> int:
        """Events with the wanted final state (simulate) or passing the selection (unfold)."""
        steps = list(self.cutflow.values())
        return steps[list(self.cutflow).index(FINITE_INPUT_CUT) - 1]

    @property
    def nonfinite_inputs(self) -> int:
        """Selected events dropped for NaN or infinite input values."""
        return self.selected - self.cutflow[FINITE_INPUT_CUT]

    @property
    def nonfinite_outputs(self) -> int:
        """Events dropped because the model gave NaN or infinite values."""
        return self.cutflow[FINITE_INPUT_CUT] - self.cutflow[FINITE_OUTPUT_CUT]

    @property
    def written(self) -> int:
        """Events written to the output."""
        return self.cutflow[FINITE_OUTPUT_CUT]


# --- reading ---------------------------------------------------------------------------


def input_kind(path: str | os.PathLike) -> Literal["root", "lhe"]:
    """``root`` or ``lhe``, from the first bytes of a file.

    Raises
    ------
    InputError
        If the file is missing or neither ROOT nor LHE.
    """
    path = os.fspath(path)
    if read_head(path, "event file") == b"root":
        return "root"
    if is_lhe(path):
        return "lhe"
    raise InputError(path, "neither a ROOT file nor an LHE file")


def open_input(path: str | os.PathLike, direction: Direction) -> EventFile | LHEFile:
    """The reader of an input file, checked to hold what ``direction`` needs.

    Raises
    ------
    InputError
        If the file cannot be read or lacks the partons (simulate) or the detector
        objects (unfold).
    """
    if input_kind(path) == "lhe":
        if direction == "unfold":
            raise InputError(
                path, "an LHE file holds partons only; unfolding needs detector-level events"
            )
        return LHEFile(path)
    event_file = EventFile(path)
    event_file.require(detector=direction == "unfold", partons=direction == "simulate")
    return event_file


def _batches(reader: EventFile | LHEFile, direction: Direction, cutflow: Cutflow, step_size: int):
    if isinstance(reader, LHEFile):
        return reader.iterate(cutflow=cutflow, step_size=step_size)
    return reader.iterate(
        detector=direction == "unfold",
        partons=direction == "simulate",
        cutflow=cutflow,
        step_size=step_size,
    )


@dataclass
class _Chunk:
    entry: np.ndarray
    inputs: np.ndarray  # (n, 24) float32, all finite
    noise: np.ndarray | None
    outputs: np.ndarray | None = None


def _prepared_chunks(path: str, job: Job, noise_dim: int, cutflow: Cutflow) -> Iterator[_Chunk]:
    """Chunks of finite events with their noise; counts the non-finite ones."""
    reader = open_input(path, job.direction)
    stream = stream_id(os.path.basename(path))
    for batch in _batches(reader, job.direction, cutflow, job.step_size):
        inputs = batch.z if job.direction == "simulate" else batch.x
        finite = np.isfinite(inputs).all(axis=1)
        cutflow.add(FINITE_INPUT_CUT, np.count_nonzero(finite))
        if not finite.all():
            batch = EventBatch(entry=batch.entry[finite])
            inputs = inputs[finite]
        if len(inputs) == 0:
            continue
        noise = event_normal(job.seed, stream, batch.entry, noise_dim) if noise_dim else None
        yield _Chunk(batch.entry, np.ascontiguousarray(inputs, dtype=np.float32), noise)


# --- writing ---------------------------------------------------------------------------


def output_columns(chunk: _Chunk, direction: Direction, source: int) -> dict[str, object]:
    """The branches of one chunk: event ids, ``source``, generated and input objects.

    simulate: Electron, Jet, MET (pt, eta, phi, mass and px, py, pz, E) generated from
    the input ``Parton`` collection. unfold: the generated ``Parton`` collection (with
    px, py, pz, E) and the input Electron, Jet and MET.
    """
    columns: dict[str, object] = event_columns(chunk.entry)
    columns["source"] = np.full(len(chunk.entry), source, dtype=np.uint32)
    if direction == "simulate":
        columns |= reco_columns(chunk.outputs, with_cartesian=True)
        columns |= parton_columns(chunk.inputs)
    else:
        columns |= parton_columns(chunk.outputs, with_cartesian=True)
        columns |= reco_columns(chunk.inputs)
    return columns


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

    def write(chunk: _Chunk) -> None:
        finite = np.isfinite(chunk.outputs).all(axis=1)
        cutflow.add(FINITE_OUTPUT_CUT, np.count_nonzero(finite))
        if not finite.all():
            chunk = _Chunk(chunk.entry[finite], chunk.inputs[finite], None, chunk.outputs[finite])
        if len(chunk.entry):
            writer.write(output_columns(chunk, job.direction, source))
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


# --- whole runs --------------------------------------------------------------------------


@dataclass
class RunSummary:
    """Result of `run`: per-input summaries, the output path and the total time."""

    output: str
    files: list[FileSummary]
    seconds: float

    @property
    def written(self) -> int:
        """Events written to the output."""
        return sum(f.written for f in self.files)


def run(
    direction: Direction,
    model: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    seed: int = 0,
    device: str = "auto",
    batch_size: int | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    step_size: int = DEFAULT_STEP_SIZE,
    force: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Simulate or unfold input files into one ROOT file.

    Parameters
    ----------
    direction : {"simulate", "unfold"}
        Z -> X (decoder) or X -> Z (encoder).
    model : str or os.PathLike
        Checkpoint of ``turbosim-hep train``.
    inputs : sequence of paths
        ROOT files (Delphes or the project's own) and, for simulate, LHE files.
    output : str or os.PathLike
        The ROOT file to write (atomically: nothing is left behind on failure).
    seed : int
        Seed of the per-event noise; the same seed gives the same output.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    batch_size : int, optional
        Events per forward pass (default: `BATCH_EVENTS` of the device).
    jobs : int, optional
        Input files processed at the same time in local processes (default: one per
        core, at most one per input). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask distributed scheduler to run the files on.
    step_size : int
        Events read per chunk.
    force : bool
        Overwrite an existing output.
    progress : bool
        Show progress bars.

    Returns
    -------
    RunSummary
    """
    start_time = time.perf_counter()
    if seed < 0:
        raise TurbosimError(f"the seed must be non-negative, not {seed}")
    output = check_output_path(output, force=force)
    model = os.path.abspath(os.fspath(model))
    inputs = [os.path.abspath(os.fspath(p)) for p in inputs]
    if not inputs:
        raise TurbosimError("no input files")
    resolved = resolve_device(device)
    fused = cached_model(model, resolved)  # fail on a bad model before any work
    for path in inputs:
        open_input(path, direction)  # fail on a bad input before any work
    shared = [name for name, count in Counter(map(os.path.basename, inputs)).items() if count > 1]
    if shared:
        warnings.warn(
            f"several inputs are named {', '.join(shared)}: the noise stream is keyed by the "
            "file name, so their events with equal entry numbers get the same noise; give "
            "the files distinct names or simulate them with different seeds",
            stacklevel=2,
        )
    jobs = _jobs(jobs, len(inputs))
    job = Job(
        direction=direction,
        model=model,
        seed=int(seed),
        device=str(resolved),
        batch_size=int(batch_size or BATCH_EVENTS[resolved.type]),
        step_size=int(step_size),
        threads=inference_threads(jobs) if resolved.type == "cpu" else 0,
    )
    metadata = {
        "command": direction,
        "model": os.path.basename(model),
        "model_sha256": file_sha256(model),
        "model_config": fused.config.to_dict(),
        "seed": int(seed),
        "turbosim_hep_version": __version__,
        "torch_version": torch.__version__,
        "device": str(resolved),
        "inputs": [os.path.basename(p) for p in inputs],
    }
    with EventWriter(output, force=force, metadata=metadata) as writer:
        if scheduler is None and jobs == 1:
            files = [
                process_file(path, job, writer, source, progress)
                for source, path in enumerate(inputs)
            ]
        else:
            files = _run_parallel(job, inputs, writer, jobs, scheduler, progress)
        writer.metadata["cutflow"] = [f.cutflow for f in files]  # in the order of "inputs"
    return RunSummary(output, files, time.perf_counter() - start_time)


def inference_threads(jobs: int) -> int:
    """Torch threads per job on CPU: the cores of a job less one for reading and writing.

    The reader and writer threads run beside the inference; giving torch every core
    oversubscribes them, and OpenMP threads waiting for a busy core cost far more than
    the core they would add (three times the throughput with one thread instead of two
    on a loaded two-core machine).
    """
    return max(1, (os.cpu_count() or 1) // jobs - 1)


def _jobs(jobs: int | None, n_inputs: int) -> int:
    if jobs is not None and jobs < 1:
        raise TurbosimError(f"--jobs must be at least 1, not {jobs}")
    return max(1, min(jobs or os.cpu_count() or 1, n_inputs))


# --- parallel runs -----------------------------------------------------------------------


def simulate_part(path: str, job: Job, part: str, source: int) -> FileSummary:
    """Task of a parallel run: one input into its own part file (runs in a worker)."""
    with EventWriter(part, force=True) as writer:
        return process_file(path, job, writer, source)


def _run_parallel(
    job: Job,
    inputs: list[str],
    writer: EventWriter,
    jobs: int,
    scheduler: str | None,
    progress: bool,
) -> list[FileSummary]:
    directory = os.path.dirname(os.path.abspath(writer.path))
    parts = []
    with contextlib.ExitStack() as cleanup:
        for index in range(len(inputs)):
            handle, part = tempfile.mkstemp(prefix=f".part{index}-", suffix=".root", dir=directory)
            os.close(handle)
            parts.append(part)
            cleanup.callback(_remove, part)
        if scheduler is not None:
            # the workers' own thread settings hold there (OMP_NUM_THREADS, nthreads)
            job = dataclasses.replace(job, threads=0)
            files = _run_dask(job, inputs, parts, scheduler, progress)
        else:
            job = dataclasses.replace(job, threads=inference_threads(jobs))
            files = _run_local(job, inputs, parts, jobs, progress)
        for part in tqdm(parts, desc="merging", unit=" files", disable=not progress, leave=False):
            append_file(writer, part)
    return files


def _run_local(
    job: Job, inputs: list[str], parts: list[str], jobs: int, progress: bool
) -> list[FileSummary]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [
            pool.submit(simulate_part, path, job, part, source)
            for source, (path, part) in enumerate(zip(inputs, parts))
        ]
        return _collect(futures, progress)


def _run_dask(
    job: Job, inputs: list[str], parts: list[str], scheduler: str, progress: bool
) -> list[FileSummary]:
    from distributed import Client

    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise TurbosimError(f"cannot reach the Dask scheduler at {scheduler} ({err})") from err
    with client:
        futures = [
            client.submit(
                simulate_part, path, job, part, source,
                pure=False, key=f"turbosim-{source}-{os.path.basename(path)}",
            )
            for source, (path, part) in enumerate(zip(inputs, parts))
        ]
        return _collect(futures, progress)


def _collect(futures: list, progress: bool) -> list[FileSummary]:
    """Results in input order, with a progress bar over finished files; first error wins."""
    bar = tqdm(total=len(futures), desc="files", unit=" files", disable=not progress, leave=False)
    results = []
    with bar:
        try:
            for future in futures:
                results.append(future.result())
                bar.update()
        finally:
            for future in futures:
                future.cancel()
    return results


def append_file(writer: EventWriter, path: str, step_size: str = "200 MB") -> None:
    """Copy the ``Events`` tree of one of the project's files into an open writer.

    Jagged collections (``nJet``, ``Jet_pt``, ...) are zipped back into records so the
    writer recreates the same branches.
    """
    with uproot.open(path) as file:
        tree = file[formats.EVENTS_TREE]
        names = set(tree.keys())
        collections = {
            name[1:] for name in names
            if name.startswith("n") and any(k.startswith(f"{name[1:]}_") for k in names)
        }
        for arrays in tree.iterate(step_size=step_size, library="ak"):
            chunk: dict[str, object] = {}
            for name in arrays.fields:
                counter = name.startswith("n") and name[1:] in collections
                owner = name[1:] if counter else name.split("_", 1)[0]
                if owner not in collections:
                    chunk[name] = ak.to_numpy(arrays[name])
                elif owner not in chunk:
                    prefix = f"{owner}_"
                    chunk[owner] = ak.zip(
                        {f[len(prefix):]: arrays[f] for f in arrays.fields if f.startswith(prefix)}
                    )
            writer.write(chunk)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
