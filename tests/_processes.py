"""The command line in child processes: interruptible, observed, and always ended.

`start` runs ``turbosim-hep`` so that Ctrl-C (SIGINT) interrupts it whatever the test
process inherited; `end` kills it and every process it started, for the ``finally`` of
each test, so that a failing test never leaves work running.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil


def start(*args: object) -> subprocess.Popen:
    """``turbosim-hep ARGS`` in a child process, with pipes for its output.

    A shell that starts the tests in the background (``pytest &``) makes them ignore
    SIGINT, and a child would inherit that: Python then installs no KeyboardInterrupt
    handler and Ctrl-C does nothing. The child is started with SIGINT handled, which
    becomes the default disposition at its exec.
    """
    with _sigint_handled():
        return subprocess.Popen(
            [sys.executable, "-m", "turbosim_hep", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@contextlib.contextmanager
def _sigint_handled() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def descendants(process: subprocess.Popen) -> list[psutil.Process]:
    """The processes ``process`` started (its workers), recursively; none once it is gone."""
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def workers(process: subprocess.Popen) -> list[psutil.Process]:
    """The spawned multiprocessing workers among the descendants of ``process``."""
    found = []
    for child in descendants(process):
        with contextlib.suppress(psutil.Error):
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
    return found


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` that still run (a zombie has ended: it only awaits reaping)."""
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def end(process: subprocess.Popen, others: list[psutil.Process] = ()) -> None:
    """Kill ``process``, its descendants and ``others`` (workers seen earlier), and reap it."""
    for child in [*descendants(process), *others]:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    if process.poll() is None:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        stream.close()
