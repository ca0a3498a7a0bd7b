"""What a run did with each input: cut-flows, events written, time."""

from __future__ import annotations

from dataclasses import dataclass, field

from turbosim_hep.io import Cutflow

#: Steps the pipeline counts after the reader's cut-flow: events with finite inputs,
#: then events with finite outputs (those written).
FINITE_INPUT_CUT = "finite_input"
FINITE_OUTPUT_CUT = "finite_output"


@dataclass
class FileSummary:
    """What happened to one input file.

    Attributes
    ----------
    path : str
        The input.
    read : Cutflow
        The reader's cut-flow: ``all``, then the reference selection (unfold) or the
        final-state requirement (simulate).
    pipeline : Cutflow
        The pipeline's steps after it: `FINITE_INPUT_CUT`, `FINITE_OUTPUT_CUT`.
    seconds : float
        Wall time spent on the file.
    """

    path: str
    read: Cutflow = field(default_factory=Cutflow)
    pipeline: Cutflow = field(default_factory=Cutflow)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.pipeline.declare([FINITE_INPUT_CUT, FINITE_OUTPUT_CUT])

    @property
    def cutflow(self) -> dict[str, int]:
        """Events after each step, the reader's then the pipeline's, in order."""
        return self.read.as_dict() | self.pipeline.as_dict()

    @property
    def total(self) -> int:
        """Events in the input."""
        return self.read.total

    @property
    def selected(self) -> int:
        """Events the reader kept: the wanted final state (simulate) or the selection (unfold)."""
        return self.read.selected

    @property
    def finite_inputs(self) -> int:
        """Selected events whose inputs are all finite."""
        return self.pipeline[FINITE_INPUT_CUT]

    @property
    def written(self) -> int:
        """Events written to the output (finite inputs and outputs)."""
        return self.pipeline[FINITE_OUTPUT_CUT]

    @property
    def nonfinite_inputs(self) -> int:
        """Selected events dropped for NaN or infinite input values."""
        return self.selected - self.finite_inputs

    @property
    def nonfinite_outputs(self) -> int:
        """Events dropped because the model gave NaN or infinite values."""
        return self.finite_inputs - self.written

    def describe(self) -> str:
        """The cut-flow as ``name: count, ...``."""
        return ", ".join(f"{name}: {count}" for name, count in self.cutflow.items())


@dataclass
class RunSummary:
    """Result of a run: per-input summaries, the output path and the total time."""

    output: str
    files: list[FileSummary]
    seconds: float

    @property
    def written(self) -> int:
        """Events written to the output."""
        return sum(f.written for f in self.files)
