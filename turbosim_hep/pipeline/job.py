"""The settings of one input file's run, as plain values that travel to other processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from turbosim_hep.layout import DEFAULT_LAYOUT, Layout

#: ``simulate``: Z -> X with the decoder; ``unfold``: X -> Z with the encoder.
Direction = Literal["simulate", "unfold"]

#: Events read per chunk: small enough that the first read and the last write, which
#: nothing overlaps, stay short; large enough for baskets of a sensible size.
CHUNK_EVENTS = 100_000


@dataclass(frozen=True)
class Job:
    """Everything one input file needs, plain values only (sent to other processes).

    Attributes
    ----------
    direction : {"simulate", "unfold"}
        Z -> X with the decoder or X -> Z with the encoder.
    model : str
        Checkpoint path.
    seed : int
        Seed of the per-event noise.
    device : str
        Torch device (already resolved).
    batch_size : int
        Events per forward pass.
    chunk_events : int
        Events per chunk read.
    threads : int
        Torch intra-op threads of the inference (0: leave torch's setting).
    channel : str
        Which channel's events are read (``layout.channel_choices``).
    acceptance : {"sample", "weight", "off"}
        How the model's acceptance applies (simulate; `turbosim_hep.inference.ACCEPTANCE_MODES`).
    oversample : int
        Copies of every input event, each with its own noise: the replicas of
        ``simulate --oversample`` or the posterior samples of ``unfold --samples``.
    layout : turbosim_hep.layout.Layout
        The final state of the model's events: what is read and what is written.
    """

    direction: Direction
    model: str
    seed: int
    device: str
    batch_size: int
    chunk_events: int = CHUNK_EVENTS
    threads: int = 0
    channel: str = "both"
    acceptance: str = "off"
    oversample: int = 1
    layout: Layout = DEFAULT_LAYOUT
