"""What a run did with each input: cut-flows, events written, time."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Cut-flow steps the pipeline adds after the reader's own.
FINITE_INPUT_CUT = "finite_input"
FINITE_OUTPUT_CUT = "finite_output"


@dataclass
class FileSummary:
    """What happened to one input file.

    Attributes
    ----------
    path : str
        The input.
    cutflow : dict
        Events after each step: ``all``, the selection or final-state requirement,
        ``finite_input`` and ``finite_output``.
    seconds : float
        Wall time spent on the file.
    """

    path: str
    cutflow: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Events in the input."""
        return self.cutflow.get("all", 0)

    @property
    def selected(self) -> int:
        """Events with the wanted final state (simulate) or passing the selection (unfold)."""
        steps = list(self.cutflow.values())
        return steps[list(self.cutflow).index(FINITE_INPUT_CUT) - 1]

    @property
    def nonfinite_inputs(self) -> int:
        """Selected events dropped for NaN or infinite input values."""
        return self.selected - self.cutflow[FINITE_INPUT_CUT]

    @property
    def nonfinite_outputs(self) -> int:
        """Events dropped because the model gave NaN or infinite values."""
        return self.cutflow[FINITE_INPUT_CUT] - self.cutflow[FINITE_OUTPUT_CUT]

    @property
    def written(self) -> int:
        """Events written to the output."""
        return self.cutflow[FINITE_OUTPUT_CUT]


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
