"""Reading and writing events: ROOT (Delphes 3 and the project's own format), HDF5."""

from turbosim_hep.io.reader import Cutflow, EventBatch, EventFile, read_events
from turbosim_hep.io.writer import EventWriter, read_metadata

__all__ = ["Cutflow", "EventBatch", "EventFile", "EventWriter", "read_events", "read_metadata"]
