"""Outputs are complete or absent, never an input, never another run's (`turbosim_hep.outputs`)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from turbosim_hep import outputs
from turbosim_hep.errors import OutputError, WriteError
from turbosim_hep.outputs import AtomicOutput, check_output_path, owner_tag


def temporaries(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_output_appears_only_when_complete(tmp_path):
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), AtomicOutput(out) as output:
        output.write_bytes(b"half")
        raise RuntimeError("failed while writing")
    assert os.listdir(tmp_path) == []
    with AtomicOutput(out) as output:
        assert os.path.basename(output.tmp_path).startswith(f".out.txt.{owner_tag()}.")
        output.write_bytes(b"whole")
    assert out.read_bytes() == b"whole" and temporaries(tmp_path) == []


def test_a_new_output_written_meanwhile_is_never_replaced(tmp_path):
    """Two runs to one new output: the later to finish fails and removes its temporary."""
    out = tmp_path / "out.txt"
    first, second = AtomicOutput(out), AtomicOutput(out)
    with first:
        first.write_bytes(b"first")
    with pytest.raises(OutputError, match="another run wrote it meanwhile"), second:
        second.write_bytes(b"second")
    assert out.read_bytes() == b"first" and temporaries(tmp_path) == []
    with AtomicOutput(out, force=True) as forced:
        forced.write_bytes(b"forced")
    assert out.read_bytes() == b"forced"


def test_file_systems_without_hard_links_still_refuse_to_replace(tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "out.txt"
    first, second = AtomicOutput(out), AtomicOutput(out)
    with first:
        first.write_bytes(b"first")
    with pytest.raises(OutputError, match="meanwhile"), second:
        second.write_bytes(b"second")
    assert out.read_bytes() == b"first" and temporaries(tmp_path) == []


def test_a_report_directory_written_meanwhile_is_never_replaced(tmp_path):
    out = tmp_path / "report"
    first = AtomicOutput(out, directory=True)
    second = AtomicOutput(out, directory=True)
    with first:
        Path(first.tmp_path, "a.txt").write_text("first")
    with pytest.raises(OutputError, match="meanwhile"), second:
        Path(second.tmp_path, "a.txt").write_text("second")
    assert (out / "a.txt").read_text() == "first" and temporaries(tmp_path) == []
    with AtomicOutput(out, force=True, directory=True) as forced:
        Path(forced.tmp_path, "b.txt").write_text("forced")
    assert os.listdir(out) == ["b.txt"] and temporaries(tmp_path) == []


def test_stale_temporaries_of_gone_processes_are_removed(tmp_path):
    """A killed run's temporaries go with the next run to the same output; those of
    running processes (a concurrent run) and of other hosts stay."""
    host = owner_tag().partition("@")[2]
    gone = dead_pid()
    stale = tmp_path / f".out.root.{gone}@{host}.abcd1234.tmp"
    stale_part = tmp_path / f".out.root.{gone}@{host}.part0.efgh5678.tmp"
    running = tmp_path / f".out.root.{os.getpid()}@{host}.ijkl9012.tmp"
    elsewhere = tmp_path / f".out.root.{gone}@another-host.mnop3456.tmp"
    other_output = tmp_path / f".other.root.{gone}@{host}.qrst7890.tmp"
    for path in (stale, stale_part, running, elsewhere, other_output):
        path.write_bytes(b"left behind")
    with AtomicOutput(tmp_path / "out.root") as output:
        output.write_bytes(b"new")
    assert temporaries(tmp_path) == sorted(p.name for p in (running, elsewhere, other_output))


def test_write_errors_are_one_line_naming_the_output(tmp_path, monkeypatch):
    """A full disk (mocked: ENOSPC from write) is a `WriteError`; nothing is left."""

    class FullDisk:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs, "open", FullDisk, raising=False)
    out = tmp_path / "out.h5"
    with pytest.raises(WriteError) as error, AtomicOutput(out) as output:
        output.write_bytes(b"data")
    assert str(error.value) == f"cannot write {out}: no space left on device"
    assert os.listdir(tmp_path) == []


def test_an_output_may_not_be_an_input(tmp_path):
    data = tmp_path / "data.h5"
    data.write_bytes(b"input")
    (tmp_path / "dir").mkdir()
    os.link(data, tmp_path / "hard.h5")
    os.symlink(data, tmp_path / "soft.h5")
    for name in ("data.h5", "hard.h5", "soft.h5"):
        for force in (False, True):
            with pytest.raises(OutputError, match="is the input"):
                check_output_path(tmp_path / name, force=force, inputs=[data])
    with pytest.raises(OutputError, match="holds the input"):
        check_output_path(tmp_path, force=True, directory=True, inputs=[data])
    assert check_output_path(tmp_path / "dir", force=True, directory=True, inputs=[data])
    assert data.read_bytes() == b"input"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_directory_that_takes_no_files_is_refused_before_any_work():
    with pytest.raises(OutputError, match="cannot create a file in /proc"):
        check_output_path("/proc/out.root")
