"""turbosim-hep: Turbo-Sim fast simulation and unfolding for collider events."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("turbosim-hep")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
