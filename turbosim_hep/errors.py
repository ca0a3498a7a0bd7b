"""Exceptions that the command line turns into one-line messages."""

from __future__ import annotations

import os


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


def check_parent_directory(path: str | os.PathLike) -> str:
    """Check that the directory an output will be written into exists and is writable.

    Returns
    -------
    str
        The path as a string.

    Raises
    ------
    OutputError
        If the directory is missing or not writable.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OutputError(path, f"directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise OutputError(path, f"directory {directory} is not writable")
    return path
