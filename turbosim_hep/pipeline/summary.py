"""What a run did with each input: cut-flows, events written, time."""

from __future__ import annotations

from dataclasses import dataclass, field

from turbosim_hep.io import Cutflow

#: Steps the pipeline counts after the reader's cut-flow: events with finite inputs,
#: then, where the acceptance is applied, the replica events it keeps, then the replica
#: events with finite outputs (those written).
FINITE_INPUT_CUT = "finite_input"
ACCEPTED_CUT = "accepted"
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
        The pipeline's steps after it: `FINITE_INPUT_CUT`, `ACCEPTED_CUT` (where the
        acceptance applies), `FINITE_OUTPUT_CUT`; the last two count replica events.
    seconds : float
        Wall time spent on the file.
    applies_acceptance : bool
        Whether the acceptance decided which events were simulated.
    oversample : int
        Replicas of every input event.
    """

    path: str
    read: Cutflow = field(default_factory=Cutflow)
    pipeline: Cutflow = field(default_factory=Cutflow)
    seconds: float = 0.0
    applies_acceptance: bool = False
    oversample: int = 1

    def __post_init__(self) -> None:
        steps = [FINITE_INPUT_CUT, ACCEPTED_CUT, FINITE_OUTPUT_CUT]
        self.pipeline.declare(s for s in steps if s != ACCEPTED_CUT or self.applies_acceptance)

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
    def simulated(self) -> int:
        """Replica events that went through the model (those the acceptance kept)."""
        if self.applies_acceptance:
            return self.pipeline[ACCEPTED_CUT]
        return self.finite_inputs * self.oversample

    @property
    def rejected(self) -> int:
        """Replica events the acceptance dropped."""
        return self.finite_inputs * self.oversample - self.simulated

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
        return self.simulated - self.written

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
