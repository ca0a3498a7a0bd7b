"""Three stages connected by bounded queues, so that the slowest one sets the rate.

A reader thread advances the chunk iterator (reading and preparing), the calling thread
infers (it owns the device), and a writer thread writes, each as fast as it can: a
queue of `QUEUE_CHUNKS` chunks between two stages absorbs the chunk-to-chunk jitter of
either side, and its bound stops a fast stage from running ahead of a slow one, which
keeps the memory bounded whatever the size of the input.

An error in any stage stops the others: each stage checks, while it waits on a queue,
whether another has failed, and the first error is raised in the calling thread once
the stages have stopped (a stage busy with a chunk finishes that chunk first; the
threads never outlive the call, so nothing writes to a closed output).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

#: Chunks each queue between two stages holds. With one chunk in each stage besides, at
#: most ``2 * QUEUE_CHUNKS + 3`` chunks are in memory (`max_chunks_in_flight`).
QUEUE_CHUNKS = 2
#: Seconds between two checks of a stage waiting on a queue for another stage's failure.
POLL_SECONDS = 0.05

Item = TypeVar("Item")
Done = TypeVar("Done")


class _Stopped(Exception):
    """Raised in a stage waiting on a queue when another stage has failed."""


class _End:
    """The item after the last one of a queue."""


_END = _End()


class _Link(Generic[Item]):
    """A bounded queue between two stages that gives up once the run is stopped.

    Parameters
    ----------
    depth : int
        Items the queue holds.
    stopped : threading.Event
        Set when a stage has failed.
    """

    def __init__(self, depth: int, stopped: threading.Event):
        self._queue: queue.Queue[Item | _End] = queue.Queue(depth)
        self._stopped = stopped

    def put(self, item: Item | _End) -> None:
        """Append ``item``, waiting for room; raises `_Stopped` if the run stops meanwhile."""
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> Item | _End:
        """The next item, waiting for one; raises `_Stopped` if the run stops meanwhile."""
        while not self._stopped.is_set():
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        raise _Stopped


class _Failures:
    """The errors of the stages, in the order they happened; the first one stops the run."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self._errors: list[BaseException] = []

    def record(self, error: BaseException) -> None:
        """Keep ``error`` (not a stage's reaction to another's failure) and stop the run."""
        if not isinstance(error, _Stopped):
            self._errors.append(error)
        self.stopped.set()

    def raise_first(self) -> None:
        """Raise the first error recorded, if any."""
        if self._errors:
            raise self._errors[0]


def max_chunks_in_flight(depth: int = QUEUE_CHUNKS) -> int:
    """Chunks read and not yet written at most: one in each stage and ``depth`` per queue."""
    return 2 * depth + 3


def run_stages(
    chunks: Iterator[Item],
    infer: Callable[[Item], Done],
    write: Callable[[Done], None],
    depth: int = QUEUE_CHUNKS,
) -> None:
    """Read, infer and write every chunk, the three stages running concurrently.

    Parameters
    ----------
    chunks : iterator
        The read stage; advanced in a reader thread.
    infer : callable
        The infer stage; runs in the calling thread, one chunk at a time, in order.
    write : callable
        The write stage; runs in a writer thread, one chunk at a time, in order.
    depth : int
        Chunks each queue between two stages holds.

    Raises
    ------
    BaseException
        The first error of any stage (a Ctrl-C in the calling thread included), once
        every stage has stopped.
    """
    failures = _Failures()
    to_infer: _Link[Item] = _Link(depth, failures.stopped)
    to_write: _Link[Done] = _Link(depth, failures.stopped)
    threads = [
        threading.Thread(target=_guarded, args=(_read, failures, chunks, to_infer),
                         name="turbosim-stage-read"),
        threading.Thread(target=_guarded, args=(_write, failures, to_write, write),
                         name="turbosim-stage-write"),
    ]
    for thread in threads:
        thread.start()
    try:
        _infer(to_infer, infer, to_write)
    except BaseException as error:
        failures.record(error)
    finally:
        for thread in threads:
            thread.join()
    failures.raise_first()


def _guarded(stage: Callable[..., None], failures: _Failures, *args: object) -> None:
    """Run a stage in its thread, recording its error instead of losing it there."""
    try:
        stage(*args)
    except BaseException as error:
        failures.record(error)


def _read(chunks: Iterator[Item], to_infer: _Link[Item]) -> None:
    for chunk in chunks:
        to_infer.put(chunk)
    to_infer.put(_END)


def _infer(to_infer: _Link[Item], infer: Callable[[Item], Done], to_write: _Link[Done]) -> None:
    while not isinstance(chunk := to_infer.get(), _End):
        to_write.put(infer(chunk))
    to_write.put(_END)


def _write(to_write: _Link[Done], write: Callable[[Done], None]) -> None:
    while not isinstance(chunk := to_write.get(), _End):
        write(chunk)
