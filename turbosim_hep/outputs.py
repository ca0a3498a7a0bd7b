"""Output files that are complete or absent: the checks before writing and atomic replacement.

Every file the package writes (ROOT, HDF5, checkpoints, reports) goes through
`check_output_path` before any work starts and through `AtomicOutput` while it is
written, so that a failure or Ctrl-C never leaves a partial file and an existing output
is replaced only when asked.
"""

from __future__ import annotations

import os
import tempfile
from types import TracebackType

from turbosim_hep.errors import OutputError, check_parent_directory


def check_output_path(path: str | os.PathLike, *, force: bool = False) -> str:
    """Check that an output file may be written.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    force : bool
        Allow overwriting an existing file.

    Returns
    -------
    str
        The path as a string.

    Raises
    ------
    OutputError
        If the directory does not exist or is not writable, or the file exists and
        ``force`` is not set.
    """
    path = check_parent_directory(path)
    if os.path.isdir(path):
        raise OutputError(path, "is a directory")
    if os.path.exists(path) and not force:
        raise OutputError(path, "exists already (use --force to overwrite it)")
    return path


class AtomicOutput:
    """A temporary file beside ``path`` that replaces ``path`` only on success.

    Use as a context manager; ``tmp_path`` is where to write. On an exception
    (including KeyboardInterrupt) the temporary file is removed and ``path`` untouched.
    """

    def __init__(self, path: str | os.PathLike, *, force: bool = False):
        self.path = check_output_path(path, force=force)
        directory, name = os.path.split(os.path.abspath(self.path))
        handle, self.tmp_path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        os.close(handle)

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            os.chmod(self.tmp_path, 0o666 & ~_umask())  # mkstemp made it owner-only
            os.replace(self.tmp_path, self.path)
        elif os.path.exists(self.tmp_path):
            os.unlink(self.tmp_path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
