"""The coffea plugin of turbosim-hep: ``from turbosim_hep.coffea import FastSim``.

See `turbosim_hep.fastsim` for the implementation.
"""

from turbosim_hep.fastsim import (
    FastSim,
    FastSimOutput,
    FastSimProcessor,
    reco_collections,
    simulated_events,
)

__all__ = ["FastSim", "FastSimOutput", "FastSimProcessor", "reco_collections", "simulated_events"]
