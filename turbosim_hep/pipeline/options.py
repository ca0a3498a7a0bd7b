"""The options of a run of `simulate_files` and `unfold_files`, declared once.

As uproot declares the options of ``uproot.open`` once and takes them as keywords, the
options that simulate and unfold share are the fields of `RunOptions`: either pass a
`RunOptions` (``options=``), or any of its fields as a keyword, or both (the keywords
override the object)::

    ts.simulate_files("model.pt", ["run.lhe.gz"], "sim.root", seed=1, jobs=2)

    options = RunOptions(seed=1, device="cuda", progress=False)
    ts.simulate_files("model.pt", ["run.lhe.gz"], "sim.root", options=options)
    ts.unfold_files("model.pt", ["detector.root"], "unfolded.root", options=options)

The values are checked when the run starts, as the command line checks its flags. What
only one direction takes (simulate's ``acceptance`` and ``oversample``, unfold's
``samples``) stays a keyword of that function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turbosim_hep.layout import Layout
from turbosim_hep.pipeline.job import CHUNK_EVENTS


@dataclass(frozen=True)
class RunOptions:
    """The options simulate and unfold share.

    Attributes
    ----------
    seed : int
        Seed of the per-event noise; the same seed gives the same output.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    batch_size : int, optional
        Events per forward pass (default: `turbosim_hep.inference.BATCH_EVENTS` of the
        device).
    jobs : int, optional
        Input files processed at the same time in local processes (default: one per
        core, at most one per input). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a Dask distributed scheduler to run the files on.
    chunk_events : int
        Events read per chunk.
    force : bool
        Overwrite an existing output.
    progress : bool
        Show progress bars.
    channel : str
        Which final states to read: the layout's reference one (``ejets``: ``electron``,
        e- nu_e-bar b b-bar u d-bar with an electron of charge -1 at detector level),
        its charge conjugate (``positron``, CP-mirrored through the model), or ``both``.
    compression : str
        Compression of the output, ``ALGORITHM[:LEVEL]`` with ALGORITHM one of ``zstd``,
        ``lz4``, ``zlib``, ``lzma`` (`turbosim_hep.io.writer.parse_compression`);
        recorded in the output's metadata.
    layout : turbosim_hep.layout.Layout or str, optional
        The final state of the inputs: a `Layout`, a built-in name or a layout file.
        Default: the layout the model was trained on, the only one it takes (another
        is refused in one line).
    """

    seed: int = 0
    device: str = "auto"
    batch_size: int | None = None
    jobs: int | None = None
    scheduler: str | None = None
    chunk_events: int = CHUNK_EVENTS
    force: bool = False
    progress: bool = True
    channel: str = "both"
    compression: str = "zstd:1"
    layout: Layout | str | None = None

    @classmethod
    def merge(
        cls, options: RunOptions | None, keywords: Mapping[str, Any], function: str
    ) -> RunOptions:
        """``options`` (default `RunOptions()`) with the fields of ``keywords`` replaced.

        Raises
        ------
        TypeError
            For a keyword that is no field, as Python does for an unknown keyword of
            ``function``.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [name for name in keywords if name not in names]
        if unknown:
            raise TypeError(
                f"{function}() got an unexpected keyword argument {unknown[0]!r} (its "
                f"options: {', '.join(names)})"
            )
        if options is None:
            return cls(**keywords)
        if not isinstance(options, cls):
            raise TypeError(f"{function}(): options must be a RunOptions, got {options!r}")
        return dataclasses.replace(options, **keywords)
