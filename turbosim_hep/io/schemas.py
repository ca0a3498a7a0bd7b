"""coffea NanoEvents schemas for the files turbosim-hep reads and writes.

- `TurboSimSchema`: the project's own files (NanoAOD naming). Electron, Jet, MET and
  the ``Parton`` collection come out as coffea four-vector collections.
- `Delphes3Schema`: Delphes 3.4 files, whose ``Track`` and ``EFlowTrack`` collections
  carry no ``Mass`` branch (coffea's stock Delphes schema requires one); the stored
  energy of the generator particles stays available as ``Particle.Energy``.
"""

from __future__ import annotations

import copy
import os

from coffea.nanoevents import DelphesSchema, NanoAODSchema, NanoEventsFactory

from turbosim_hep.io import formats


class TurboSimSchema(NanoAODSchema):
    """NanoAOD schema that also knows the ``Parton`` collection of the hard process."""

    mixins = {**NanoAODSchema.mixins, formats.PARTON: "PtEtaPhiMCollection"}
    #: The files hold no NanoAOD cross-reference indices (``Jet_electronIdx1``, ...).
    warn_missing_crossrefs = False

    def _build_collections(self, field_names, input_contents):
        # Simulated files also store px, py, pz, E beside pt, eta, phi, mass (for plain
        # uproot users). coffea's vector behaviours refuse two coordinate systems in one
        # record, and compute px, ... from pt, eta, phi anyway: leave the copies out.
        names = set(field_names)
        redundant = {
            f"{name[: -len('_pt')]}_{component}"
            for name in names
            if name.endswith("_pt")
            for component in ("px", "py", "pz", "E")
        }
        kept = [
            (n, c)
            for n, c in zip(field_names, input_contents, strict=True)
            if n not in redundant
        ]
        # NanoAOD has no Photon_mass, so coffea makes one of zeros (and warns when a file
        # has it). Ours store it (zero): keep the stored branches, make only missing ones.
        self.full_like_items = {
            name: item for name, item in NanoAODSchema.full_like_items.items() if name not in names
        }
        return super()._build_collections([n for n, _ in kept], [c for _, c in kept])


class Delphes3Schema(DelphesSchema):
    """Delphes schema that reads Delphes 3.4 files (massless tracks)."""

    mixins = {**DelphesSchema.mixins, "Track": "MasslessParticle", "EFlowTrack": "MasslessParticle"}

    def _build_collections(self, branch_forms):
        # The stock schema drops the stored energy of the generator particles (it would
        # shadow the Lorentz-vector property E); keep it as the field ``Energy``.
        stored_energy = "Particle/Particle.E"
        if stored_energy in branch_forms:
            branch_forms["Particle/Particle.Energy"] = copy.deepcopy(branch_forms[stored_energy])
        return super()._build_collections(branch_forms)


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
