"""Running a processor over a fileset with coffea: executors and the grouping of files by schema.

This is the one place of the validation that runs coffea. `run_fileset` groups the files
of a ``{dataset: [file, ...]}`` fileset by the schema their format needs (Delphes, the
project's own files) and runs coffea's `Runner` once per group with the iterative,
futures or Dask executor of `make_executor`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence

from coffea import processor

from turbosim_hep.errors import InputError, TurbosimError
from turbosim_hep.io import schemas
from turbosim_hep.validation.processor import TtbarValidationProcessor

#: Executor names `make_executor` understands.
EXECUTORS = ("iterative", "futures", "dask")


def make_executor(name: str = "iterative", *, workers: int = 1, client=None, progress: bool = True):
    """A coffea executor by name.

    Parameters
    ----------
    name : {"iterative", "futures", "dask"}
        ``iterative`` runs in this process, ``futures`` in a pool of ``workers``
        processes, ``dask`` on the `distributed.Client` given as ``client`` (for instance
        of a ``LocalCluster`` or of a batch-system cluster).
    workers : int
        Processes of the futures executor.
    client : distributed.Client, optional
        Required by the dask executor.
    progress : bool
        Show coffea's progress bar.

    Notes
    -----
    The local executors read local files, whose errors do not go away on a second try:
    they do not retry a failed chunk (coffea's default retries three times).
    """
    if name == "iterative":
        return processor.IterativeExecutor(status=progress, retries=0)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers, status=progress, retries=0)
    if name == "dask":
        if client is None:
            raise ValueError("the dask executor needs a distributed.Client")
        return processor.DaskExecutor(client=client, status=progress)
    raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")


def group_by_schema(
    fileset: Mapping[str, Sequence[str | os.PathLike] | str | os.PathLike],
) -> dict[type, dict[str, dict]]:
    """The files of a fileset grouped by the NanoEvents schema that reads them.

    Parameters
    ----------
    fileset : mapping
        ``{dataset: [file, ...]}`` (a single path stands for a one-file list).

    Returns
    -------
    dict
        ``{schema: {dataset: {"files": {absolute path: tree name}}}}``, one coffea
        fileset per schema (`turbosim_hep.io.schemas.schema_for`).

    Raises
    ------
    InputError
        If a file is missing or not a file turbosim-hep reads.
    """
    groups: dict[type, dict[str, dict]] = {}
    for dataset, files in fileset.items():
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        for path in files:
            tree, schema = schemas.schema_for(path)
            entry = groups.setdefault(schema, {}).setdefault(dataset, {"files": {}})
            entry["files"][os.path.abspath(os.fspath(path))] = tree
    return groups


def run_fileset(
    fileset: Mapping[str, Sequence[str | os.PathLike]],
    processor_instance: processor.ProcessorABC | None = None,
    *,
    executor=None,
    chunksize: int = 200_000,
    maxchunks: int | None = None,
) -> dict:
    """Run a processor over a fileset with coffea's `Runner`.

    Parameters
    ----------
    fileset : mapping
        ``{dataset: [file, ...]}``. Files may be Delphes or the project's own files; each
        format is read with its schema (`group_by_schema`).
    processor_instance : ProcessorABC, optional
        Defaults to a `TtbarValidationProcessor`.
    executor : coffea executor, optional
        Defaults to ``make_executor("iterative")``.
    chunksize, maxchunks : int
        Passed to `coffea.processor.Runner`.

    Returns
    -------
    dict
        The accumulated output of the processor.

    Raises
    ------
    InputError
        If a file is missing or not a file turbosim-hep reads, or processing a chunk of
        a file fails (`chunk_error`: the original error, naming the file).
    """
    processor_instance = processor_instance or TtbarValidationProcessor()
    executor = executor or make_executor("iterative")
    outputs = []
    for schema, group in group_by_schema(fileset).items():
        runner = processor.Runner(
            executor=executor, schema=schema, chunksize=chunksize, maxchunks=maxchunks
        )
        try:
            with _held_output(not executor.status):
                outputs.append(runner(group, processor_instance))
        except Exception as err:
            error = chunk_error(err)
            if error is None:
                raise
            raise error from err
    if not outputs:
        raise ValueError("the fileset holds no files")
    return processor.accumulate(outputs)


@contextlib.contextmanager
def _held_output(hold: bool) -> Iterator[None]:
    """Hold what is written to ``sys.stdout`` and ``sys.stderr`` inside, written out
    without coffea's progress bars on success.

    coffea draws progress bars even when asked not to (its executors pass
    ``disable=not status`` to rich, which ignores it), and its futures executor prints
    the traceback of a failed chunk before raising the error, which `chunk_error`
    reports in one line. Without progress bars (which need the terminal) that output is
    held, dropped on failure, and written without the bars on success (what a
    processor prints stays).
    """
    if not hold:
        yield
        return
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield
    sys.stdout.write(_without_bars(out.getvalue()))
    sys.stderr.write(_without_bars(err.getvalue()))


#: The bar glyph of rich's progress bars, which coffea draws.
_BAR = "\u2501"


def _without_bars(text: str) -> str:
    """``text`` without the lines of rich progress bars."""
    return "".join(line for line in text.splitlines(keepends=True) if _BAR not in line)


#: coffea's message when work on a file fails: "Failed processing file: WorkItem(...,
#: filename='...', ...). The error was: OSError('...')." (also "Failed to open file",
#: "Failed creating nanoevents").
_COFFEA_FAILURE = re.compile(
    r"Failed [^:]*: WorkItem\(.*?filename='(?P<file>[^']*)'.*The error was: (?P<error>.*)\.",
    re.DOTALL,
)
#: The type and first argument of an exception's repr.
_REPR = re.compile(r"(?P<type>\w+)\((?P<quote>['\"])(?P<message>.*?)(?P=quote)", re.DOTALL)


def chunk_error(err: BaseException) -> TurbosimError | None:
    """The one-line error of a failure inside a coffea chunk, or None for another error.

    coffea wraps an error raised while it reads or processes a chunk in a plain
    `Exception` naming its work item. The result is the original error if it is a
    `TurbosimError`, else an `InputError` naming the file with the original error's
    type and message (from the exception chain, or from coffea's message when the chain
    was lost crossing processes).
    """
    match = _COFFEA_FAILURE.search(str(err))
    if match is None:
        return None
    cause = err.__cause__
    while cause is not None and _COFFEA_FAILURE.search(str(cause)):
        cause = cause.__cause__
    if isinstance(cause, TurbosimError):
        return cause
    if isinstance(cause, Exception) and type(cause).__name__ != "_RemoteTraceback":
        message = cause.args[0] if cause.args and isinstance(cause.args[0], str) else str(cause)
        original = f"{type(cause).__name__}: {message}"
    else:
        original = _from_repr(match["error"])
    original = " ".join(original.split())
    if len(original) > 200:
        original = original[:197] + "..."
    return InputError(match["file"], f"cannot be analysed ({original})")


def _from_repr(text: str) -> str:
    """``TYPE: MESSAGE`` from an exception's repr ``TYPE('MESSAGE', ...)`` (all that is
    left of an error raised in another process)."""
    parts = _REPR.match(text)
    original = f"{parts['type']}: {parts['message']}" if parts else text
    return original.replace("\\n", " ")


__all__ = ["EXECUTORS", "chunk_error", "group_by_schema", "make_executor", "run_fileset"]
