"""Output files that are complete or absent, never an input, never another run's.

Every file the package writes (ROOT, HDF5, checkpoints, logs, report directories) goes
through `check_output_path` before any work starts and through `AtomicOutput` while it
is written:

- the output is written to a hidden temporary beside it, ``.NAME.PID@HOST.XXXX.tmp``,
  renamed into place only when complete; a failure, Ctrl-C or SIGTERM removes it;
- an output that is the same file as an input (or a report directory holding one) is
  refused, with or without ``force``, so that writing can never destroy an input;
- an output that exists and is not a regular file (a device such as /dev/null, a FIFO,
  a socket) is refused, with or without ``force``: renaming over it would replace the
  device node (breaking the machine when run as root), and nothing else is written;
- without ``force`` the final rename never replaces a file that appeared meanwhile (a
  concurrent run to the same output): the later run fails and removes its temporary;
- the temporaries of a killed run (SIGKILL leaves no chance to clean up) carry the
  process id and host of their owner, so the next run to the same output removes
  those whose owner is gone;
- an `OSError` of writing (full disk, read-only file system) becomes a one-line
  `turbosim_hep.errors.WriteError` naming the output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterable, Iterator
from types import TracebackType

from turbosim_hep.errors import OutputError, WriteError, check_parent_directory, os_reason

#: `os.link` errors of file systems without hard links, where the final rename of a new
#: output falls back to checking that the output does not exist just before renaming.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV}

PathLike = str | os.PathLike


def check_output_path(
    path: PathLike,
    *,
    force: bool = False,
    directory: bool = False,
    inputs: Iterable[PathLike] = (),
) -> str:
    """Check that an output file (or report directory) may be written.

    Parameters
    ----------
    path : str or os.PathLike
        The output.
    force : bool
        Allow replacing an existing output.
    directory : bool
        The output is a directory: it may exist if it is empty (or with ``force``).
    inputs : iterable of paths
        The files the run reads (inputs, model): the output may not be one of them, nor,
        for a directory, hold one of them.

    Returns
    -------
    str
        The path as a string.

    Raises
    ------
    OutputError
        If the output's directory does not exist or is not writable, the output is an
        input, exists and is not a regular file (a directory for ``directory``), or
        exists (a non-empty directory) and ``force`` is not set.
    """
    path = check_parent_directory(path)
    if directory and os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(path, "exists and is not a directory")
    if not directory and os.path.isdir(path):
        raise OutputError(path, "is a directory")
    if not directory:
        check_regular_file(path)
    check_not_an_input(path, inputs)
    if directory and os.path.isdir(path) and os.listdir(path) and not force:
        raise OutputError(path, "exists already and is not empty (use --force to replace it)")
    if not directory and os.path.exists(path) and not force:
        raise OutputError(path, "exists already (use --force to overwrite it)")
    return path


def check_not_an_input(output: PathLike, inputs: Iterable[PathLike]) -> None:
    """Refuse an output that is one of ``inputs`` (the same file: hard or symbolic links
    included) or, being a directory, holds one of them.

    Raises
    ------
    OutputError
        Naming the output and the input it would destroy.
    """
    output = os.fspath(output)
    if not os.path.exists(output):
        return
    inside = os.path.realpath(output) + os.sep
    for path in map(os.fspath, inputs):
        if not os.path.exists(path):
            continue  # the input's reader says what is wrong with it
        if os.path.samefile(output, path):
            raise OutputError(output, f"is the input {path}; choose another output")
        if os.path.isdir(output) and os.path.realpath(path).startswith(inside):
            raise OutputError(output, f"holds the input {path}; choose another output")


def check_regular_file(path: str) -> None:
    """Refuse an existing output that is not a regular file (followed through links).

    ``--force`` replaces a file by renaming over it; renamed over a device node such as
    /dev/null, a FIFO or a socket, the node itself would be gone.

    Raises
    ------
    OutputError
        Naming the output and what it is.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # a new output (or a dangling link, which the rename replaces)
    except OSError as err:
        raise OutputError(path, f"cannot be checked ({os_reason(err)})") from err
    if not stat.S_ISREG(mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise OutputError(
            path, f"exists and is {kind}, not a regular file; choose another output"
        )


#: What an existing output that is not a regular file is, for `check_regular_file`.
_FILE_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


@contextlib.contextmanager
def writing(path: PathLike) -> Iterator[None]:
    """Turn an `OSError` raised inside into a `WriteError` naming ``path``."""
    try:
        yield
    except OSError as err:
        raise WriteError(os.fspath(path), os_reason(err)) from err


def owner_tag() -> str:
    """``PID@HOST`` of this process: the owner recorded in the name of its temporaries."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "localhost"
    return f"{os.getpid()}@{host}"


def temporary_prefix(path: PathLike) -> str:
    """The name prefix of this process's temporaries of the output ``path``:
    ``.NAME.PID@HOST.`` (hidden, and never matching an output name a user would give)."""
    return f".{os.path.basename(os.path.abspath(path))}.{owner_tag()}."


def remove_stale_temporaries(path: PathLike) -> list[str]:
    """Remove the temporaries of the output ``path`` left by killed processes of this host.

    A temporary is stale when the process named in it (`temporary_prefix`) no longer
    exists; those of running processes (a concurrent run) and of other hosts (a shared
    file system) are kept.

    Returns
    -------
    list of str
        The removed temporaries.
    """
    directory, name = os.path.split(os.path.abspath(path))
    host = owner_tag().partition("@")[2]
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)@{re.escape(host)}\..*\.tmp")
    removed = []
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and not _running(int(match[1])):
                _remove(entry.path)
                removed.append(entry.path)
    return removed


class AtomicOutput:
    """A temporary beside ``path`` that becomes ``path`` only on success.

    Use as a context manager and write to ``tmp_path`` (a file, or a directory with
    ``directory=True``). On leaving without an exception the temporary is renamed to
    ``path``; without ``force`` an output that appeared meanwhile is never replaced
    (`OutputError`). On an exception (Ctrl-C and SIGTERM included) the temporary is
    removed and ``path`` left as it was. Stale temporaries of the same output left by
    killed runs are removed on creation (`remove_stale_temporaries`).

    Parameters
    ----------
    path : str or os.PathLike
        The output.
    force : bool
        Replace an existing output.
    directory : bool
        The output is a directory (a report).

    Raises
    ------
    OutputError
        As `check_output_path`; `WriteError` if the temporary cannot be created.
    """

    def __init__(self, path: PathLike, *, force: bool = False, directory: bool = False):
        self.path = check_output_path(path, force=force, directory=directory)
        self.force = force
        self.directory = directory
        remove_stale_temporaries(self.path)
        folder = os.path.dirname(os.path.abspath(self.path))
        prefix = temporary_prefix(self.path)
        with writing(self.path):
            if directory:
                self.tmp_path = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=folder)
            else:
                handle, self.tmp_path = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
                os.close(handle)

    def write_bytes(self, data: bytes | memoryview) -> None:
        """Write ``data`` as the file's content with plain system calls, whose errors
        (ENOSPC included, at write or at close) are raised as `WriteError`."""
        with writing(self.path), open(self.tmp_path, "wb") as handle:
            handle.write(data)

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            _remove(self.tmp_path)
            return
        try:
            with writing(self.path):
                os.chmod(self.tmp_path, (0o777 if self.directory else 0o666) & ~_umask())
                self._commit()
        except BaseException:
            _remove(self.tmp_path)
            raise

    def _commit(self) -> None:
        """Rename the temporary to the output (see the class for when it may replace)."""
        if self.directory:
            self._commit_directory()
        elif self.force:
            check_regular_file(self.path)  # it may have been replaced since the start
            os.replace(self.tmp_path, self.path)
        else:
            self._commit_new_file()

    def _commit_new_file(self) -> None:
        """Link the temporary as the output, which fails if the output exists."""
        try:
            os.link(self.tmp_path, self.path)
        except FileExistsError:
            raise _appeared(self.path) from None
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
            if os.path.exists(self.path):
                raise _appeared(self.path) from None
            os.rename(self.tmp_path, self.path)
            return
        os.unlink(self.tmp_path)

    def _commit_directory(self) -> None:
        """Rename the temporary directory to the output, which may replace an empty
        directory only; with ``force`` an existing report is first moved aside."""
        old = None
        if self.force and os.path.lexists(self.path):
            old = self.tmp_path[: -len(".tmp")] + ".old.tmp"
            os.rename(self.path, old)
        try:
            os.rename(self.tmp_path, self.path)
        except OSError as err:
            if old is not None:
                os.rename(old, self.path)
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise _appeared(self.path) from None
            raise
        if old is not None:
            _remove(old)


def _appeared(path: str) -> OutputError:
    return OutputError(
        path, "exists already: another run wrote it meanwhile (use --force to overwrite it)"
    )


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _remove(path: str) -> None:
    """Remove a file or directory tree if it is there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
