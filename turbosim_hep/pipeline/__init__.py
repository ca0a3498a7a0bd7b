"""Whole files through a trained model: fast simulation (Z -> X) and unfolding (X -> Z).

`simulate_files` and `unfold_files` stream every input through read -> infer -> write
stages (`turbosim_hep.pipeline.stages`) into one ROOT file, serially or in parallel
(`turbosim_hep.pipeline.executors`), and return a `RunSummary`.
"""

from turbosim_hep.pipeline.job import CHUNK_EVENTS
from turbosim_hep.pipeline.run import simulate_files, unfold_files
from turbosim_hep.pipeline.summary import FileSummary, RunSummary

__all__ = ["CHUNK_EVENTS", "FileSummary", "RunSummary", "simulate_files", "unfold_files"]
