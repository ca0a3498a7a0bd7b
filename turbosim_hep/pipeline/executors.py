"""Where the tasks of a parallel run execute: local spawned processes or a Dask cluster."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm

from turbosim_hep.errors import TurbosimError


def run_local(
    function: Callable[..., Any], tasks: Sequence[tuple], jobs: int, progress: bool
) -> list[Any]:
    """``function(*task)`` of every task in ``jobs`` spawned processes, results in task order."""
    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [pool.submit(function, *task) for task in tasks]
        return _collect(futures, progress)


def run_dask(
    function: Callable[..., Any], tasks: Sequence[tuple], scheduler: str, progress: bool
) -> list[Any]:
    """``function(*task)`` of every task on a Dask distributed cluster, results in task order."""
    from distributed import Client

    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise TurbosimError(f"cannot reach the Dask scheduler at {scheduler} ({err})") from err
    with client:
        futures = [client.submit(function, *task, pure=False) for task in tasks]
        return _collect(futures, progress)


def _collect(futures: list, progress: bool) -> list[Any]:
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
