"""Reading and writing events: ROOT (Delphes 3 and the project's own format), LHE, HDF5.

`open_events` opens any of them as an `EventSource`, iterated in chunks of selected
events (`EventBatch`) with a `Cutflow`; `EventWriter` writes the project's ROOT files.
"""

from turbosim_hep.io.events import Cutflow, EventBatch, EventSource
from turbosim_hep.io.reader import EventFile, read_events
from turbosim_hep.io.selection import object_counts
from turbosim_hep.io.sources import open_events
from turbosim_hep.io.writer import EventWriter, read_metadata

__all__ = [
    "Cutflow",
    "EventBatch",
    "EventFile",
    "EventSource",
    "EventWriter",
    "object_counts",
    "open_events",
    "read_events",
    "read_metadata",
]
