"""The branches of a simulated or unfolded file."""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from turbosim_hep.io import formats
from turbosim_hep.io.writer import event_columns, parton_columns, reco_columns
from turbosim_hep.layout import DEFAULT_LAYOUT, Layout
from turbosim_hep.pipeline.job import Direction

#: Branch with the position of each event's input in the metadata list ``inputs``.
SOURCE_BRANCH = formats.SOURCE
#: Branch with the acceptance epsilon(z) of each simulated event (where it was applied).
ACCEPTANCE_BRANCH = "acceptance"
#: Branch with the replica number of each simulated event (``simulate --oversample`` above
#: 1) or the sample number of each unfolded one (``unfold --samples`` above 1), 0 to K - 1.
REPLICA_BRANCH = formats.REPLICA


@dataclass(frozen=True)
class InputColumns:
    """The branches of a chunk that its input fixes, shared by every replica of it.

    Made once per chunk, however many replicas are written (``--oversample``): a replica
    that keeps every event reuses them, one that keeps some takes its rows.

    Attributes
    ----------
    ids : dict
        The event-id columns (`turbosim_hep.io.writer.event_columns`) and `SOURCE_BRANCH`.
    objects : dict
        The input objects: ``Parton`` (simulate) or Electron, Jet and MET (unfold).
    """

    ids: dict[str, np.ndarray]
    objects: dict[str, ak.Array | np.ndarray]

    @classmethod
    def of(
        cls,
        entry: np.ndarray,
        inputs: np.ndarray,
        direction: Direction,
        source: int,
        conjugate: np.ndarray | None = None,
        layout: Layout = DEFAULT_LAYOUT,
    ) -> InputColumns:
        """The input branches of a chunk.

        Parameters
        ----------
        entry : numpy.ndarray
            Entry numbers of the events in their input.
        inputs : numpy.ndarray
            float32 (n, 24) model inputs (Z for simulate, X for unfold).
        direction : {"simulate", "unfold"}
            Which way the model runs.
        source : int
            Index of the input in the output's ``inputs`` metadata.
        conjugate : numpy.ndarray, optional
            bool (n,): events of the charge-conjugate channel (held CP-mirrored).
        layout : turbosim_hep.layout.Layout
            The final state (its collections, charges and ids).
        """
        ids = event_columns(entry)
        ids[SOURCE_BRANCH] = np.full(len(entry), source, dtype=np.uint32)
        if direction == "simulate":
            objects = parton_columns(inputs, conjugate=conjugate, layout=layout)
        else:
            objects = reco_columns(inputs, conjugate=conjugate, layout=layout)
        return cls(ids, objects)

    def __len__(self) -> int:
        return len(self.ids[SOURCE_BRANCH])

    def take(self, rows: np.ndarray) -> InputColumns:
        """The branches of the events at ``rows`` (increasing), itself if that is all."""
        if len(rows) == len(self):
            return self
        return InputColumns(
            {name: values[rows] for name, values in self.ids.items()},
            {name: _rows_of(values, rows) for name, values in self.objects.items()},
        )


def output_columns(
    inputs: InputColumns,
    outputs: np.ndarray,
    direction: Direction,
    *,
    conjugate: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    acceptance: np.ndarray | None = None,
    replica: int | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> dict[str, object]:
    """The branches of one chunk: event ids, ``source``, generated and input objects.

    simulate: the lepton (the layout's Electron or Muon), Jet, MET (pt, eta, phi, mass
    and px, py, pz, E) generated from the input ``Parton`` collection. unfold: the
    generated ``Parton`` collection (with px, py, pz, E) and the input lepton, Jet and
    MET. Events of the charge-conjugate
    channel are written back in their own frame, with their own charges and ids.

    Parameters
    ----------
    inputs : InputColumns
        The input branches of the events.
    outputs : numpy.ndarray
        float32 (n, 24) model outputs (X for simulate, Z for unfold).
    direction : {"simulate", "unfold"}
        Which way the model ran.
    conjugate : numpy.ndarray, optional
        bool (n,): events of the charge-conjugate channel (held CP-mirrored).
    weight : numpy.ndarray, optional
        float32 (n,) event weights, written as `formats.EVENT_WEIGHT`.
    acceptance : numpy.ndarray, optional
        (n,) acceptance of each event, written as `ACCEPTANCE_BRANCH`.
    replica : int, optional
        Replica number of the chunk, written as `REPLICA_BRANCH`.
    layout : turbosim_hep.layout.Layout
        The final state (its collections, charges and ids).
    """
    n = len(outputs)
    columns: dict[str, object] = dict(inputs.ids)
    if replica is not None:
        columns[REPLICA_BRANCH] = np.full(n, replica, dtype=np.uint16)
    if weight is not None:
        columns[formats.EVENT_WEIGHT] = np.asarray(weight, dtype=np.float32)
    if acceptance is not None:
        columns[ACCEPTANCE_BRANCH] = np.asarray(acceptance, dtype=np.float32)
    if direction == "simulate":
        columns |= reco_columns(outputs, with_cartesian=True, conjugate=conjugate, layout=layout)
    else:
        columns |= parton_columns(
            outputs, with_cartesian=True, conjugate=conjugate, layout=layout
        )
    return columns | inputs.objects


def _rows_of(values: ak.Array | np.ndarray, rows: np.ndarray) -> ak.Array | np.ndarray:
    """The entries at ``rows`` of a column, packed (what the writer stores)."""
    if isinstance(values, ak.Array):
        return ak.to_packed(values[rows])
    return values[rows]
