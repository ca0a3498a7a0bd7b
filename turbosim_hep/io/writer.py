"""Write events as ROOT files in the project's own format (one ``Events`` TTree).

The tree follows the NanoAOD naming convention (``nJet``, ``Jet_pt``, ``MET_pt``, ...,
and ``run``, ``luminosityBlock``, ``event``) so that coffea reads it with
`turbosim_hep.io.schemas.TurboSimSchema`. ``event`` is the entry number of each event
in its source file, so an output also works as a friend of its input.

`EventWriter` writes to a temporary file beside the target and renames it only when
everything was written; on any error or Ctrl-C nothing is left behind. `read_chunks`
reads such a file back as the chunks `EventWriter.write` takes, so that files are
merged without knowing their branches. `parse_compression` turns the ``--compression``
value of the commands that write ROOT files into uproot's compression.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType

import awkward as ak
import numpy as np
import uproot

from turbosim_hep.arguments import ArgumentError
from turbosim_hep.errors import TurbosimError
from turbosim_hep.io import formats
from turbosim_hep.kinematics import ptetaphim_from_p4
from turbosim_hep.layout import COMPONENTS, DEFAULT_LAYOUT, N_COMPONENTS, Layout, cp_mirror
from turbosim_hep.outputs import AtomicOutput, writing

#: Default compression (see docs/formats.md for the choice).
DEFAULT_COMPRESSION = uproot.ZSTD(1)
#: ``--compression`` names and the uproot classes they stand for.
COMPRESSION_ALGORITHMS = {
    "zstd": uproot.ZSTD, "lz4": uproot.LZ4, "zlib": uproot.ZLIB, "lzma": uproot.LZMA,
}
#: Level of a ``--compression`` value that names none: the fastest that compresses.
DEFAULT_COMPRESSION_LEVEL = 1
#: Chunk size of `read_chunks`.
READ_STEP_BYTES = "200 MB"

Chunk = Mapping[str, "ak.Array | np.ndarray"]


def check_chunk(chunk: object, branches: Iterable[str] | None = None) -> None:
    """Check a chunk of `EventWriter.write`: a non-empty mapping of branch names to
    NumPy or awkward arrays of one length, with the keys ``branches`` when given.

    Raises
    ------
    ArgumentError
        Saying what is wrong.
    """
    if not isinstance(chunk, Mapping) or not chunk:
        raise ArgumentError(
            "chunk", f"must be a mapping of branch names to arrays, got {type(chunk).__name__}"
        )
    lengths = set()
    for name, value in chunk.items():
        if not isinstance(name, str) or not isinstance(value, (np.ndarray, ak.Array)):
            raise ArgumentError(
                "chunk", f"branch {name!r} must be a NumPy or awkward array, got "
                f"{type(value).__name__}"
            )
        lengths.add(len(value))
    if len(lengths) > 1:
        raise ArgumentError("chunk", f"its branches have different lengths {sorted(lengths)}")
    if branches is not None and set(chunk) != set(branches):
        raise ArgumentError(
            "chunk", f"has the branches {sorted(chunk)}, the file has {sorted(branches)}"
        )


class EventWriter:
    """Stream chunks of events into a new ROOT file.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    force : bool
        Overwrite an existing file.
    metadata : mapping, optional
        JSON-serialisable facts stored beside the tree (model hash, seed, version, ...),
        read back by `read_metadata`.
    compression : uproot compression, optional
        Defaults to `DEFAULT_COMPRESSION`.
    atomic : bool
        Write through a temporary file renamed to ``path`` at the end
        (`turbosim_hep.outputs.AtomicOutput`). False writes ``path`` itself (removed
        again on an error): for a file that is itself a temporary of the caller (the
        parts of a parallel run), so that a killed worker leaves no temporary of its own.

    Raises
    ------
    OutputError
        If the output cannot be written; `turbosim_hep.errors.WriteError` (naming
        ``path``) when writing fails, for example on a full disk.

    Examples
    --------
    >>> with EventWriter("out.root") as writer:  # doctest: +SKIP
    ...     writer.write(event_columns(entry) | reco_columns(x) | parton_columns(z))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        force: bool = False,
        metadata: Mapping[str, object] | None = None,
        compression: uproot.compression.Compression | None = None,
        atomic: bool = True,
    ):
        self._output = AtomicOutput(path, force=force) if atomic else None
        self.path = self._output.path if atomic else os.fspath(path)
        self._target = self._output.tmp_path if atomic else self.path
        self._metadata = dict(metadata or {})
        self._compression = compression if compression is not None else DEFAULT_COMPRESSION
        self._file: uproot.WritableDirectory | None = None
        self._tree = None
        self._branches: tuple[str, ...] | None = None
        self.entries = 0

    @property
    def metadata(self) -> dict[str, object]:
        """The metadata to be stored at the end (may be updated while writing)."""
        return self._metadata

    def __enter__(self) -> EventWriter:
        try:
            with writing(self.path):
                self._file = uproot.recreate(self._target, compression=self._compression)
        except BaseException as err:
            self._finish(err)
            raise
        return self

    def write(self, chunk: Chunk) -> None:
        """Append a chunk: flat NumPy columns and jagged awkward collections.

        The first chunk fixes the branches; later chunks must have the same keys.

        Raises
        ------
        ArgumentError
            If ``chunk`` is not a non-empty mapping of branch names to NumPy or awkward
            arrays of one length, or its keys are not those of the first chunk.
        """
        if self._file is None:
            raise RuntimeError("EventWriter is used outside its 'with' block")
        check_chunk(chunk, self._branches)
        self._branches = tuple(chunk)
        with writing(self.path):
            if self._tree is None:
                branch_types = {
                    name: value.type.content if isinstance(value, ak.Array) else value.dtype
                    for name, value in chunk.items()
                }
                self._tree = self._file.mktree(
                    formats.EVENTS_TREE,
                    branch_types,
                    counter_name=formats.counter,
                    field_name=_field_branch,
                )
            self._tree.extend(dict(chunk))
        self.entries += len(next(iter(chunk.values())))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            with contextlib.suppress(Exception):  # the file is discarded: its error is not news
                self._file.close()
            self._finish(exc)
            return
        try:
            with writing(self.path):
                self._metadata.setdefault("entries", self.entries)
                self._file[formats.METADATA_KEY] = json.dumps(self._metadata, sort_keys=True)
                self._file.close()
        except BaseException as err:
            self._finish(err)
            raise
        self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        """Rename the temporary to the output (``error`` None) or remove what was written."""
        if self._output is not None:
            self._output.__exit__(type(error) if error else None, error, None)
        elif error is not None and os.path.exists(self.path):
            os.unlink(self.path)


def parse_compression(text: str) -> uproot.compression.Compression:
    """The uproot compression of a ``--compression`` value, ``ALGORITHM[:LEVEL]``.

    Parameters
    ----------
    text : str
        One of `COMPRESSION_ALGORITHMS` (``zstd``, ``lz4``, ``zlib``, ``lzma``), with an
        optional level (default `DEFAULT_COMPRESSION_LEVEL`; 0 stores the data
        uncompressed).

    Raises
    ------
    TurbosimError
        For a value that is not such a text (an unknown algorithm, a number), or a level
        that is not an integer in its range.
    """
    name, colon, level = text.partition(":") if isinstance(text, str) else (None, "", "")
    if name not in COMPRESSION_ALGORITHMS or (colon and not level.isdigit()):
        raise TurbosimError(
            f"--compression: expected one of {', '.join(COMPRESSION_ALGORITHMS)} with an "
            f"optional :LEVEL, got {text!r}"
        )
    try:
        return COMPRESSION_ALGORITHMS[name](int(level or DEFAULT_COMPRESSION_LEVEL))
    except ValueError as err:  # outside uproot's range of the algorithm's levels
        message = str(err)
        raise TurbosimError(f"--compression {text}: {message[:1].lower()}{message[1:]}") from err


def compression_text(compression: uproot.compression.Compression) -> str:
    """The ``ALGORITHM:LEVEL`` value `parse_compression` turns into ``compression``."""
    return f"{compression.name.lower()}:{compression.level}"


def _field_branch(collection: str, field: str) -> str:
    """The branch of a collection's field (a top-level column, ``collection`` empty: itself)."""
    return field if collection == "" else formats.branch(collection, field)


def read_chunks(
    path: str | os.PathLike, *, step_bytes: str = READ_STEP_BYTES
) -> Iterator[dict[str, ak.Array | np.ndarray]]:
    """The events of a file `EventWriter` wrote, as the chunks `EventWriter.write` takes.

    Writing the chunks in order re-creates the file's branches in their order: flat
    branches come back as NumPy columns, each collection (counter ``nJet`` with
    ``Jet_pt``, ``Jet_eta``, ...) as one jagged record array (``Jet``).

    Parameters
    ----------
    path : str or os.PathLike
        A file in the project's own format.
    step_bytes : str
        Memory size of a chunk.

    Yields
    ------
    dict
        Column name -> NumPy array or jagged awkward record array.
    """
    with uproot.open(path) as file:
        tree = file[formats.EVENTS_TREE]
        columns = _written_columns(tree)
        for arrays in tree.iterate(step_size=step_bytes, library="ak"):
            yield {
                name: (
                    ak.to_numpy(arrays[source])
                    if isinstance(source, str)
                    else ak.zip({field: arrays[branch] for field, branch in source.items()})
                )
                for name, source in columns.items()
            }


def _written_columns(tree: uproot.TTree) -> dict[str, str | dict[str, str]]:
    """The columns `EventWriter.write` was given, in the order of the tree's branches.

    A flat column maps to its branch, a collection to ``{field: branch}`` (its field
    branches are those counted by the collection's counter branch).
    """
    counter_of = {
        branch.name: branch.count_branch.name
        for branch in tree.branches
        if branch.count_branch is not None
    }
    columns: dict[str, str | dict[str, str]] = {}
    for name in tree.keys():
        if name in counter_of:
            continue  # a field of the collection of its counter, placed with the counter
        members = [branch for branch, counter in counter_of.items() if counter == name]
        if not members:
            columns[name] = name
            continue
        collection = _collection_of(name, members)
        prefix = len(_field_branch(collection, ""))
        columns[collection] = {branch[prefix:]: branch for branch in members}
    return columns


def _collection_of(counter: str, members: list[str]) -> str:
    """The collection whose counter branch is ``counter`` and field branches ``members``."""
    for end in range(1, len(members[0])):
        collection = members[0][:end]
        if formats.counter(collection) == counter and all(
            branch.startswith(_field_branch(collection, "")) for branch in members
        ):
            return collection
    raise ValueError(f"branches {members} counted by {counter} are not one collection")


def read_metadata(path: str | os.PathLike) -> dict[str, object]:
    """The metadata an `EventWriter` stored in a file (empty if there is none)."""
    with uproot.open(path) as file:
        if formats.METADATA_KEY not in file:
            return {}
        return json.loads(str(file[formats.METADATA_KEY]))


# --- building chunks from fixed arrays ---------------------------------------------------


def event_columns(
    entry: np.ndarray, *, run: int = 1, weight: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The NanoAOD event-id columns: ``run``, ``luminosityBlock`` and ``event`` (= entry).

    With ``weight``, also the per-event weight branch `formats.WEIGHT` (``genWeight``).
    """
    n = len(entry)
    columns = {
        "run": np.full(n, run, dtype=np.uint32),
        "luminosityBlock": np.ones(n, dtype=np.uint32),
        "event": np.asarray(entry, dtype=np.uint64),
    }
    if weight is not None:
        columns[formats.WEIGHT] = np.asarray(weight, dtype=np.float32)
    return columns


def collection(
    p4: np.ndarray, *, with_cartesian: bool = False, **extra: np.ndarray
) -> ak.Array:
    """A jagged collection from regular (n, k, 4) four-momenta.

    Parameters
    ----------
    p4 : numpy.ndarray
        Shape (n, k, 4): k objects per event, (px, py, pz, E) each.
    with_cartesian : bool
        Also store ``px, py, pz, E`` beside ``pt, eta, phi, mass``.
    **extra : numpy.ndarray
        Further (n, k) fields, such as ``charge`` or ``pdgId``.

    Returns
    -------
    awkward.Array
        ``n * var * {pt, eta, phi, mass, ...}`` with k entries in every event.
    """
    n, k, _ = p4.shape
    pt, eta, phi, mass = ptetaphim_from_p4(p4)
    fields = {"pt": pt, "eta": eta, "phi": phi, "mass": mass}
    if with_cartesian:
        fields |= dict(zip(COMPONENTS, np.moveaxis(p4, -1, 0), strict=True))
    fields |= extra
    flat = {
        name: np.ascontiguousarray(value, dtype=value.dtype).reshape(n * k)
        for name, value in fields.items()
    }
    return ak.unflatten(ak.zip(flat), np.full(n, k, dtype=np.int64))


def reco_collections(
    x: np.ndarray,
    *,
    with_cartesian: bool = False,
    conjugate: np.ndarray | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> dict[str, ak.Array]:
    """The lepton, Jet and MET of an (n, 24) X array, as awkward arrays.

    The one conversion of the X layout into detector-level collections: the writer stores
    them (`reco_columns`) and the coffea plugin (`turbosim_hep.coffea`) gives them coffea's
    NanoAOD behaviours.

    Parameters
    ----------
    x : numpy.ndarray
        Shape (n, 24) in the X space of ``layout``.
    with_cartesian : bool
        Also give ``px, py, pz, E`` (``px, py`` for MET) beside ``pt, eta, phi, mass``.
    conjugate : numpy.ndarray, optional
        bool (n,): events of the charge-conjugate channel, held CP-mirrored in ``x``
        (`turbosim_hep.io.events.EventBatch`); they are mirrored back and their
        lepton has the opposite charge.
    layout : turbosim_hep.layout.Layout
        The final state (default ``ejets``): its lepton's collection and charge.

    Returns
    -------
    dict[str, awkward.Array]
        Keyed by the lepton's collection (`formats.ELECTRON` or `formats.MUON`),
        `formats.JET` and `formats.MET`: ``n * var * {pt, eta, phi, mass, charge}`` (one
        lepton per event, of the charge of its channel), ``n * var * {pt, eta, phi,
        mass}`` (the four jets in pT order) and ``n * {pt, phi}``, float32 but for the
        int32 charge. Masses follow from the four-momenta (0 for the massless objects of
        the X space, negative for a space-like one, see
        `turbosim_hep.kinematics.ptetaphim_from_p4`).
    """
    n = len(x)
    x = _unmirrored(x, conjugate)
    charge = np.full((n, 1), layout.lepton_charge, dtype=np.int32)
    if conjugate is not None:
        charge[conjugate] = -layout.lepton_charge
    objects = np.asarray(x, dtype=np.float32).reshape(n, len(layout.objects), N_COMPONENTS)
    lepton = objects[:, :1]
    met = objects[:, 1]
    jets = objects[:, 2:]
    met_fields = {
        "pt": np.hypot(met[:, 0], met[:, 1]).astype(np.float32),
        "phi": np.arctan2(met[:, 1], met[:, 0]).astype(np.float32),
    }
    if with_cartesian:
        met_fields |= {"px": met[:, 0].copy(), "py": met[:, 1].copy()}
    return {
        formats.LEPTON_COLLECTIONS[layout.lepton.kind]: collection(
            lepton, with_cartesian=with_cartesian, charge=charge
        ),
        formats.JET: collection(jets, with_cartesian=with_cartesian),
        formats.MET: ak.zip(met_fields),
    }


def reco_columns(
    x: np.ndarray,
    *,
    with_cartesian: bool = False,
    conjugate: np.ndarray | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> dict[str, ak.Array | np.ndarray]:
    """The lepton, Jet and MET columns from an (n, 24) X array (`reco_collections`).

    MET is stored as the flat branches ``MET_pt`` and ``MET_phi`` (plus ``MET_px``,
    ``MET_py`` on request), as NanoAOD stores it.
    """
    collections = reco_collections(
        x, with_cartesian=with_cartesian, conjugate=conjugate, layout=layout
    )
    met = collections.pop(formats.MET)
    return collections | {formats.branch(formats.MET, f): ak.to_numpy(met[f]) for f in met.fields}


def parton_columns(
    z: np.ndarray,
    *,
    with_cartesian: bool = False,
    conjugate: np.ndarray | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> dict[str, ak.Array]:
    """The ``Parton`` collection (the partons in Z order, with ``pdgId``) of a Z array.

    Events flagged in ``conjugate`` (held CP-mirrored, see `reco_collections`) are
    mirrored back and get the particle ids of the layout's charge-conjugate channel.
    """
    n = len(z)
    z = _unmirrored(z, conjugate)
    n_partons = len(layout.partons)
    p4 = np.asarray(z, dtype=np.float32).reshape(n, n_partons, N_COMPONENTS)
    pdg = np.broadcast_to(layout.parton_pdg_ids(), (n, n_partons))
    if conjugate is not None and conjugate.any():
        pdg = np.where(conjugate[:, None], layout.parton_pdg_ids(layout.channels[1]), pdg)
    return {formats.PARTON: collection(p4, with_cartesian=with_cartesian, pdgId=pdg)}


def _unmirrored(p4: np.ndarray, conjugate: np.ndarray | None) -> np.ndarray:
    """``p4`` with the rows of the charge-conjugate events mirrored back."""
    if conjugate is None or not conjugate.any():
        return p4
    p4 = np.array(p4, dtype=np.float32, copy=True)
    p4[conjugate] = cp_mirror(p4[conjugate])
    return p4

