"""The stages of `turbosim_hep.pipeline.queues`: order, the bound on chunks in flight, and
errors in any stage stopping the others."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from turbosim_hep.pipeline.queues import max_chunks_in_flight, run_stages

#: Seconds a run may take before a test calls it hung.
HUNG_SECONDS = 20


def finishes(function: Callable[[], None]) -> BaseException | None:
    """Run ``function`` in a thread; its error (None if none), failing if it hangs."""
    outcome: list[BaseException | None] = [None]

    def target() -> None:
        try:
            function()
        except BaseException as error:  # the error run_stages raised
            outcome[0] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(HUNG_SECONDS)
    assert not thread.is_alive(), "the stages hang"
    return outcome[0]


def no_stage_threads_left() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("turbosim-stage-")]


class Counting:
    """A reader and a slow writer that count the chunks read and written."""

    def __init__(self, chunks: int, write_seconds: float):
        self.chunks = chunks
        self.write_seconds = write_seconds
        self.read = 0
        self.written: list[int] = []
        self.most_in_flight = 0

    def reader(self) -> Iterator[int]:
        for chunk in range(self.chunks):
            self.read += 1  # this chunk is read and on its way
            self.most_in_flight = max(self.most_in_flight, self.read - len(self.written))
            yield chunk

    def write(self, chunk: int) -> None:
        time.sleep(self.write_seconds)
        self.written.append(chunk)


def test_every_chunk_is_inferred_and_written_in_order():
    written = []
    run_stages(iter(range(100)), lambda chunk: 2 * chunk, written.append)
    assert written == [2 * chunk for chunk in range(100)]
    run_stages(iter(()), lambda chunk: chunk, written.append)  # an empty input
    assert len(written) == 100 and no_stage_threads_left()


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_slow_writer_holds_the_reader_back_to_the_bound(depth):
    counting = Counting(chunks=30, write_seconds=0.02)
    run_stages(counting.reader(), lambda chunk: chunk, counting.write, depth=depth)
    assert counting.written == list(range(30))
    # the reader runs ahead as far as the queues allow, and no further
    assert counting.most_in_flight == max_chunks_in_flight(depth) == 2 * depth + 3


def test_a_slow_model_holds_the_reader_back_to_the_bound():
    counting = Counting(chunks=30, write_seconds=0.0)

    def slow_infer(chunk: int) -> int:
        time.sleep(0.02)
        return chunk

    run_stages(counting.reader(), slow_infer, counting.write, depth=2)
    # the reader's chunk, the queue to the model and the model's chunk (and, for a moment,
    # the chunk on its way to the writer)
    assert 2 + 2 <= counting.most_in_flight <= 2 + 3


def endless_reader(fail_at: int | None = None) -> Iterator[int]:
    for chunk in itertools.count():
        if chunk == fail_at:
            raise ValueError("unreadable chunk")
        yield chunk


def failing_at(at: int, error: BaseException) -> Callable[[int], int]:
    def stage(chunk: int) -> int:
        if chunk == at:
            raise error
        return chunk

    return stage


@pytest.mark.parametrize(
    ("reader", "infer", "write", "error"),
    [
        (lambda: endless_reader(fail_at=5), lambda c: c, lambda c: None, ValueError),
        (endless_reader, failing_at(5, RuntimeError("model")), lambda c: None, RuntimeError),
        (endless_reader, lambda c: c, failing_at(5, OSError("disk full")), OSError),
        (endless_reader, failing_at(5, KeyboardInterrupt()), lambda c: None, KeyboardInterrupt),
    ],
    ids=["reader", "model", "writer", "ctrl-c"],
)
def test_an_error_in_any_stage_stops_every_stage(reader, infer, write, error):
    """An endless reader stops too: nothing hangs, the stage's own error is raised."""
    written = []

    def run() -> None:
        run_stages(reader(), infer, lambda chunk: (write(chunk), written.append(chunk)))

    raised = finishes(run)
    assert isinstance(raised, error)
    assert written == list(range(len(written))) and len(written) <= 5
    assert no_stage_threads_left()


def test_the_first_error_wins_over_the_stages_it_stopped():
    def write(chunk: int) -> None:
        raise OSError("disk full")

    def infer(chunk: int) -> int:
        time.sleep(0.01)
        return chunk

    raised = finishes(lambda: run_stages(endless_reader(), infer, write))
    assert isinstance(raised, OSError) and str(raised) == "disk full"
