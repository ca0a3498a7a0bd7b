"""Whole files through a trained model: fast simulation (Z -> X) and unfolding (X -> Z).

`simulate_files` and `unfold_files` stream every input through read -> infer -> write
stages (`turbosim_hep.pipeline.stages`) into one ROOT file, serially or in parallel
(`turbosim_hep.pipeline.executors`, also used by ``generate``), and return a
`RunSummary`; the options they share are the fields of `RunOptions`. The names load on
first use, so that importing the executors does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turbosim_hep.pipeline.job import CHUNK_EVENTS
    from turbosim_hep.pipeline.options import RunOptions
    from turbosim_hep.pipeline.run import simulate_files, unfold_files
    from turbosim_hep.pipeline.summary import FileSummary, RunSummary

__all__ = [
    "CHUNK_EVENTS", "FileSummary", "RunOptions", "RunSummary", "simulate_files", "unfold_files"
]

_MODULES = {
    "CHUNK_EVENTS": "turbosim_hep.pipeline.job",
    "FileSummary": "turbosim_hep.pipeline.summary",
    "RunOptions": "turbosim_hep.pipeline.options",
    "RunSummary": "turbosim_hep.pipeline.summary",
    "simulate_files": "turbosim_hep.pipeline.run",
    "unfold_files": "turbosim_hep.pipeline.run",
}


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
