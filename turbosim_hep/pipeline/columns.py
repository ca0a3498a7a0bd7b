"""The branches of a simulated or unfolded file."""

from __future__ import annotations

import numpy as np

from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns
from turbosim_hep.pipeline.job import Direction

#: Branch with the position of each event's input in the metadata list ``inputs``.
SOURCE_BRANCH = "source"


def output_columns(
    entry: np.ndarray,
    inputs: np.ndarray,
    outputs: np.ndarray,
    direction: Direction,
    source: int,
) -> dict[str, object]:
    """The branches of one chunk: event ids, ``source``, generated and input objects.

    simulate: Electron, Jet, MET (pt, eta, phi, mass and px, py, pz, E) generated from
    the input ``Parton`` collection. unfold: the generated ``Parton`` collection (with
    px, py, pz, E) and the input Electron, Jet and MET.

    Parameters
    ----------
    entry : numpy.ndarray
        Entry numbers of the events in their input.
    inputs, outputs : numpy.ndarray
        float32 (n, 24) model inputs (Z for simulate, X for unfold) and outputs.
    direction : {"simulate", "unfold"}
        Which way the model ran.
    source : int
        Index of the input in the output's ``inputs`` metadata.
    """
    columns: dict[str, object] = event_columns(entry)
    columns[SOURCE_BRANCH] = np.full(len(entry), source, dtype=np.uint32)
    if direction == "simulate":
        columns |= reco_columns(outputs, with_cartesian=True)
        columns |= parton_columns(inputs)
    else:
        columns |= parton_columns(outputs, with_cartesian=True)
        columns |= reco_columns(inputs)
    return columns
