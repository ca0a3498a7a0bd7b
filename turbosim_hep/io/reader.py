"""Read ROOT files into the fixed Z and X arrays of a `turbosim_hep.layout.Layout`.

Two formats are understood, recognised by their tree: Delphes 3 output (tree
``Delphes``, split TClonesArray branches such as ``Jet.PT`` with ``Jet_size``) and the
project's own files (tree ``Events``, NanoAOD naming, see `turbosim_hep.io.formats`).
Files are streamed with `uproot.TTree.iterate` in chunks of bounded memory and only the
branches needed are read. The layout's selection (`turbosim_hep.io.selection`) is
applied on the way and counted as a cut-flow.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import uproot

from turbosim_hep.errors import InputError, read_head
from turbosim_hep.io import formats
from turbosim_hep.io.events import Cutflow, EventBatch, EventSource, cut_names
from turbosim_hep.io.selection import Format, select_events
from turbosim_hep.io.sources import ROOT_MAGIC
from turbosim_hep.layout import DEFAULT_LAYOUT, LEPTON_KINDS, Layout, resolve_layout

#: Chunk size of `EventFile.iterate` when no number of events is asked for: bounds the
#: memory whatever the number of branches read.
STEP_BYTES = "100 MB"


@functools.cache
def _decompression_executor() -> ThreadPoolExecutor:
    """Threads that decompress baskets in parallel (the codecs release the GIL)."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="turbosim-io")


class EventFile(EventSource):
    """A ROOT file of events in one of the formats turbosim-hep reads.

    Opening checks that the file exists, is ROOT, and holds a known tree; what it holds
    (detector objects, partons) is told by `has_detector` and `has_partons`.

    Parameters
    ----------
    path : str or os.PathLike
        The ROOT file.
    layout : turbosim_hep.layout.Layout or str
        The final state to select (a `Layout`, a built-in name or a layout file);
        default ``ejets``. A file of the project's own format that says in its metadata
        which layout it holds must hold this one to be read (`require`).

    Raises
    ------
    InputError
        If the file is missing, not a ROOT file, truncated (shorter than its header
        says), or holds no known tree (an RNTuple of a known name is named as such).
    """

    format: Format

    def __init__(self, path: str | os.PathLike, layout: Layout | str = DEFAULT_LAYOUT):
        self.path = os.fspath(path)
        self.layout = resolve_layout(layout)
        if read_head(self.path, "ROOT file", size=len(ROOT_MAGIC)) != ROOT_MAGIC:
            raise InputError(self.path, "not a ROOT file")
        try:
            self._file = uproot.open(self.path)
        except Exception as err:  # uproot raises ValueError, OSError, struct errors, ...
            raise InputError(self.path, "truncated or corrupt ROOT file") from err
        size, end = os.path.getsize(self.path), self._file.file.fEND
        if size < end:
            raise InputError(self.path, f"truncated ROOT file ({size:,} of {end:,} bytes)")
        self.format, self.tree = self._find_tree()
        self._keys = set(self.tree.keys(full_paths=False, filter_name=_leaf_names(self.format)))
        #: The layout the file's metadata names (the project's files), if any.
        self.stored_layout = _stored_layout(self._file) if self.format == "turbosim" else None

    def _find_tree(self) -> tuple[Format, uproot.TTree]:
        not_trees = []
        for name, fmt in ((formats.DELPHES_TREE, "delphes"), (formats.EVENTS_TREE, "turbosim")):
            if name in self._file:
                try:
                    obj = self._file[name]
                except Exception as err:
                    problem = f"tree '{name}' is unreadable ({_reason(err)})"
                    raise InputError(self.path, problem) from err
                if isinstance(obj, uproot.TTree):
                    return fmt, obj
                not_trees.append(f"'{name}' is {_kind(obj)}")
        if not_trees:
            raise InputError(
                self.path, f"{', '.join(not_trees)}, not a TTree; turbosim-hep reads TTrees"
            )
        raise InputError(
            self.path,
            f"no '{formats.DELPHES_TREE}' or '{formats.EVENTS_TREE}' tree "
            f"(found: {', '.join(sorted(self._file.keys(cycle=False))) or 'nothing'})",
        )

    @property
    def num_entries(self) -> int:
        """Number of entries in the tree."""
        return self.tree.num_entries

    @property
    def detector_branches(self) -> tuple[str, ...]:
        """Branches the selection and the X space need; optional ones only where present."""
        lepton = self.layout.lepton.kind
        if self.format == "delphes":
            return formats.DELPHES.detector(lepton)
        required = tuple(formats.own_detector_branches(required=True, lepton=lepton))
        optional = formats.own_detector_branches(required=False, lepton=lepton)
        optional = tuple(b for b in optional if b in self._keys)
        return required + optional

    @property
    def parton_branches(self) -> tuple[str, ...]:
        """Branches the Z space needs."""
        if self.format == "delphes":
            return formats.DELPHES.partons
        return tuple(formats.own_parton_branches())

    @property
    def has_detector(self) -> bool:
        """Whether the file holds the reconstructed objects the X space needs."""
        return not self._missing(self.detector_branches)

    @property
    def has_partons(self) -> bool:
        """Whether the file holds a generator record the Z space can come from."""
        return not self._missing(self.parton_branches)

    def _missing(self, branches: tuple[str, ...]) -> list[str]:
        return [b for b in branches if b not in self._keys]

    def require(self, *, detector: bool, partons: bool) -> None:
        """Raise `InputError` naming the missing branches if the file lacks what is asked,
        or naming its layout if its metadata says it holds the events of another one."""
        if self.stored_layout is not None and self.stored_layout != self.layout.name:
            raise InputError(
                self.path,
                f"holds {self.stored_layout} events, not {self.layout.name} ones "
                f"(give --layout {self.stored_layout})",
            )
        missing = []
        if detector:
            missing += self._missing(self.detector_branches)
        if partons:
            missing += self._missing(self.parton_branches)
        if missing:
            shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
            raise InputError(self.path, f"tree '{self.tree.name}' lacks branches {shown}")

    def _unreadable(self, err: Exception) -> InputError:
        """The error of a tree whose baskets cannot be read (corrupt or truncated)."""
        return InputError(self.path, f"cannot read tree '{self.tree.name}' ({_reason(err)})")

    def check_weights(self) -> None:
        """Raise `InputError` if the file's per-event weight (`formats.weight_branch`)
        is NaN or infinite in some entry, naming the branch and the count.

        Negative weights are legitimate (NLO generators write them) and pass.
        """
        weight = formats.weight_branch(self._keys)
        if weight is None:
            return
        bad = 0
        try:
            for values in self.tree.iterate(filter_name=[weight], step_size=STEP_BYTES,
                                            library="np"):
                bad += int(np.count_nonzero(~np.isfinite(values[weight])))
        except Exception as err:  # corrupt baskets, truncated files
            raise self._unreadable(err) from err
        if bad:
            raise InputError(
                self.path,
                f"{bad} of {self.num_entries} events have a NaN or infinite {weight}",
            )

    def iterate(
        self,
        *,
        detector: bool = True,
        partons: bool = True,
        cutflow: Cutflow | None = None,
        chunk_events: int | None = None,
        channel: str | None = None,
        labels: bool = False,
    ) -> Iterator[EventBatch]:
        """Stream the selected events as `EventBatch` chunks (see `EventSource.iterate`).

        Only the branches asked for are read, in chunks of ``chunk_events`` entries
        (default: chunks of `STEP_BYTES`), with the file's per-event weight
        (`formats.weight_branch`) where it has one.
        """
        detector, partons = detector or labels, partons or labels
        if not (detector or partons):
            raise ValueError("ask for the detector objects, the partons, or both")
        self.layout.channels_of(channel or self.layout.reference_channel)  # fails before reading
        chunk_events = self.chunk_size(chunk_events, None)
        self.require(detector=detector, partons=partons)
        branches = (self.detector_branches if detector else ()) + (
            self.parton_branches if partons else ()
        )
        weight = formats.weight_branch(self._keys)
        if weight is not None:
            branches += (weight,)
        cutflow = cutflow if cutflow is not None else Cutflow()
        cutflow.declare(cut_names(detector=detector, partons=partons, layout=self.layout))
        chunks = self.tree.iterate(
            filter_name=list(branches),
            step_size=STEP_BYTES if chunk_events is None else chunk_events,
            report=True,
            library="ak",
            decompression_executor=_decompression_executor(),
        )
        while True:
            try:
                arrays, report = next(chunks)
            except StopIteration:
                return
            except Exception as err:  # corrupt baskets, truncated files
                raise self._unreadable(err) from err
            yield select_events(
                arrays, self.format, start=report.tree_entry_start, detector=detector,
                partons=partons, cutflow=cutflow, channel=channel, labels=labels,
                layout=self.layout,
            )


def read_events(
    path: str | os.PathLike, layout: Layout | str = DEFAULT_LAYOUT, **kwargs
) -> tuple[EventBatch, Cutflow]:
    """Read the selected events of a ROOT file in a layout (default ``ejets``); see
    `EventFile.iterate` for the keywords."""
    return EventFile(path, layout).read(**kwargs)


def _leaf_names(fmt: Format) -> list[str]:
    if fmt == "delphes":
        return [
            *(b for kind in LEPTON_KINDS for b in formats.DELPHES.detector(kind)),
            *formats.DELPHES.partons,
        ]
    return (
        [b for kind in LEPTON_KINDS for b in formats.own_detector_branches(required=True,
                                                                            lepton=kind)]
        + formats.own_detector_branches(required=False)
        + formats.own_detector_branches(required=False, lepton="muon")
        + formats.own_parton_branches()
        + list(formats.WEIGHT_BRANCHES)
    )


def _stored_layout(file: uproot.ReadOnlyDirectory) -> str | None:
    """The layout name a file's metadata holds (`formats.LAYOUT_KEY`), if any."""
    if formats.METADATA_KEY not in file:
        return None
    try:
        stored = json.loads(str(file[formats.METADATA_KEY])).get(formats.LAYOUT_KEY)
    except (ValueError, AttributeError):
        return None  # not the project's metadata: nothing said about the layout
    return None if stored is None else str(stored)


def _kind(obj: object) -> str:
    """``an RNTuple`` or ``a CLASS`` for a ROOT object that is not a TTree."""
    classname = getattr(obj, "classname", type(obj).__name__)
    return "an RNTuple" if "RNTuple" in classname else f"a {classname}"


def _reason(err: Exception) -> str:
    """First line of an exception message, without library-specific detail."""
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__
