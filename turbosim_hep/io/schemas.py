"""coffea NanoEvents schemas for the files turbosim-hep reads and writes.

- `TurboSimSchema`: the project's own files (NanoAOD naming). Electron, Jet, MET and
  the ``Parton`` collection come out as coffea four-vector collections.
- `Delphes3Schema`: Delphes 3.4 files, whose ``Track`` and ``EFlowTrack`` collections
  carry no ``Mass`` branch (coffea's stock Delphes schema requires one).
"""

from __future__ import annotations

import os

from coffea.nanoevents import DelphesSchema, NanoAODSchema, NanoEventsFactory

from turbosim_hep.errors import InputError
from turbosim_hep.io import formats


class TurboSimSchema(NanoAODSchema):
    """NanoAOD schema that also knows the ``Parton`` collection of the hard process."""

    mixins = {**NanoAODSchema.mixins, formats.PARTON: "PtEtaPhiMCollection"}
    #: The files hold no NanoAOD cross-reference indices (``Jet_electronIdx1``, ...).
    warn_missing_crossrefs = False


class Delphes3Schema(DelphesSchema):
    """Delphes schema that reads Delphes 3.4 files (massless tracks)."""

    mixins = {**DelphesSchema.mixins, "Track": "MasslessParticle", "EFlowTrack": "MasslessParticle"}


def schema_for(path: str | os.PathLike) -> tuple[str, type]:
    """Tree name and schema class that read a file.

    Raises
    ------
    InputError
        If the file holds neither a ``Delphes`` nor an ``Events`` tree.
    """
    from turbosim_hep.io.reader import EventFile

    event_file = EventFile(path)
    if event_file.format == "delphes":
        return formats.DELPHES_TREE, Delphes3Schema
    return formats.EVENTS_TREE, TurboSimSchema


def open_nanoevents(path: str | os.PathLike, **kwargs):
    """NanoEvents of a file with the schema its format needs.

    Parameters
    ----------
    path : str or os.PathLike
        A Delphes file or one of the project's files.
    **kwargs
        Passed to `coffea.nanoevents.NanoEventsFactory.from_root` (``mode``,
        ``entry_start``, ...).

    Returns
    -------
    awkward.Array
        The events.
    """
    tree, schema = schema_for(path)
    factory = NanoEventsFactory.from_root({os.fspath(path): tree}, schemaclass=schema, **kwargs)
    return factory.events()


__all__ = ["Delphes3Schema", "TurboSimSchema", "open_nanoevents", "schema_for"]
