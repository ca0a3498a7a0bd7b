"""Exceptions that the command line turns into one-line messages."""

from __future__ import annotations

import os
import tempfile


class TurbosimError(Exception):
    """Base class of every error that is the user's input, not a bug."""


class InputError(TurbosimError):
    """A file the user named cannot be used; the message names the file and the problem.

    Parameters
    ----------
    path : str or os.PathLike
        The offending file.
    problem : str
        What is wrong with it, as a short phrase.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Rebuilt from (path, problem) when it crosses processes (process pools, Dask).
        return type(self), (self.path, self.problem)


def read_head(path: str | os.PathLike, kind: str, size: int = 4) -> bytes:
    """The first bytes of an input file, after checking that it is one.

    Parameters
    ----------
    path : str or os.PathLike
        The input file.
    kind : str
        What the file should be, for the message (``"ROOT file"``, ``"model file"``).
    size : int
        How many bytes to return (for a magic-number check).

    Raises
    ------
    InputError
        If the path does not exist or is a directory.
    """
    if not os.path.exists(path):
        raise InputError(path, "no such file")
    if os.path.isdir(path):
        raise InputError(path, f"is a directory, not a {kind}")
    with open(path, "rb") as handle:
        return handle.read(size)


class OutputError(InputError):
    """An output path cannot be written (exists, missing directory, not writable)."""


class WriteError(OutputError):
    """Writing an output failed (full disk, read-only file system, no permission).

    The message reads ``cannot write PATH: PROBLEM``, ``PROBLEM`` being the system's
    reason in lower case (`os_reason`).
    """

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.problem}"


def os_reason(err: OSError) -> str:
    """The system's reason for an `OSError` as a short phrase: ``no space left on device``."""
    text = os.strerror(err.errno) if err.errno else (str(err).strip() or type(err).__name__)
    text = text.splitlines()[0]
    return text[:1].lower() + text[1:]


def check_parent_directory(path: str | os.PathLike) -> str:
    """Check that the directory an output will be written into exists and is writable.

    Returns
    -------
    str
        The path as a string.

    Raises
    ------
    OutputError
        If the directory is missing or not writable, or no file can be created in it
        (a read-only file system, or one such as /proc that holds no regular files):
        an unnamed file is created and removed to find out before any work starts.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OutputError(path, f"directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise OutputError(path, f"directory {directory} is not writable")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise OutputError(path, f"cannot create a file in {directory} ({os_reason(err)})") from err
    return path
