"""The validation analysis as a coffea processor, and the runners that execute it.

`TtbarValidationProcessor` applies the reference selection (`turbosim_hep.layout`) to
each chunk of NanoEvents, builds the X and Z arrays exactly as `turbosim_hep.io.reader`
does, reconstructs the tt-bar system (`turbosim_hep.physics`) and fills one `hist.Hist`
per quantity with a ``dataset`` category axis: the 24 X features, the 24 Z features
when the file has partons, and the reconstructed observables. Beside the histograms it
keeps the unbinned float32 values of every quantity (`ValueList`) so that the KS and Wasserstein distances of the report are exact, the cut-flow, and the
number of physically valid events.

`run_fileset` runs it over a fileset with coffea's `Runner` and the iterative, futures
or Dask executor; files of different formats (Delphes, the project's own) are grouped
and read with the schema each needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import hist
import numpy as np
from coffea import processor

from turbosim_hep import layout, metrics, physics
from turbosim_hep.errors import InputError
from turbosim_hep.io import nanoevents, schemas
from turbosim_hep.io.reader import Cutflow


@dataclass(frozen=True)
class Quantity:
    """A histogrammed quantity: key, axis label (with unit) and histogram range."""

    name: str
    label: str
    range: tuple[float, float]
    space: str  # "x", "z" or "reco"


_OBJECT_LABELS = {
    "x": {
        "e-": "e^{-}",
        "met": r"\mathrm{miss}",
        **{f"jet{i}": rf"\mathrm{{jet}}_{{{i}}}" for i in range(1, layout.N_JETS + 1)},
    },
    "z": {
        "e-": "e^{-}", "nubar": r"\bar{\nu}_{e}", "b": "b", "bbar": r"\bar{b}", "u": "u",
        "dbar": r"\bar{d}",
    },
}
_COMPONENT_LABELS = {"px": "p_{x}", "py": "p_{y}", "pz": "p_{z}", "E": "E"}
_COMPONENT_RANGES = {
    "px": (-300.0, 300.0), "py": (-300.0, 300.0), "pz": (-1200.0, 1200.0), "E": (0.0, 1200.0)
}
_LEVEL = {"x": "detector", "z": "parton"}


def _feature(space: str, column: str) -> Quantity:
    component, obj = column.split("_", 1)
    symbol = rf"{_COMPONENT_LABELS[component]}^{{{_OBJECT_LABELS[space][obj]}}}"
    label = rf"{_LEVEL[space]} ${symbol}$ [GeV]"
    return Quantity(f"{space}_{column}", label, _COMPONENT_RANGES[component], space)


#: Every quantity the processor histograms, in report order.
QUANTITIES: tuple[Quantity, ...] = (
    tuple(_feature("x", c) for c in layout.X_COLUMNS)
    + tuple(_feature("z", c) for c in layout.Z_COLUMNS)
    + tuple(Quantity(o.name, o.label, o.range, "reco") for o in physics.OBSERVABLES)
)
QUANTITY_BY_NAME: Mapping[str, Quantity] = {q.name: q for q in QUANTITIES}

#: Name of the category axis that tells the datasets apart.
DATASET_AXIS = "dataset"


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

    Notes
    -----
    The output of `process` (and of a whole run) is a dict::

        {
            "hists": {quantity: hist.Hist(dataset, quantity)},
            "values": {dataset: {quantity: ValueList(float32 arrays)}},
            "cutflow": {dataset: {cut: events passing}},
            "valid": {dataset: {"checked": n, "valid": k}},
        }

    ``valid`` counts the selected events whose objects, as the file stores them, are
    physical (`turbosim_hep.metrics.valid_x_events`).
    """

    def __init__(self, *, bins: int = 80, keep_values: bool = True):
        self.bins = bins
        self.keep_values = keep_values

    def histogram(self, quantity: Quantity) -> hist.Hist:
        """An empty histogram of one quantity with the dataset category axis."""
        return hist.Hist(
            hist.axis.StrCategory([], growth=True, name=DATASET_AXIS, label="Dataset"),
            hist.axis.Regular(self.bins, *quantity.range, name=quantity.name, label=quantity.label),
            storage=hist.storage.Weight(),
        )

    def process(self, events) -> dict:
        dataset = events.metadata["dataset"]
        detector = nanoevents.has_detector(events)
        partons = nanoevents.has_partons(events)
        if not (detector or partons):
            raise InputError(
                events.metadata.get("filename", dataset),
                "holds neither detector objects (Electron, Jet, MET) nor partons",
            )
        cutflow = Cutflow()
        batch, rows = nanoevents.select(events, detector=detector, partons=partons, cutflow=cutflow)
        quantities: dict[str, np.ndarray] = {}
        valid = {"checked": 0, "valid": 0}
        if detector:
            quantities |= {f"x_{c}": batch.x[:, i] for i, c in enumerate(layout.X_COLUMNS)}
            observables = physics.reconstruct(batch.x)
            quantities |= {name: observables[name] for name in physics.OBSERVABLE_NAMES}
            stored = nanoevents.stored_x(events, rows)
            valid = {
                "checked": len(rows),
                "valid": int(np.count_nonzero(metrics.valid_x_events(stored))),
            }
        if partons:
            quantities |= {f"z_{c}": batch.z[:, i] for i, c in enumerate(layout.Z_COLUMNS)}

        hists = {}
        for name, values in quantities.items():
            h = self.histogram(QUANTITY_BY_NAME[name])
            h.fill(**{DATASET_AXIS: dataset, name: values})
            hists[name] = h
        output = {
            "hists": hists,
            "cutflow": {dataset: cutflow.as_dict()},
            "valid": {dataset: valid},
        }
        if self.keep_values:
            output["values"] = {
                dataset: {
                    name: ValueList([np.asarray(values, dtype=np.float32)])
                    for name, values in quantities.items()
                }
            }
        return output

    def postprocess(self, accumulator):
        return accumulator


# --- running ------------------------------------------------------------------------

EXECUTORS = ("iterative", "futures", "dask")


def make_executor(name: str = "iterative", *, workers: int = 1, client=None, progress: bool = True):
    """A coffea executor by name.

    Parameters
    ----------
    name : {"iterative", "futures", "dask"}
        ``iterative`` runs in this process, ``futures`` in a pool of ``workers``
        processes, ``dask`` on the `distributed.Client` given as ``client`` (for instance
        of a ``LocalCluster`` or of a batch-system cluster).
    workers : int
        Processes of the futures executor.
    client : distributed.Client, optional
        Required by the dask executor.
    progress : bool
        Show coffea's progress bar.
    """
    if name == "iterative":
        return processor.IterativeExecutor(status=progress)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers, status=progress)
    if name == "dask":
        if client is None:
            raise ValueError("the dask executor needs a distributed.Client")
        return processor.DaskExecutor(client=client, status=progress)
    raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")


def run_fileset(
    fileset: Mapping[str, Sequence[str | os.PathLike]],
    processor_instance: processor.ProcessorABC | None = None,
    *,
    executor=None,
    chunksize: int = 200_000,
    maxchunks: int | None = None,
) -> dict:
    """Run a processor over a fileset with coffea's `Runner`.

    Parameters
    ----------
    fileset : mapping
        ``{dataset: [file, ...]}``. Files may be Delphes or the project's own files; each
        format is read with its schema (`turbosim_hep.io.schemas.schema_for`).
    processor_instance : ProcessorABC, optional
        Defaults to a `TtbarValidationProcessor`.
    executor : coffea executor, optional
        Defaults to ``make_executor("iterative")``.
    chunksize, maxchunks : int
        Passed to `coffea.processor.Runner`.

    Returns
    -------
    dict
        The accumulated output of the processor.

    Raises
    ------
    InputError
        If a file is missing or not a file turbosim-hep reads.
    """
    processor_instance = processor_instance or TtbarValidationProcessor()
    executor = executor or make_executor("iterative")
    groups: dict[type, dict[str, dict]] = {}
    for dataset, files in fileset.items():
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        for path in files:
            tree, schema = schemas.schema_for(path)
            entry = groups.setdefault(schema, {}).setdefault(dataset, {"files": {}})
            entry["files"][os.path.abspath(os.fspath(path))] = tree
    outputs = []
    for schema, group in groups.items():
        runner = processor.Runner(
            executor=executor, schema=schema, chunksize=chunksize, maxchunks=maxchunks
        )
        outputs.append(runner(group, processor_instance))
    if not outputs:
        raise ValueError("the fileset holds no files")
    return processor.accumulate(outputs)


def dataset_values(output: Mapping, dataset: str) -> dict[str, np.ndarray]:
    """The unbinned values of every quantity of one dataset, as NumPy arrays."""
    columns = output.get("values", {}).get(dataset, {})
    return {name: column.value for name, column in columns.items()}


__all__ = [
    "DATASET_AXIS",
    "EXECUTORS",
    "QUANTITIES",
    "QUANTITY_BY_NAME",
    "Quantity",
    "TtbarValidationProcessor",
    "ValueList",
    "dataset_values",
    "make_executor",
    "run_fileset",
]
