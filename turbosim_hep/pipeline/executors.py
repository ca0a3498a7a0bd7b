"""Where the tasks of a run execute: this process, local spawned processes or a Dask cluster.

`ordered_results` is the one way turbosim-hep runs independent tasks (input files of
``simulate`` and ``unfold``, blocks of ``generate``): every task is submitted at once,
the results come back in task order as they are ready, the first error is raised, and
an error, a Ctrl-C or closing the iterator early stops the work still running.

Local workers are spawned, not forked (torch and fork do not mix). They ignore SIGINT
and SIGTERM: Ctrl-C and a batch system's SIGTERM reach the main process too, which stops
them and cleans up. They die with the main process: on Linux the kernel kills them when
it dies, even of SIGKILL (``PR_SET_PDEATHSIG``, which acts when the thread that started
them ends: the one iterating the results, which outlives the pool); elsewhere a thread of
each worker exits it once its parent is gone. No worker computes for a run that is over.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

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
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )
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


#: Seconds to wait for a Dask scheduler to answer before giving up.
SCHEDULER_TIMEOUT_SECONDS = 30
def _dask(
    function: Callable[[Task], Result], tasks: Sequence[Task], scheduler: str
) -> Iterator[Result]:
    from distributed import Client

    print(
        f"connecting to the Dask scheduler at {scheduler} (giving up after "
        f"{SCHEDULER_TIMEOUT_SECONDS} s)",
        file=sys.stderr,
    )
    try:
        client = Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_SECONDS}s")
    except (OSError, TimeoutError) as err:
        raise TurbosimError(
            f"cannot reach the Dask scheduler at {scheduler} within "
            f"{SCHEDULER_TIMEOUT_SECONDS} s ({_first_line(err)})"
        ) from err
    with client:
        futures = [client.submit(function, task, pure=False) for task in tasks]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


#: Seconds between two checks of a worker that its parent is alive (without prctl).
PARENT_CHECK_SECONDS = 1.0
#: ``PR_SET_PDEATHSIG`` of <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1


def _start_worker(parent: int) -> None:
    """Initialise a worker: leave the stop signals to the parent, and die with it.

    Parameters
    ----------
    parent : int
        Process id of the main process.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # tqdm's default lock is a named semaphore, which a killed worker would leave for
    # the resource tracker to warn of at exit; the workers draw no progress bars.
    tqdm.set_lock(threading.RLock())
    if not _kill_with_parent():
        threading.Thread(target=_exit_without_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the worker could watch it
        os._exit(1)


def _kill_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _exit_without_parent(parent: int) -> None:
    """Exit this process as soon as its parent is gone (it is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes instead of waiting for their tasks (they ignore
    SIGTERM)."""
    for process in list((pool._processes or {}).values()):
        process.kill()
