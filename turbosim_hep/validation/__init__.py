"""Validation of a Turbo-Sim model against the detector truth, end to end.

The same coffea analysis (`turbosim_hep.validation.processor`) runs on the truth and on
the fast simulation (`turbosim_hep.validation.runner` runs it over the files);
`turbosim_hep.validation.report` turns its output into distances, the paper's Table 1,
plots and saved histograms. ``turbosim-hep validate``, the analysis job in
``analysis/`` and the demo all call `validate` or `validate_fileset`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from turbosim_hep import arguments
from turbosim_hep.arguments import ArgumentError
from turbosim_hep.errors import InputError
from turbosim_hep.io import EventFile, formats, read_metadata
from turbosim_hep.layout import BUILTIN_LAYOUTS, DEFAULT_LAYOUT, Layout, resolve_layout
from turbosim_hep.validation import processor, report, runner, unfolding


def validate(
    truth: str | os.PathLike | Sequence[str | os.PathLike],
    simulation: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    unfolded: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    **kwargs,
) -> dict:
    """Compare a fast simulation with the truth and write the report.

    Parameters
    ----------
    truth : path or list of paths
        Truth events: a Delphes file or one of the project's files (detector objects,
        and partons for the parton-level columns).
    simulation : path or list of paths
        Output(s) of ``turbosim-hep simulate`` (or of ``unfold``, whose unfolded partons
        are then compared with the truth partons).
    output_dir : str or os.PathLike
        Report directory (see `turbosim_hep.validation.report.write_report`).
    unfolded : path or list of paths, optional
        Output(s) of ``turbosim-hep unfold``: the parton-level quantities and the b
        columns of Table 1 then compare these unfolded partons with the truth, and the
        report's ``unfolding`` section judges them at parton level (masses, classifier
        test; with ``unfold --samples K`` of the truth files, the coverage of the
        posterior and its calibration plot).
    **kwargs
        Passed to `validate_fileset` (``executor``, ``workers``, ``client``, ...).

    Returns
    -------
    dict
        The metrics (`turbosim_hep.validation.report.compute_metrics`), as written to
        ``metrics.json``; ``result["table1"]`` holds the ten KS distances of Table 1.
    """
    fileset = {
        report.TRUTH: arguments.input_paths(truth, "truth"),
        report.SIMULATION: arguments.input_paths(simulation, "simulation"),
    }
    if unfolded is not None:
        fileset[report.UNFOLDED] = arguments.input_paths(unfolded, "unfolded")
    return validate_fileset(
        fileset, output_dir, unfolded=report.UNFOLDED if unfolded is not None else None, **kwargs
    )


def validate_fileset(
    fileset: Mapping[str, Sequence[str | os.PathLike]],
    output_dir: str | os.PathLike,
    *,
    truth: str = report.TRUTH,
    simulation: str = report.SIMULATION,
    unfolded: str | None = None,
    executor: str = "iterative",
    workers: int = 1,
    client=None,
    chunksize: int = 200_000,
    bins: int = 80,
    plots: bool | Sequence[str] = True,
    force: bool = False,
    progress: bool = True,
    channel: str | None = None,
    layout: Layout | str | None = None,
) -> dict:
    """Run the validation processor over a fileset and write the report.

    Parameters
    ----------
    fileset : mapping
        ``{dataset: [file, ...]}`` holding at least the ``truth`` and ``simulation``
        datasets (any others are processed and histogrammed too).
    output_dir : str or os.PathLike
        Report directory.
    truth, simulation, unfolded : str
        Dataset names the report compares.
    executor : {"iterative", "futures", "dask"}
        coffea executor (`turbosim_hep.validation.runner.make_executor`); ``dask`` needs
        ``client``.
    workers : int
        Processes of the futures executor.
    client : distributed.Client, optional
        Dask client for the dask executor.
    chunksize : int
        Events per coffea chunk.
    bins : int
        Bins of every histogram.
    plots : bool or sequence of str
        Plot every quantity, none, or the named ones
        (`turbosim_hep.validation.report.write_report`).
    force : bool
        Replace an existing, non-empty report directory.
    progress : bool
        Show progress bars.
    channel : str, optional
        The selection of every dataset: the layout's reference one (the default; for
        ``ejets`` the paper's Table 1), its charge conjugate, or ``both``.
    layout : turbosim_hep.layout.Layout or str, optional
        The final state of the events (a `Layout`, a built-in name or a layout file).
        Default: the built-in layout the simulation's metadata names (``simulate``
        writes it), else ``ejets``.

    Returns
    -------
    dict
        The metrics written to ``metrics.json``.

    Raises
    ------
    InputError
        Before the analysis runs, if a file fails `check_input` (the truth and the
        simulation need detector objects, the unfolded events partons); during it, if
        reading a chunk of a file fails (`turbosim_hep.validation.runner.run_fileset`).
    OutputError
        If the report cannot be written, or its directory holds one of the inputs.
    """
    for name in (truth, simulation) + ((unfolded,) if unfolded else ()):
        if name not in fileset:
            raise ArgumentError("fileset", f"has no dataset {name!r}")
    fileset = {
        dataset: arguments.input_paths(files, f"fileset[{dataset!r}]")
        for dataset, files in fileset.items()
    }
    arguments.choice(executor, runner.EXECUTORS, "executor")
    workers = arguments.POSITIVE_INT.check(workers, "workers")
    chunksize = arguments.POSITIVE_INT.check(chunksize, "chunksize")
    bins = arguments.POSITIVE_INT.check(bins, "bins")
    layout = _layout_of(fileset[simulation]) if layout is None else resolve_layout(layout)
    channel = channel or layout.reference_channel
    layout.channels_of(channel)  # ArgumentError naming the choices
    # fail on bad inputs and outputs before the long run
    needs = {truth: _DETECTOR, simulation: _DETECTOR} | ({unfolded: _PARTONS} if unfolded else {})
    inputs = []
    for dataset, files in fileset.items():
        for path in files:
            check_input(path, **needs.get(dataset, _NOTHING), layout=layout)
            inputs.append(path)
    report.check_report_directory(output_dir, force=force, inputs=inputs)
    output = runner.run_fileset(
        fileset,
        processor.TtbarValidationProcessor(bins=bins, channel=channel, layout=layout),
        executor=runner.make_executor(executor, workers=workers, client=client, progress=progress),
        chunksize=chunksize,
    )
    posterior = None
    if unfolded:
        # the K samples of each unfolded event beside its true partons: the coverage
        posterior = unfolding.matched_posterior(
            fileset[unfolded], fileset[truth], channel=channel, layout=layout
        )
    result = report.compute_metrics(
        output, truth=truth, simulation=simulation, unfolded=unfolded, posterior=posterior,
        layout=layout,
    )
    report.write_report(output, result, output_dir, force=force, plots=plots, layout=layout)
    return result


#: What the files of a dataset must hold: the truth and the simulation are compared at
#: detector level, the unfolded events at parton level; other datasets are only read.
_DETECTOR = {"detector": True, "partons": False}
_PARTONS = {"detector": False, "partons": True}
_NOTHING = {"detector": False, "partons": False}


def check_input(
    path: str | os.PathLike, *, detector: bool, partons: bool, layout: Layout = DEFAULT_LAYOUT
) -> None:
    """Check a file of the analysis with the readers' checks, before coffea runs.

    Raises
    ------
    InputError
        Naming the file: missing, not a readable (complete) ROOT file of a known
        format, of another layout, lacking the detector objects or the partons asked
        for, holding no events, or with NaN or infinite event weights.
    """
    event_file = EventFile(path, layout)
    event_file.require(detector=detector, partons=partons)
    if event_file.num_entries == 0:
        raise InputError(path, f"tree '{event_file.tree.name}' holds no events")
    event_file.check_weights()


def _layout_of(paths: Sequence[str]) -> Layout:
    """The built-in layout the first file's metadata names (``simulate`` outputs and
    ``generate`` files say it), else ``ejets``."""
    try:
        stored = read_metadata(paths[0]).get(formats.LAYOUT_KEY)
    except Exception:  # missing or unreadable: check_input then says what is wrong
        stored = None
    return BUILTIN_LAYOUTS.get(stored, DEFAULT_LAYOUT)


__all__ = ["check_input", "validate", "validate_fileset"]
