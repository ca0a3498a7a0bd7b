"""Training data: Pythia 8 tt-bar events through a parametric detector that follows a
Delphes card (``turbosim-hep generate``)."""

from turbosim_hep.generate.cards import CARDS, OTUS_TTBAR, DetectorCard, get_card
from turbosim_hep.generate.run import BLOCK_SIZE, GenerationSummary, block_seeds, generate_file

__all__ = [
    "BLOCK_SIZE",
    "CARDS",
    "OTUS_TTBAR",
    "DetectorCard",
    "GenerationSummary",
    "block_seeds",
    "generate_file",
    "get_card",
]
