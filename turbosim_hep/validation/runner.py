"""Running a processor over a fileset with coffea: executors and the grouping of files by schema.

This is the one place of the validation that runs coffea. `run_fileset` groups the files
of a ``{dataset: [file, ...]}`` fileset by the schema their format needs (Delphes, the
project's own files) and runs coffea's `Runner` once per group with the iterative,
futures or Dask executor of `make_executor`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from coffea import processor

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
    """
    if name == "iterative":
        return processor.IterativeExecutor(status=progress)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers, status=progress)
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
        If a file is missing or not a file turbosim-hep reads.
    """
    processor_instance = processor_instance or TtbarValidationProcessor()
    executor = executor or make_executor("iterative")
    outputs = []
    for schema, group in group_by_schema(fileset).items():
        runner = processor.Runner(
            executor=executor, schema=schema, chunksize=chunksize, maxchunks=maxchunks
        )
        outputs.append(runner(group, processor_instance))
    if not outputs:
        raise ValueError("the fileset holds no files")
    return processor.accumulate(outputs)


__all__ = ["EXECUTORS", "group_by_schema", "make_executor", "run_fileset"]
