"""The posterior samples of an ``unfold --samples K`` file, grouped by detector event.

``unfold --samples K`` writes K parton events per selected detector event, each a draw
from the encoder's q(z | x), as rows of one tree in the order of the pipeline (input,
chunk, sample, event: the K samples of an event are not next to each other). Each row
carries the event's ids: ``source`` (the input's index in the metadata list ``inputs``),
``event`` (its entry number there) and ``replica`` (the sample, 0 to K - 1).
`posterior_samples` groups them into one (n_events, K, 24) array, with the ids that
match every detector event to its truth (docs/simulate.md, "Posterior samples").
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Literal

import awkward as ak
import numpy as np

from turbosim_hep.arguments import ArgumentError
from turbosim_hep.errors import InputError
from turbosim_hep.io import formats
from turbosim_hep.io.reader import EventFile
from turbosim_hep.io.writer import read_metadata
from turbosim_hep.layout import DEFAULT_LAYOUT, N_FEATURES, N_OBJECTS, Layout, cp_mirror

#: The Cartesian branches of the written partons, in the component order of Z.
_PARTON_BRANCHES = tuple(f"{formats.PARTON}_{c}" for c in ("px", "py", "pz", "E"))


@dataclass(frozen=True)
class PosteriorSamples:
    """The K parton events drawn for each detector event of an unfolded file.

    Events are sorted by (``source``, ``event``): by input, then by entry number.

    Attributes
    ----------
    z : numpy.ndarray
        float32 (n_events, K, 24): sample k of event i is ``z[i, k]``, the six partons
        in Z order (`turbosim_hep.layout.Z_COLUMNS`), (px, py, pz, E) each, in GeV.
    source : numpy.ndarray
        uint32 (n_events,): index of each event's input in ``inputs``.
    event : numpy.ndarray
        uint64 (n_events,): entry number of each event in its input, as the truth
        file numbers it (``read_events(truth).entry``, or the truth's own ``event``).
    conjugate : numpy.ndarray
        bool (n_events,): events of the charge-conjugate channel (a positron).
    weight : numpy.ndarray
        float32 (n_events,): the event's weight, the sum of its K samples' weights
        (each sample weighs 1/K of it).
    inputs : list of str
        The unfolded inputs (base names), as the metadata lists them.
    frame : {"own", "reference"}
        The frame of ``z`` for charge-conjugate events (see `posterior_samples`).
    """

    z: np.ndarray
    source: np.ndarray
    event: np.ndarray
    conjugate: np.ndarray
    weight: np.ndarray
    inputs: list[str]
    frame: str

    def __len__(self) -> int:
        return len(self.event)

    @property
    def samples(self) -> int:
        """K, the samples per event."""
        return self.z.shape[1]


def posterior_samples(
    path: str | os.PathLike, *, frame: Literal["own", "reference"] = "own"
) -> PosteriorSamples:
    """The posterior samples of an unfolded file, one row of K samples per detector event.

    Parameters
    ----------
    path : str or os.PathLike
        An output of ``turbosim-hep unfold`` (any ``--samples``; K = 1 gives one sample
        per event).
    frame : {"own", "reference"}
        ``own``: every event as written, charge-conjugate events with their own momenta
        (as their truth file stores them); ``reference``: charge-conjugate events
        CP-mirrored onto the reference channel's layout
        (`turbosim_hep.cp_mirror`), as ``read_events`` returns their truth.

    Returns
    -------
    PosteriorSamples
        The samples ``z`` (n_events, K, 24) and the ids and weight of every event.
        Events with fewer than K samples (the model gave NaN or infinite values for
        some, which were not written; none for a sound model) are left out, with a
        warning that counts them.

    Raises
    ------
    InputError
        If the file cannot be read, or is not an output of ``unfold``.
    ArgumentError
        If ``frame`` is not one of the two.

    Examples
    --------
    >>> samples = posterior_samples("posterior.root")  # doctest: +SKIP
    >>> mean = samples.z.mean(axis=1)                    # per-event posterior mean
    >>> low, high = np.quantile(samples.z, [0.16, 0.84], axis=1)  # central 68 %
    """
    if frame not in ("own", "reference"):
        raise ArgumentError("frame", f"must be one of own, reference, not {frame!r}")
    source_file = EventFile(path)
    metadata = read_metadata(path)
    if metadata.get("command") != "unfold":
        raise InputError(path, "not an output of 'turbosim-hep unfold'")
    k = int(metadata.get("oversample", 1))
    branches = [formats.SOURCE, "event", formats.EVENT_WEIGHT, *_PARTON_BRANCHES,
                f"{formats.PARTON}_pdgId"]
    if k > 1:
        branches.append(formats.REPLICA)
    try:
        arrays = source_file.tree.arrays(branches, library="ak")
    except Exception as err:  # corrupt baskets, missing branches
        raise InputError(path, f"cannot read the unfolded events ({err})") from err
    rows = len(arrays)
    z = np.stack(
        [ak.to_numpy(ak.flatten(arrays[b])).reshape(rows, N_OBJECTS)
         for b in _PARTON_BRANCHES], axis=-1,
    ).reshape(rows, N_FEATURES).astype(np.float32, copy=False)
    source = ak.to_numpy(arrays[formats.SOURCE]).astype(np.uint32, copy=False)
    event = ak.to_numpy(arrays["event"]).astype(np.uint64, copy=False)
    replica = (ak.to_numpy(arrays[formats.REPLICA]).astype(np.int64) if k > 1
               else np.zeros(rows, dtype=np.int64))
    # the lepton slot's id is the reference channel's with the opposite sign (-11 for ejets)
    definition = metadata.get(formats.LAYOUT_DEFINITION_KEY)
    event_layout = DEFAULT_LAYOUT if definition is None else Layout.from_dict(definition)
    conjugate = ak.to_numpy(arrays[f"{formats.PARTON}_pdgId"][:, 0]) == (
        -event_layout.parton_pdg_ids()[0]
    )
    weight = ak.to_numpy(arrays[formats.EVENT_WEIGHT]).astype(np.float32, copy=False)
    if frame == "reference" and conjugate.any():
        z[conjugate] = cp_mirror(z[conjugate])

    order = np.lexsort((replica, event, source))
    source, event, replica = source[order], event[order], replica[order]
    new = np.ones(rows, dtype=bool)
    new[1:] = (source[1:] != source[:-1]) | (event[1:] != event[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, rows))
    complete = counts == k
    if not complete.all():
        warnings.warn(
            f"{os.fspath(path)}: {np.count_nonzero(~complete)} of {len(counts)} events have "
            f"fewer than {k} samples (non-finite model outputs) and are left out",
            stacklevel=2,
        )
    first = starts[complete]
    taken = order[first[:, None] + np.arange(k)]  # (n_events, K) rows of the file
    return PosteriorSamples(
        z=z[taken],
        source=source[first],
        event=event[first],
        conjugate=conjugate[taken[:, 0]],
        weight=weight[taken].sum(axis=1, dtype=np.float64).astype(np.float32),
        inputs=list(metadata.get("inputs", [])),
        frame=frame,
    )
