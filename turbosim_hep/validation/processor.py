"""The validation analysis as coffea processors: selection, tt-bar reconstruction, histograms.

`TtbarValidationProcessor` applies the reference selection (`turbosim_hep.layout`) to
each chunk of NanoEvents, builds the X and Z arrays exactly as `turbosim_hep.io.reader`
does, reconstructs the tt-bar system (`turbosim_hep.physics`) and fills one `hist.Hist`
per quantity with a ``dataset`` category axis: the 24 X features, the 24 Z features
when the file has partons, and the reconstructed observables. Beside the histograms it
keeps the unbinned float32 values of every quantity (`ValueList`) so that the KS and
Wasserstein distances of the report are exact, the cut-flow, and the number of
physically valid events. Events are weighted by the file's per-event weight where it has
one (``weight`` of a simulated file, ``genWeight`` of a generated one; see
`turbosim_hep.io.formats.weight_branch`): the histograms use ``hist``'s ``Weight`` storage,
so their error bars follow the weights, and the weights are kept beside the values for
weighted distances.

`FastSimProcessor` fills the same histograms from parton-level events, the detector
objects being simulated on the fly by the coffea plugin (`turbosim_hep.coffea`).
`turbosim_hep.validation.runner` runs either over a fileset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import awkward as ak
import hist
import numpy as np
from coffea import processor

from turbosim_hep import metrics, physics
from turbosim_hep.errors import InputError
from turbosim_hep.io import formats, nanoevents
from turbosim_hep.io.events import Cutflow
from turbosim_hep.layout import DEFAULT_LAYOUT, Layout
from turbosim_hep.physics import Observable
from turbosim_hep.validation.quantities import object_values, quantity_by_name

#: Name of the category axis that tells the datasets apart.
DATASET_AXIS = "dataset"
#: Key of the event weights among the unbinned values of a dataset.
WEIGHT_VALUES = "weight"
#: Key of the sample number of each event (the `turbosim_hep.io.formats.REPLICA` branch
#: of ``unfold --samples K`` and ``simulate --oversample K``) among the unbinned values
#: of a dataset whose files have it: the report takes one draw per event where the
#: K draws of one event are not independent events (the parton-level classifier test).
REPLICA_VALUES = formats.REPLICA


class ValueList(processor.AccumulatorABC):
    """Unbinned values gathered chunk by chunk, joined once when `value` is read.

    coffea's `column_accumulator` concatenates on every addition, which copies the
    whole column again for each chunk merged; this keeps the chunks' arrays in a list.

    Parameters
    ----------
    arrays : iterable of numpy.ndarray
        1D arrays of one quantity.
    """

    def __init__(self, arrays=()):
        self.arrays = [np.asarray(a) for a in arrays]

    def identity(self) -> ValueList:
        return ValueList()

    def add(self, other: ValueList) -> None:
        if not isinstance(other, ValueList):
            raise TypeError(f"cannot add {type(other).__name__} to ValueList")
        self.arrays.extend(other.arrays)

    @property
    def value(self) -> np.ndarray:
        """All values, in the order the chunks were merged."""
        if not self.arrays:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self.arrays)

    def __len__(self) -> int:
        return sum(len(a) for a in self.arrays)


class TtbarValidationProcessor(processor.ProcessorABC):
    """Selection, tt-bar reconstruction and histograms of one chunk of events.

    Parameters
    ----------
    bins : int
        Bins of every histogram (regular, with under- and overflow).
    keep_values : bool
        Keep the unbinned values of every quantity in the output (``values``), as the
        exact KS distances need; turn off for very large runs that only plot.
    channel : str, optional
        Which selection: the layout's reference one (the default; ``ejets``: the paper's,
        an electron of charge -1), its charge conjugate, or ``both`` (conjugate events
        CP-mirrored into the reference channel's slots, `turbosim_hep.layout.CHANNELS`).
    layout : turbosim_hep.layout.Layout
        The final state: its selection, its objects and the names of its quantities
        (`turbosim_hep.validation.quantities.layout_quantities`); default ``ejets``.

    Notes
    -----
    The output of `process` (and of a whole run) is a dict::

        {
            "hists": {quantity: hist.Hist(dataset, quantity)},
            "values": {dataset: {quantity: ValueList(float32 arrays),
                                 "weight": ValueList(event weights)}},
            "cutflow": {dataset: {cut: events passing}},
            "yield": {dataset: sum of the weights of the selected events},
            "valid": {dataset: {"checked": n, "valid": k}},
        }

    ``valid`` counts the selected events whose objects, as the file stores them, are
    physical (`turbosim_hep.metrics.valid_x_events`).
    """

    def __init__(
        self,
        *,
        bins: int = 80,
        keep_values: bool = True,
        channel: str | None = None,
        layout: Layout = DEFAULT_LAYOUT,
    ):
        self.channel = channel or layout.reference_channel
        layout.channels_of(self.channel)
        self.bins = bins
        self.keep_values = keep_values
        self.layout = layout

    def histogram(self, quantity: Observable) -> hist.Hist:
        """An empty histogram of one quantity with the dataset category axis."""
        return hist.Hist(
            hist.axis.StrCategory([], growth=True, name=DATASET_AXIS, label="Dataset"),
            hist.axis.Regular(self.bins, *quantity.range, name=quantity.name, label=quantity.label),
            storage=hist.storage.Weight(),
        )

    def process(self, events) -> dict:
        dataset = events.metadata["dataset"]
        detector = nanoevents.has_detector(events, self.layout)
        partons = nanoevents.has_partons(events)
        if not (detector or partons):
            raise InputError(
                events.metadata.get("filename", dataset),
                f"holds neither the detector objects of {self.layout.name} (its lepton, Jet, "
                "MET) nor partons",
            )
        cutflow = Cutflow()
        batch, rows = nanoevents.select(
            events, detector=detector, partons=partons, cutflow=cutflow, channel=self.channel,
            layout=self.layout,
        )
        weight = batch.weights
        quantities: dict[str, np.ndarray] = {}
        valid = {"checked": 0, "valid": 0}
        if detector:
            quantities |= {f"x_{c}": batch.x[:, i] for i, c in enumerate(self.layout.x_columns)}
            observables = physics.reconstruct(batch.x)
            quantities |= {name: observables[name] for name in physics.OBSERVABLE_NAMES}
            quantities |= object_values(batch.x, self.layout)
            stored = nanoevents.stored_x(events, rows, self.layout)
            valid = {
                "checked": len(rows),
                "valid": int(np.count_nonzero(metrics.valid_x_events(stored))),
            }
        if partons:
            quantities |= {f"z_{c}": batch.z[:, i] for i, c in enumerate(self.layout.z_columns)}

        hists = {}
        by_name = quantity_by_name(self.layout)
        for name, values in quantities.items():
            h = self.histogram(by_name[name])
            h.fill(**{DATASET_AXIS: dataset, name: values}, weight=weight)
            hists[name] = h
        output = {
            "hists": hists,
            "cutflow": {dataset: cutflow.as_dict()},
            "yield": {dataset: float(np.sum(weight, dtype=np.float64))},
            "valid": {dataset: valid},
        }
        if self.keep_values:
            values = {name: np.asarray(v, dtype=np.float32) for name, v in quantities.items()}
            values[WEIGHT_VALUES] = weight
            if REPLICA_VALUES in events.fields:
                values[REPLICA_VALUES] = ak.to_numpy(events[REPLICA_VALUES])[rows]
            output["values"] = {
                dataset: {name: ValueList([array]) for name, array in values.items()}
            }
        return output

    def postprocess(self, accumulator):
        return accumulator


class FastSimProcessor(TtbarValidationProcessor):
    """The validation processor on parton-level input, with detector objects from Turbo-Sim.

    It fills exactly the histograms of `TtbarValidationProcessor` (the detector-level
    features, the reconstructed tt-bar observables and the partons), the detector
    objects being simulated on the fly. The line that makes it is the one
    `docs/coffea-plugin.md` shows for any processor (`turbosim_hep.coffea.simulated_events`).

    The plugin (and with it torch) is imported when a `FastSimProcessor` is made, not with
    this module: the validation of files needs no model.

    Parameters
    ----------
    model : str or os.PathLike
        Checkpoint of ``turbosim-hep train``.
    seed : int
        Seed of the per-event noise.
    device : str
        ``auto``, ``cpu`` or ``cuda`` (resolved on each worker).
    acceptance : {"sample", "weight", "off"}, optional
        How the model's acceptance applies (`turbosim_hep.coffea.FastSim`): ``off`` for
        parton events that already passed the selection, ``sample`` or ``weight`` for a
        raw parton sample.
    channel : str, optional
        The channels simulated and selected (default the reference one of the model's
        layout, which the processor takes).
    **kwargs
        Passed to `TtbarValidationProcessor` (``bins``, ``keep_values``).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        seed: int = 0,
        device: str = "auto",
        acceptance: str | None = None,
        channel: str | None = None,
        **kwargs,
    ):
        from turbosim_hep.coffea import FastSim

        fastsim = FastSim(model, seed=seed, device=device, acceptance=acceptance)
        super().__init__(channel=channel, layout=fastsim.layout, **kwargs)
        fastsim.channel = self.channel
        self.fastsim = fastsim

    def process(self, events) -> dict:
        from turbosim_hep.coffea import simulated_events

        return super().process(simulated_events(events, self.fastsim))


def dataset_values(output: Mapping, dataset: str) -> dict[str, np.ndarray]:
    """The unbinned values of every quantity of one dataset (and their event weights,
    `WEIGHT_VALUES`), as NumPy arrays."""
    columns = output.get("values", {}).get(dataset, {})
    return {name: column.value for name, column in columns.items()}


__all__ = [
    "DATASET_AXIS",
    "REPLICA_VALUES",
    "WEIGHT_VALUES",
    "FastSimProcessor",
    "TtbarValidationProcessor",
    "ValueList",
    "dataset_values",
]
