"""The branches of a simulated or unfolded file."""

from __future__ import annotations

import numpy as np

from turbosim_hep.io import formats
from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns
from turbosim_hep.pipeline.job import Direction

#: Branch with the position of each event's input in the metadata list ``inputs``.
SOURCE_BRANCH = "source"
#: Branch with the acceptance epsilon(z) of each simulated event (where it was applied).
ACCEPTANCE_BRANCH = "acceptance"
#: Branch with the replica number of each simulated event (``--oversample`` above 1).
REPLICA_BRANCH = "replica"


def output_columns(
    entry: np.ndarray,
    inputs: np.ndarray,
    outputs: np.ndarray,
    direction: Direction,
    source: int,
    *,
    conjugate: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    acceptance: np.ndarray | None = None,
    replica: int | None = None,
) -> dict[str, object]:
    """The branches of one chunk: event ids, ``source``, generated and input objects.

    simulate: Electron, Jet, MET (pt, eta, phi, mass and px, py, pz, E) generated from
    the input ``Parton`` collection. unfold: the generated ``Parton`` collection (with
    px, py, pz, E) and the input Electron, Jet and MET. Events of the charge-conjugate
    channel are written back in their own frame, with their own charges and ids.

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
    conjugate : numpy.ndarray, optional
        bool (n,): events of the charge-conjugate channel (held CP-mirrored).
    weight : numpy.ndarray, optional
        float32 (n,) event weights, written as `formats.EVENT_WEIGHT`.
    acceptance : numpy.ndarray, optional
        (n,) acceptance of each event, written as `ACCEPTANCE_BRANCH`.
    replica : int, optional
        Replica number of the chunk, written as `REPLICA_BRANCH`.
    """
    n = len(entry)
    columns: dict[str, object] = event_columns(entry)
    columns[SOURCE_BRANCH] = np.full(n, source, dtype=np.uint32)
    if replica is not None:
        columns[REPLICA_BRANCH] = np.full(n, replica, dtype=np.uint16)
    if weight is not None:
        columns[formats.EVENT_WEIGHT] = np.asarray(weight, dtype=np.float32)
    if acceptance is not None:
        columns[ACCEPTANCE_BRANCH] = np.asarray(acceptance, dtype=np.float32)
    if direction == "simulate":
        columns |= reco_columns(outputs, with_cartesian=True, conjugate=conjugate)
        columns |= parton_columns(inputs, conjugate=conjugate)
    else:
        columns |= parton_columns(outputs, with_cartesian=True, conjugate=conjugate)
        columns |= reco_columns(inputs, conjugate=conjugate)
    return columns
