"""Pythia 8 generation of pp -> tt-bar at 13 TeV in the final state of a layout
(``ejets``, the paper's: tt-bar -> e- nu_e-bar b b-bar u d-bar; ``mujets``: the muon's).

Events come out as arrays, never as per-particle Python objects: the final state through
Pythia's batch interface (`Pythia.nextBatch`, which fills an awkward array in C++), and
the hard process from the process record, which a `UserHooks` collects once per event
(15 entries) before the shower. The hard-process partons are the pre-shower ones, as in
the reference data set (MadGraph partons, showered afterwards by Pythia).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import awkward as ak
import numpy as np

from turbosim_hep.layout import DEFAULT_LAYOUT, N_COMPONENTS, Layout

Level = Literal["detector", "parton"]
LEVELS: tuple[str, ...] = ("detector", "parton")

#: Centre-of-mass energy (GeV).
SQRT_S = 13000.0

#: tt-bar production with t -> b W; the W decays are the layout's
#: (`turbosim_hep.layout.Layout.w_decay_settings`; ``ejets``: W+ -> u d-bar and
#: W- -> e- nu_e-bar, the channel of the reference data set).
PROCESS_SETTINGS: tuple[str, ...] = (
    f"Beams:eCM = {SQRT_S}",
    "Top:gg2ttbar = on",
    "Top:qqbar2ttbar = on",
    "6:onMode = off",
    "6:onIfAny = 5",
)
#: Particles with c*tau0 above 10 mm are left to the detector (K0S, Lambda, ...), the
#: usual LHC convention and the one the card's energy fractions for 310 and 3122 expect.
DECAY_SETTINGS: tuple[str, ...] = ("ParticleDecays:limitTau0 = on", "ParticleDecays:tau0Max = 10")
#: Hard process only: no shower, MPI or hadronisation.
PARTON_LEVEL_SETTINGS: tuple[str, ...] = ("PartonLevel:all = off", "HadronLevel:all = off")
QUIET_SETTINGS: tuple[str, ...] = ("Print:quiet = on", "Next:numberCount = 0")

#: Largest seed Pythia accepts.
MAX_PYTHIA_SEED = 900_000_000


@dataclass
class GeneratedEvents:
    """A batch of generated events as arrays.

    Attributes
    ----------
    z : numpy.ndarray
        float64 (n, 24): (px, py, pz, E) of the six hard-process partons in Z order.
    x1, x2 : numpy.ndarray
        Momentum fractions of the incoming partons.
    particles : awkward.Array or None
        ``n * var * {pid, charge, px, py, pz, E, mass}`` final-state particles
        (None at parton level).
    """

    z: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    particles: ak.Array | None = None

    def __len__(self) -> int:
        return len(self.z)


def _import_pythia():
    try:
        import pythia8mc
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(
            "event generation needs Pythia 8: pip install 'turbosim-hep[generate]'"
        ) from err
    return pythia8mc


def _hard_process_hook(pythia8mc):
    """A UserHooks that keeps the process record of every event (after resonance decays)."""

    class HardProcessRecorder(pythia8mc.UserHooks):
        def __init__(self):
            pythia8mc.UserHooks.__init__(self)
            self.records: list[list[tuple[float, ...]]] = []

        def canVetoProcessLevel(self) -> bool:  # noqa: N802 - Pythia's name
            return True

        def doVetoProcessLevel(self, process) -> bool:  # noqa: N802 - Pythia's name
            self.records.append(
                [(q.id(), q.mother1(), q.px(), q.py(), q.pz(), q.e()) for q in process]
            )
            return False

    return HardProcessRecorder()


class TTbarGenerator:
    """Pythia 8 set up for the tt-bar final state of a layout.

    Parameters
    ----------
    seed : int
        Pythia random seed, 1 to 900,000,000.
    level : {"detector", "parton"}
        ``"detector"``: shower, MPI and hadronisation on, final-state particles returned.
        ``"parton"``: hard process only.
    extra_settings : sequence of str
        Further ``readString`` settings, applied last.
    layout : turbosim_hep.layout.Layout
        The final state (default ``ejets``): its W decays, and its partons in Z order.
    """

    def __init__(
        self,
        seed: int,
        level: Level = "detector",
        extra_settings: tuple[str, ...] = (),
        layout: Layout = DEFAULT_LAYOUT,
    ):
        if not 1 <= seed <= MAX_PYTHIA_SEED:
            raise ValueError(f"Pythia seed must be in 1..{MAX_PYTHIA_SEED}, got {seed}")
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r} (expected one of {', '.join(LEVELS)})")
        pythia8mc = _import_pythia()
        self.level = level
        self.layout = layout
        self.pythia = pythia8mc.Pythia("", False)
        settings = QUIET_SETTINGS + PROCESS_SETTINGS + layout.w_decay_settings + DECAY_SETTINGS
        if level == "parton":
            settings += PARTON_LEVEL_SETTINGS
        settings += ("Random:setSeed = on", f"Random:seed = {seed}") + tuple(extra_settings)
        for line in settings:
            if not self.pythia.readString(line):
                raise ValueError(f"Pythia rejected the setting {line!r}")
        self._hook = _hard_process_hook(pythia8mc)
        self.pythia.setUserHooksPtr(self._hook)
        if not self.pythia.init():
            raise RuntimeError("Pythia initialisation failed")
        # sorted particle ids and their charges, grown as new ids appear (id 0, which no
        # particle has, keeps the table from being empty)
        self._charge_table: tuple[np.ndarray, np.ndarray] = (
            np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.float64)
        )

    def generate(self, n: int) -> GeneratedEvents:
        """Generate ``n`` events (events Pythia fails on are retried, as Pythia's 'skip')."""
        self._hook.records.clear()
        batch = self.pythia.nextBatch(n, "skip")
        records = np.array(self._hook.records, dtype=np.float64)  # (n_tried, 15, 6)
        info = batch["info"]
        if self.level == "parton":
            keep = np.arange(len(records))
            particles = None
        else:
            keep = _match_records(records, batch["prt"])
            particles = self._final_state(batch["prt"])
        records = records[keep]
        z = hard_partons(records, self.layout)
        return GeneratedEvents(
            z=z,
            x1=ak.to_numpy(info["x1"]),
            x2=ak.to_numpy(info["x2"]),
            particles=particles,
        )

    def _final_state(self, prt: ak.Array) -> ak.Array:
        """The final-state particles of the event record (status > 0) as flat leaves.

        Only the leaves needed are flattened and masked; masking the whole record (14
        fields per entry, final-state or not) would copy far more.
        """
        status = ak.to_numpy(ak.flatten(prt["status"]))
        final = status > 0
        counts = ak.to_numpy(ak.sum(prt["status"] > 0, axis=1))
        pid = ak.to_numpy(ak.flatten(prt["id"]))[final]
        momentum = prt["p"]
        flat = {
            "pid": pid,
            "charge": self._charge(pid),
            **{
                name: ak.to_numpy(ak.flatten(momentum[component]))[final]
                for name, component in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "e"))
            },
            "mass": ak.to_numpy(ak.flatten(prt["m"]))[final],
        }
        return ak.unflatten(ak.zip(flat), counts)

    def _charge(self, pid: np.ndarray) -> np.ndarray:
        """Electric charge of each particle, from Pythia's particle data (cached by id)."""
        codes, table = self._charge_table
        index = np.minimum(np.searchsorted(codes, pid), len(codes) - 1)
        unknown = codes[index] != pid
        if unknown.any():  # ids not seen before: extend the table, then look up again
            data = self.pythia.particleData
            new = np.unique(pid[unknown])
            codes = np.concatenate([codes, new])
            table = np.concatenate([table, [data.charge(int(code)) for code in new]])
            order = np.argsort(codes)
            self._charge_table = codes, table = codes[order], table[order]
            index = np.searchsorted(codes, pid)
        return table[index].astype(np.int8)


def _match_records(records: np.ndarray, prt: ak.Array) -> np.ndarray:
    """Rows of the hook's records that belong to the events ``nextBatch`` returned.

    A record whose event later failed (and was skipped) has no event, so the events'
    records are an ordered subsequence of all records: event ``i`` has row ``i + k`` for
    some ``k`` up to the number of skipped events. The top quarks of the event record
    (entries 5 and 6) are copies of those of the process record (equal up to the last
    bits of a double), which identifies the row.

    Raises
    ------
    RuntimeError
        If an event has no record (a bug, not bad input).
    """
    top = prt["p"][:, 5]
    keys = np.stack([ak.to_numpy(top[c]) for c in ("px", "py", "pz", "e")], axis=1)
    skipped = len(records) - len(keys)
    window = np.arange(len(keys))[:, None] + np.arange(skipped + 1)  # candidate rows
    match = np.isclose(records[window, 5, 2:], keys[:, None, :], rtol=1e-9, atol=1e-9).all(-1)
    if not match.any(axis=1).all():
        raise RuntimeError("a generated event has no hard-process record")
    return window[np.arange(len(keys)), match.argmax(axis=1)]


def hard_partons(records: np.ndarray, layout: Layout = DEFAULT_LAYOUT) -> np.ndarray:
    """The Z partons of a layout from process records.

    Parameters
    ----------
    records : numpy.ndarray
        (n, k, 6) rows of (id, mother1, px, py, pz, E) of the process record.
    layout : turbosim_hep.layout.Layout
        Whose partons, in its Z order.

    Returns
    -------
    numpy.ndarray
        float64 (n, 24) four-momenta in Z order.

    Raises
    ------
    RuntimeError
        If a record lacks one of the six partons (the channel settings were changed).
    """
    n = len(records)
    pid = records[:, :, 0].astype(np.int64)
    mother = records[:, :, 1].astype(np.int64)
    mother_pid = np.take_along_axis(pid, mother, axis=1)
    z = np.empty((n, len(layout.partons), N_COMPONENTS))
    for k, parton in enumerate(layout.partons):
        match = (pid == parton.pdg_id) & (mother_pid == parton.parent_pdg_id)
        if not np.all(match.any(axis=1)):
            raise RuntimeError(f"a hard process lacks the {parton.name} of {layout.name}")
        index = np.argmax(match, axis=1)
        z[:, k] = records[np.arange(n), index, 2:]
    return z.reshape(n, len(layout.partons) * N_COMPONENTS)
