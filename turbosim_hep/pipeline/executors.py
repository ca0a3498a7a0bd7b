"""Where the tasks of a run execute: this process, local spawned processes or a Dask cluster.

`ordered_results` is the one way turbosim-hep runs independent tasks (input files of
``simulate`` and ``unfold``, blocks of ``generate``): every task is submitted at once,
the results come back in task order as they are ready, the first error is raised, and
an error, a Ctrl-C or closing the iterator early stops the work still running.

Local workers are spawned, not forked (torch and fork do not mix), and ignore SIGINT:
Ctrl-C reaches the main process, which stops them.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from turbosim_hep.errors import TurbosimError

Task = TypeVar("Task")
Result = TypeVar("Result")


def ordered_results(
    function: Callable[[Task], Result],
    tasks: Sequence[Task],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
) -> Iterator[Result]:
    """``function(task)`` for every task, in task order.

    Parameters
    ----------
    function : callable
        A module-level function (it is pickled to the workers).
    tasks : sequence
        Its arguments, picklable.
    jobs : int
        Local worker processes; 1 runs the tasks one after the other in this process.
        Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask distributed scheduler whose workers run the tasks.

    Yields
    ------
    object
        The result of each task, in the order of ``tasks``.

    Raises
    ------
    TurbosimError
        If the Dask scheduler cannot be reached.

    Notes
    -----
    Close the iterator (``contextlib.closing``) when the results are not all consumed,
    so that the workers stop at once.
    """
    if scheduler is not None:
        return _dask(function, tasks, scheduler)
    if jobs == 1:
        return (function(task) for task in tasks)
    return _local(function, tasks, jobs)


def _local(
    function: Callable[[Task], Result], tasks: Sequence[Task], jobs: int
) -> Iterator[Result]:
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_ignore_sigint)
    futures = []
    try:
        futures = [pool.submit(function, task) for task in tasks]
        for future in futures:
            yield future.result()
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(
    function: Callable[[Task], Result], tasks: Sequence[Task], scheduler: str
) -> Iterator[Result]:
    from distributed import Client

    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise TurbosimError(f"cannot reach the Dask scheduler at {scheduler} ({err})") from err
    with client:
        futures = [client.submit(function, task, pure=False) for task in tasks]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes instead of waiting for their tasks."""
    for process in list((pool._processes or {}).values()):
        process.terminate()
