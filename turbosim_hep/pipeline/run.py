"""Many input files through the model into one output file, serially or in parallel.

Several inputs are simulated in parallel, in local processes (``jobs``) or on a Dask
distributed cluster (``scheduler``). Each task writes one part beside the output; the
parts are then copied in input order into the single output file and removed. The
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from turbosim_hep import __version__, arguments
from turbosim_hep.device import resolve_device
from turbosim_hep.errors import TurbosimError
from turbosim_hep.inference import (
    BATCH_EVENTS,
    applied_acceptance,
    cached_model,
    file_sha256,
)
from turbosim_hep.io import formats
from turbosim_hep.io.writer import EventWriter, compression_text, parse_compression, read_chunks
from turbosim_hep.layout import Layout, resolve_layout
from turbosim_hep.model.checkpoint import load_model_layout
from turbosim_hep.outputs import check_output_path, temporary_prefix
from turbosim_hep.pipeline import executors
from turbosim_hep.pipeline.job import Direction, Job
from turbosim_hep.pipeline.options import RunOptions
from turbosim_hep.pipeline.stages import open_input, process_file
from turbosim_hep.pipeline.summary import FileSummary, RunSummary

#: The argument that sets the copies of every input event (`Job.oversample`), by direction:
#: simulate's replicas and unfold's posterior samples are the same machinery.
COPIES_ARGUMENT: dict[Direction, str] = {"simulate": "oversample", "unfold": "samples"}


def simulate_files(
    model: str | os.PathLike,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    acceptance: str | None = None,
    oversample: int = 1,
    options: RunOptions | None = None,
    **keywords: Any,
) -> RunSummary:
    """Simulate the detector-level events of parton-level files (Z -> X, the decoder).

    Every input event with the e- nu_e-bar b b-bar u d-bar final state (or its charge
    conjugate) is simulated, as many times as ``oversample`` asks, and kept or weighted
    by the model's acceptance; the output holds the generated Electron, Jet and MET
    beside the input partons, the event weight (``weight``), the acceptance
    (``acceptance``) and the replica number (``replica``, with ``oversample`` above 1).

    Parameters
    ----------
    model : str or os.PathLike
        Checkpoint of ``turbosim-hep train``.
    inputs : path or sequence of paths
        One input file or several: ROOT files (Delphes or the project's own), LHE files
        (plain or gzipped) and HDF5 exports.
    output : str or os.PathLike
        The ROOT file to write (atomically: nothing is left behind on failure).
    acceptance : {"sample", "weight", "off"}, optional
        How the model's acceptance epsilon(z) applies
        (`turbosim_hep.inference.resolve_acceptance`): ``sample`` keeps each event with
        probability epsilon (a reproducible decision per event and replica), so the
        output holds the selected yield; ``weight`` keeps every event with weight
        epsilon; ``off`` simulates every event as if it were selected (for inputs
        already selected). Default: ``sample`` when the model has an acceptance, ``off``
        (with a warning) when it has none.
    oversample : int
        Simulate every input event this many times (at most
        `turbosim_hep.arguments.MAX_OVERSAMPLE`), each with its own noise and acceptance
        decision; the weights are divided by it. The memory does not grow with it: the
        replicas of a chunk go through the model in groups of bounded size.
    options : RunOptions, optional
        The options simulate and unfold share (`turbosim_hep.pipeline.RunOptions`:
        ``seed``, ``device``, ``batch_size``, ``jobs``, ``scheduler``, ``chunk_events``,
        ``force``, ``progress``, ``channel``, ``compression``).
    **keywords
        Any field of `RunOptions` by name, overriding ``options``.

    Returns
    -------
    RunSummary
        What happened to each input, the output path and the time.

    Raises
    ------
    TurbosimError
        On bad input (`turbosim_hep.errors.InputError` names the file) or a bad
        argument (`turbosim_hep.arguments.ArgumentError`, also a `ValueError`, names
        the argument); nothing is written then.

    Examples
    --------
    >>> summary = simulate_files("model.pt", ["run.lhe.gz"], "out.root")  # doctest: +SKIP
    >>> summary.written, summary.files[0].cutflow  # doctest: +SKIP
    """
    return run_files(
        "simulate", model, inputs, output, acceptance=acceptance, oversample=oversample,
        options=RunOptions.merge(options, keywords, "simulate_files"),
    )


def unfold_files(
    model: str | os.PathLike,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    samples: int = 1,
    options: RunOptions | None = None,
    **keywords: Any,
) -> RunSummary:
    """Unfold detector-level files to the six partons (X -> Z, the encoder).

    Every input event that passes the reference selection (or its charge-conjugate
    version) is unfolded, as many times as ``samples`` asks; the output holds the
    generated Parton collection beside the input Electron, Jet and MET, the event weight
    (``weight``) and, with ``samples`` above 1, the sample number (``replica``).

    Parameters
    ----------
    model : str or os.PathLike
        Checkpoint of ``turbosim-hep train``.
    inputs : path or sequence of paths
        One input file or several: ROOT files (Delphes or the project's own) and HDF5
        exports.
    output : str or os.PathLike
        The ROOT file to write (atomically: nothing is left behind on failure).
    samples : int
        Parton events drawn per detector event from the encoder's q(z | x) (at most
        `turbosim_hep.arguments.MAX_OVERSAMPLE`), each with its own noise, keyed by (seed,
        input file name, entry number, sample) like ``simulate``'s ``oversample``
        replicas; branch ``replica`` (0 to K - 1) and weights divided by K. 1 (the
        default) writes what an unfold without samples writes, event for event.
        `turbosim_hep.io.samples.posterior_samples` reads them back grouped by event.
    options : RunOptions, optional
        The options simulate and unfold share, as for `simulate_files`.
    **keywords
        Any field of `RunOptions` by name, overriding ``options``.

    Returns
    -------
    RunSummary
        What happened to each input, the output path and the time.

    Raises
    ------
    TurbosimError
        On bad input (`turbosim_hep.errors.InputError` names the file) or a bad
        argument (`turbosim_hep.arguments.ArgumentError`, also a `ValueError`, names
        the argument); nothing is written then.

    Examples
    --------
    >>> unfold_files("model.pt", ["detector.root"], "posterior.root", samples=100)  # doctest: +SKIP
    """
    return run_files(
        "unfold", model, inputs, output, oversample=samples,
        options=RunOptions.merge(options, keywords, "unfold_files"),
    )


def run_files(
    direction: Direction,
    model: str | os.PathLike,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    acceptance: str | None = None,
    oversample: int = 1,
    options: RunOptions | None = None,
    **keywords: Any,
) -> RunSummary:
    """Simulate or unfold input files into one ROOT file.

    `simulate_files` and `unfold_files` with the direction as first argument:
    ``"simulate"`` (Z -> X, the decoder) or ``"unfold"`` (X -> Z, the encoder); the
    other parameters are theirs (``acceptance`` is simulate's; ``oversample`` is
    simulate's ``oversample`` and unfold's ``samples``, the copies of every input event).
    """
    start_time = time.perf_counter()
    options = RunOptions.merge(options, keywords, "run_files")
    seed, device, batch_size, jobs = (
        options.seed, options.device, options.batch_size, options.jobs
    )
    scheduler, chunk_events, force, progress = (
        options.scheduler, options.chunk_events, options.force, options.progress
    )
    channel, compression = options.channel, options.compression
    seed = arguments.SEED.check(seed, "seed")
    oversample = arguments.OVERSAMPLE.check(oversample, COPIES_ARGUMENT[direction])
    chunk_events = arguments.POSITIVE_INT.check(chunk_events, "chunk_events")
    if batch_size is not None:
        batch_size = arguments.POSITIVE_INT.check(batch_size, "batch_size")
    if jobs is not None:
        jobs = arguments.POSITIVE_INT.check(jobs, "jobs")
    if direction == "unfold" and acceptance not in (None, "off"):
        raise TurbosimError("unfold takes no acceptance")
    event_layout = _model_layout(model, options.layout)
    channel = arguments.choice(channel, event_layout.channel_choices, "channel")
    if scheduler is not None:
        scheduler = arguments.scheduler_address(scheduler, "scheduler")
    compressed = parse_compression(compression)
    inputs = arguments.input_paths(inputs, "inputs")
    output = check_output_path(output, force=force, inputs=[model, *inputs])
    model = os.path.abspath(os.fspath(model))
    inputs = [os.path.abspath(p) for p in inputs]
    resolved = resolve_device(device)
    fused = cached_model(model, resolved)  # fail on a bad model before any work
    mode = "off"
    if direction == "simulate":
        mode, _ = applied_acceptance(acceptance, model, resolved)
    elif oversample > 1 and not fused.encoder_noise_dim:
        warnings.warn(
            f"{os.path.basename(model)}: its encoder takes no noise (noise_mode 'none'), so "
            f"the {oversample} samples of every event are the same parton event",
            stacklevel=3,
        )
    for path in inputs:
        open_input(path, direction, event_layout)  # fail on a bad input before any work
    _warn_of_shared_names(inputs)
    jobs = _jobs(jobs, len(inputs))
    job = Job(
        direction=direction,
        model=model,
        seed=seed,
        device=str(resolved),
        batch_size=batch_size or BATCH_EVENTS[resolved.type],
        chunk_events=chunk_events,
        threads=inference_threads(jobs) if resolved.type == "cpu" else 0,
        channel=channel,
        acceptance=mode,
        oversample=oversample,
        layout=event_layout,
    )
    metadata = {
        "command": direction,
        "model": os.path.basename(model),
        "model_sha256": file_sha256(model),
        "model_config": fused.config.to_dict(),
        "seed": job.seed,
        "turbosim_hep_version": __version__,
        "torch_version": torch.__version__,
        "device": job.device,
        "inputs": [os.path.basename(p) for p in inputs],
        formats.LAYOUT_KEY: event_layout.name,
        formats.LAYOUT_DEFINITION_KEY: event_layout.to_dict(),
        "channel": channel,
        "acceptance": mode,
        "oversample": oversample,
        "compression": compression_text(compressed),
    }
    with EventWriter(output, force=force, metadata=metadata, compression=compressed) as writer:
        if scheduler is None and jobs == 1:
            files = [
                process_file(path, job, writer, source, progress)
                for source, path in enumerate(inputs)
            ]
        else:
            files = _run_parallel(job, inputs, writer, jobs, scheduler, progress)
        writer.metadata["cutflow"] = [f.cutflow for f in files]  # in the order of "inputs"
    return RunSummary(output, files, time.perf_counter() - start_time)


def _model_layout(model: str | os.PathLike, asked: Layout | str | None) -> Layout:
    """The layout of a model's events; `TurbosimError` if ``asked`` is another one."""
    trained = load_model_layout(model)
    if asked is not None and resolve_layout(asked) != trained:
        name = asked.name if isinstance(asked, Layout) else os.fspath(asked)
        raise TurbosimError(
            f"{os.fspath(model)}: the model was trained on {trained.name} events, not on "
            f"those of the {name} layout"
        )
    return trained


def inference_threads(jobs: int) -> int:
    """Torch threads per job on CPU: the cores of a job less one for reading and writing.

    The reader and writer threads run beside the inference; giving torch every core
    oversubscribes them, and OpenMP threads waiting for a busy core cost more than the
    core they would add (docs/simulate.md).
    """
    return max(1, (os.cpu_count() or 1) // jobs - 1)


def _warn_of_shared_names(inputs: list[str]) -> None:
    """Warn when inputs share a file name, which keys their noise streams."""
    names = Counter(map(os.path.basename, inputs))
    shared = [name for name, count in names.items() if count > 1]
    if shared:
        warnings.warn(
            f"several inputs are named {', '.join(shared)}: the noise stream is keyed by the "
            "file name, so their events with equal entry numbers get the same noise; give "
            "the files distinct names or simulate them with different seeds",
            stacklevel=4,
        )


def _jobs(jobs: int | None, n_inputs: int) -> int:
    """Worker processes: ``jobs`` (default one per core), at most one per input."""
    return max(1, min(jobs or os.cpu_count() or 1, n_inputs))


# --- parallel runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class PartTask:
    """One input of a parallel run, simulated or unfolded into its own part file.

    Attributes
    ----------
    path : str
        The input.
    job : Job
        Model, seed, device and sizes.
    part : str
        The part file to write.
    source : int
        Index of the input in the output's ``inputs`` metadata.
    """

    path: str
    job: Job
    part: str
    source: int


def run_part(task: PartTask) -> FileSummary:
    """Run one input into its part file (in a worker process or on a Dask worker)."""
    with EventWriter(task.part, atomic=False) as writer:  # the part is a temporary
        return process_file(task.path, task.job, writer, task.source)


def _run_parallel(
    job: Job,
    inputs: list[str],
    writer: EventWriter,
    jobs: int,
    scheduler: str | None,
    progress: bool,
) -> list[FileSummary]:
    """Every input into a part file beside the output, then the parts copied in order."""
    if scheduler is not None:
        # the workers' own thread settings hold there (OMP_NUM_THREADS, nthreads)
        job = dataclasses.replace(job, threads=0)
    else:
        job = dataclasses.replace(job, threads=inference_threads(jobs))
    directory = os.path.dirname(os.path.abspath(writer.path))
    with contextlib.ExitStack() as cleanup:
        tasks = []
        for source, path in enumerate(inputs):
            prefix = f"{temporary_prefix(writer.path)}part{source}."
            handle, part = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
            os.close(handle)
            cleanup.callback(_remove, part)
            tasks.append(PartTask(path, job, part, source))
        results = executors.ordered_results(run_part, tasks, jobs=jobs, scheduler=scheduler)
        bar = tqdm(results, total=len(tasks), desc="files", unit=" files", leave=False,
                   disable=not progress)
        with contextlib.closing(results), bar:
            files = list(bar)
        for task in tqdm(tasks, desc="merging", unit=" files", disable=not progress, leave=False):
            for chunk in read_chunks(task.part):
                writer.write(chunk)
    return files


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
