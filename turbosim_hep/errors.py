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


class OutputError(InputError):
    """An output path cannot be written (exists, missing directory, not writable)."""
