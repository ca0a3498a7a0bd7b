"""Generate a file of tt-bar events: Pythia 8 jobs in processes, written in a fixed order.

The events are cut into blocks of a fixed number of events (`BLOCK_SIZE`). Block ``b``
gets its own Pythia instance seeded from (seed, b) and its own detector random stream, so
the content of the output depends on the seed and the number of events only, not on the
number of jobs or on timing: jobs work on blocks in any order and the main process writes
them in block order through `turbosim_hep.io.writer.EventWriter` (a temporary file,
renamed at the end; Ctrl-C stops the workers and leaves nothing). The workers are those
of `turbosim_hep.pipeline.executors`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import awkward as ak
import numpy as np
import uproot
from tqdm.auto import tqdm

from turbosim_hep import __version__
from turbosim_hep.errors import TurbosimError
from turbosim_hep.generate.cards import get_card
from turbosim_hep.generate.pythia import LEVELS, MAX_PYTHIA_SEED, Level, TTbarGenerator
from turbosim_hep.io import Cutflow, formats, object_counts
from turbosim_hep.io.writer import EventWriter, event_columns, parton_columns
from turbosim_hep.layout import DEFAULT_LAYOUT, LAYOUT_VERSION, Layout, resolve_layout
from turbosim_hep.outputs import check_output_path
from turbosim_hep.pipeline.executors import ordered_results

#: Events per block (one Pythia initialisation, one write) at each level.
BLOCK_SIZE: Mapping[str, int] = {"detector": 1000, "parton": 20000}
#: Largest number of events one command accepts.
MAX_EVENTS = 100_000_000
#: Largest number of worker processes.
MAX_JOBS = 256
#: Events gathered before a write: large baskets compress better and read faster.
WRITE_EVENTS = 20_000


@dataclass
class GenerationSummary:
    """What a generation run produced."""

    path: str
    generated: int
    written: int
    cutflow: dict[str, int] = field(default_factory=dict)


def block_seeds(
    seed: int, block: int
) -> tuple[int, np.random.SeedSequence, np.random.SeedSequence]:
    """The Pythia seed and the detector and thinning seed sequences of one block.

    The thinning stream (which rejected events a file keeps) is separate from the
    detector's, so the kept events are identical whatever fraction is asked for.
    """
    sequence = np.random.SeedSequence([seed, block])
    pythia_seed = int(sequence.generate_state(1, np.uint32)[0]) % MAX_PYTHIA_SEED + 1
    detector, thinning = sequence.spawn(2)
    return pythia_seed, detector, thinning


@dataclass(frozen=True)
class _Task:
    seed: int
    block: int
    start: int  # global entry number of the block's first event
    size: int
    level: str
    card: str
    rejected_fraction: float
    mantissa_bits: int | None
    layout: Layout


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to ``bits`` bits of mantissa (as NanoAOD stores its floats).

    The dropped low bits become zeros, which compress away; the relative rounding error
    is at most 2**-(bits + 1).
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    drop = 23 - bits
    if drop <= 0:
        return values
    raw = values.view(np.uint32)
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    rounded = (raw + half) & mask
    finite = np.isfinite(values)
    return np.where(finite, rounded.view(np.float32), values)


def _round_floats(value, bits: int):
    """`round_mantissa` on every float32 leaf of a NumPy column or awkward collection."""
    if isinstance(value, np.ndarray):
        return round_mantissa(value, bits) if value.dtype == np.float32 else value
    counts = ak.num(value)
    flat = ak.flatten(value)
    fields = {}
    for name in flat.fields:
        leaf = ak.to_numpy(flat[name])
        fields[name] = round_mantissa(leaf, bits) if leaf.dtype == np.float32 else leaf
    return ak.unflatten(ak.zip(fields), counts)


def _run_block(task: _Task) -> tuple[int, dict, dict[str, int]]:
    """Generate and reconstruct one block; returns (events generated, columns, cut-flow)."""
    pythia_seed, detector_seed, thinning_seed = block_seeds(task.seed, task.block)
    generator = TTbarGenerator(pythia_seed, task.level, layout=task.layout)  # type: ignore[arg-type]
    events = generator.generate(task.size)
    entry = task.start + np.arange(len(events), dtype=np.int64)
    columns: dict = {}
    cutflow = {"all": len(events)}
    keep = np.ones(len(events), dtype=bool)
    weight = np.ones(len(events), dtype=np.float32)
    if task.level == "detector":
        from turbosim_hep.generate.detector import ParametricDetector

        detector = ParametricDetector(get_card(task.card))
        rng = np.random.Generator(np.random.Philox(detector_seed))
        reco = detector.simulate(events.particles, rng)
        counts = object_counts(
            reco.electrons["charge"], ak.num(reco.muons), ak.num(reco.photons), ak.num(reco.jets),
            muon_charge=reco.muons["charge"],
        )
        for name, mask in task.layout.selection_masks(counts).items():
            cutflow[name] = int(np.count_nonzero(mask))
        if task.rejected_fraction < 1.0:
            # Every selected event and a random fraction of the rejected ones, weighted
            # by the inverse fraction so that weighted sums estimate the whole sample.
            thinning = np.random.Generator(np.random.Philox(thinning_seed))
            kept_rejected = thinning.random(len(events)) < task.rejected_fraction
            keep = mask | kept_rejected
            if task.rejected_fraction > 0.0:
                weight[~mask] = 1.0 / task.rejected_fraction
        columns = {
            formats.ELECTRON: reco.electrons,
            formats.MUON: reco.muons,
            formats.PHOTON: reco.photons,
            formats.JET: reco.jets,
            formats.branch(formats.MET, "pt"): reco.met_pt,
            formats.branch(formats.MET, "phi"): reco.met_phi,
        }
    columns = (
        event_columns(entry, weight=weight) | columns | parton_columns(events.z, layout=task.layout)
    )
    if not np.all(keep):
        columns = {name: value[keep] for name, value in columns.items()}
    if task.mantissa_bits is not None:
        bits = task.mantissa_bits
        columns = {name: _round_floats(value, bits) for name, value in columns.items()}
    return len(events), columns, cutflow


def _concatenate(chunks: list[dict]) -> dict:
    """Join column chunks in order."""
    if len(chunks) == 1:
        return chunks[0]
    return {
        name: (
            np.concatenate([c[name] for c in chunks])
            if isinstance(chunks[0][name], np.ndarray)
            else ak.concatenate([c[name] for c in chunks])
        )
        for name in chunks[0]
    }


def check_request(n_events: int, seed: int, jobs: int, level: str, card: str) -> None:
    """Raise `TurbosimError` for a request that cannot be run."""
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise TurbosimError(f"the number of events must be a positive integer, got {n_events!r}")
    if n_events > MAX_EVENTS:
        raise TurbosimError(
            f"the number of events must be at most {MAX_EVENTS:,}, got {n_events:,}"
        )
    if seed < 0 or seed >= 2**63:
        raise TurbosimError(f"the seed must be a non-negative 64-bit integer, got {seed}")
    if not 1 <= jobs <= MAX_JOBS:
        raise TurbosimError(f"--jobs must be between 1 and {MAX_JOBS}, got {jobs}")
    if level not in LEVELS:
        raise TurbosimError(f"unknown level {level!r} (expected one of: {', '.join(LEVELS)})")
    try:
        get_card(card)
    except KeyError as err:
        raise TurbosimError(str(err.args[0])) from None


def generate_file(
    path: str | os.PathLike,
    n_events: int,
    *,
    seed: int = 1,
    jobs: int = 1,
    level: Level = "detector",
    card: str = "otus_ttbar",
    rejected_fraction: float = 1.0,
    force: bool = False,
    compression: uproot.compression.Compression | None = None,
    progress: bool = True,
    block_size: int | None = None,
    mantissa_bits: int | None = None,
    layout: Layout | str = DEFAULT_LAYOUT,
) -> GenerationSummary:
    """Generate ``n_events`` tt-bar events and write them to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Output ROOT file (an ``Events`` tree in the project's own format).
    n_events : int
        Events to generate.
    seed : int
        Seed of the run; with the same seed and ``n_events`` the arrays are identical,
        whatever ``jobs`` is.
    jobs : int
        Worker processes.
    level : {"detector", "parton"}
        ``"detector"``: Pythia with shower, MPI and hadronisation, then the parametric
        detector; the file holds Electron, Muon, Photon, Jet, MET and Parton.
        ``"parton"``: the hard process only; the file holds Parton.
    card : str
        Detector card name (see `turbosim_hep.generate.cards.CARDS`).
    rejected_fraction : float
        Fraction of the events that fail the reference selection to keep (detector
        level): 1 keeps every event, 0 only the selected ones. Each kept rejected event
        gets ``genWeight`` = 1 / fraction (selected events 1), so weighted counts
        estimate the whole generated sample; the choice is random and reproducible,
        and it does not change the events themselves.
    force : bool
        Overwrite an existing output.
    compression : uproot compression, optional
        Defaults to the writer's default.
    progress : bool
        Show a progress bar.
    block_size : int, optional
        Events per block (default `BLOCK_SIZE` of the level). The arrays depend on the
        seed, ``n_events`` and the block size; it is stored in the metadata.
    mantissa_bits : int, optional
        Round every float to this many mantissa bits (1 to 23) before writing, as NanoAOD
        does, for smaller files; None keeps full float32 precision.
    layout : turbosim_hep.layout.Layout or str
        The final state (default ``ejets``): the W decays Pythia forces, the selection
        of the cut-flow and of ``rejected_fraction``, the partons of ``Parton``. Its
        name is stored in the metadata.

    Returns
    -------
    GenerationSummary
    """
    card_name = card
    check_request(n_events, seed, jobs, level, card_name)
    layout = resolve_layout(layout)
    if not 0.0 <= rejected_fraction <= 1.0:
        raise TurbosimError(
            f"the rejected fraction must be between 0 and 1, got {rejected_fraction}"
        )
    if rejected_fraction < 1.0 and level != "detector":
        raise TurbosimError("--selected-only and --rejected-fraction need --level detector")
    check_output_path(path, force=force)
    block = BLOCK_SIZE[level] if block_size is None else int(block_size)
    if block < 1:
        raise TurbosimError(f"the block size must be positive, got {block}")
    if mantissa_bits is not None and not 1 <= mantissa_bits <= 23:
        raise TurbosimError(f"--mantissa-bits must be between 1 and 23, got {mantissa_bits}")
    tasks = [
        _Task(
            seed, b, start, min(block, n_events - start), level, card_name, rejected_fraction,
            mantissa_bits, layout,
        )
        for b, start in enumerate(range(0, n_events, block))
    ]
    jobs = min(jobs, len(tasks))
    cutflow = Cutflow()
    metadata = {
        "generator": "turbosim-hep generate",
        "version": __version__,
        "process": f"pp -> {layout.description}, 13 TeV, Pythia 8",
        formats.LAYOUT_KEY: layout.name,
        "pythia": importlib.metadata.version("pythia8mc"),
        "seed": seed,
        "n_events": n_events,
        "level": level,
        "card": card_name if level == "detector" else None,
        "block_size": block,
        "rejected_fraction": rejected_fraction,
        "mantissa_bits": mantissa_bits,
        "layout_version": LAYOUT_VERSION,
    }
    bar = tqdm(total=n_events, unit="ev", desc="generate", disable=not progress, smoothing=0.05)
    written = 0
    results = ordered_results(_run_block, tasks, jobs=jobs)
    try:
        with (
            contextlib.closing(results),
            EventWriter(path, force=force, metadata=metadata, compression=compression) as writer,
        ):
            pending: list[dict] = []
            waiting = 0
            for index, (generated, columns, counts) in enumerate(results):
                for name, count in counts.items():
                    cutflow.add(name, count)
                pending.append(columns)
                waiting += len(columns["event"])
                last = index == len(tasks) - 1
                if waiting >= WRITE_EVENTS or last:
                    chunk = _concatenate(pending)
                    if len(chunk["event"]) or writer.entries == 0:
                        writer.write(chunk)  # an empty last chunk still creates the tree
                    written += len(chunk["event"])
                    pending, waiting = [], 0
                bar.update(generated)
            writer.metadata["cutflow"] = cutflow.as_dict()
    finally:
        bar.close()
    return GenerationSummary(os.fspath(path), n_events, written, cutflow.as_dict())
