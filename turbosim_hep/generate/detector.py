"""A parametric detector that follows a Delphes card, vectorised over many events.

`ParametricDetector` takes the final-state particles of a batch of events and returns
the collections a Delphes run with the same card writes: isolated electrons, muons and
photons, anti-kT jets on the energy-flow objects with the jet energy scale, and the
missing transverse momentum. It follows the modules of the card's execution path:

1. ``ParticlePropagator``: charged particles follow a helix in the solenoid field to the
   calorimeter surface (barrel cylinder or endcap disc); neutral ones go straight.
2. ``*TrackingEfficiency`` / ``*MomentumSmearing``: tracks of charged particles, kept
   with the card's efficiency and smeared log-normally in pT with its relative resolution.
3. ``ECal`` / ``HCal`` (``SimpleCalorimeter``): each particle deposits its energy
   fractions in the tower its propagated position falls in (the card's eta/phi grids);
   each tower is smeared log-normally with the card's resolution and cut at EnergyMin and
   EnergySignificanceMin; the energy of the tracks pointing to a tower is subtracted and
   an excess significant against the tower and track resolutions together becomes a
   neutral energy-flow object (photon from the ECAL, neutral hadron from the HCAL) at a
   random position inside the tower.
4. ``EFlowMerger``: energy flow = all tracks + neutral excesses.
5. ``Electron``/``Muon``/``PhotonEfficiency`` and ``*Isolation`` on the energy flow
   without electrons and muons (``EFlowFilter``).
6. ``FastJetFinder`` (anti-kT on the energy flow, pT min on the raw jets),
   ``JetEnergyScale``, and ``UniqueObjectFinder`` (a jet that holds an isolated photon,
   electron or muon is dropped).
7. ``MissingET``: minus the vector sum of the energy flow.

Known simplifications, all small for this channel: no pile-up (the card has none),
production vertices at the origin.
Every step works on flat NumPy arrays of all particles of all events at once, with the
event of each entry carried along; no per-event Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from turbosim_hep.generate.cards import Calorimeter, DetectorCard, Isolation, TowerGrid

#: c in units that turn GeV, T and m into a radius of curvature: r = pT / (C * |q| * B).
_C_LIGHT = 0.299792458

_HADRON, _ELECTRON, _MUON, _PHOTON, _NEUTRAL_HADRON = range(5)
_TRACK_CLASSES = {"hadron": _HADRON, "electron": _ELECTRON, "muon": _MUON}


@dataclass
class DetectorEvents:
    """The reconstructed collections of a batch of events (awkward, one entry per event)."""

    electrons: ak.Array  # {pt, eta, phi, mass, charge}
    muons: ak.Array  # {pt, eta, phi, mass, charge}
    photons: ak.Array  # {pt, eta, phi, mass}
    jets: ak.Array  # {pt, eta, phi, mass}, pT-ordered
    met_pt: np.ndarray
    met_phi: np.ndarray

    def __len__(self) -> int:
        return len(self.met_pt)


@dataclass
class _Flat:
    """Flat objects of many events: the event of each entry and its four-momentum."""

    event: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray

    @property
    def pt(self) -> np.ndarray:
        return np.hypot(self.px, self.py)

    @property
    def eta(self) -> np.ndarray:
        pt = self.pt
        return np.arcsinh(np.divide(self.pz, pt, out=np.zeros_like(self.pz), where=pt > 0))

    @property
    def phi(self) -> np.ndarray:
        return np.arctan2(self.py, self.px)


@dataclass
class _Visible:
    """The visible particles of a batch (`ParametricDetector._visible_particles`)."""

    truth: _Flat
    abs_pid: np.ndarray
    charge: np.ndarray
    charged: np.ndarray
    f_ecal: np.ndarray  # energy fractions deposited in each calorimeter
    f_hcal: np.ndarray
    calo_eta: np.ndarray  # position on the calorimeter surface
    calo_phi: np.ndarray
    reaches: np.ndarray  # whether the particle reaches it


@dataclass
class _Tracks:
    """The tracks of a batch (`ParametricDetector._tracks`)."""

    objects: _Flat  # one per track
    kind: np.ndarray  # _ELECTRON, _MUON or _HADRON, per track
    index: np.ndarray  # the visible particle of each track
    tracked: np.ndarray  # per visible particle: whether it left a track
    energy: np.ndarray  # per visible particle: the track's energy (0 without one)
    sigma: np.ndarray  # per visible particle: the resolution of that energy


@dataclass
class _EnergyFlow:
    """The energy-flow objects of a batch, grouped by event (`_energy_flow`)."""

    objects: _Flat
    kind: np.ndarray  # _ELECTRON, _MUON, _HADRON (tracks), _PHOTON, _NEUTRAL_HADRON
    ecal_key: np.ndarray  # the ECAL tower key of a photon, -1 for the others
    source: np.ndarray  # the visible particle of a track, -1 for the others
    offsets: np.ndarray  # the rows of event i are offsets[i]:offsets[i + 1]
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray  # int32, 0 for the neutral objects


def _from_pt_eta_phi(event, pt, eta, phi, energy) -> _Flat:
    return _Flat(event, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), energy)


def log_normal(rng: np.random.Generator, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Delphes' ``LogNormal(mean, sigma)``: a log-normal number with that mean and width
    (0 where the mean is not positive)."""
    mean = np.asarray(mean, dtype=np.float64)
    safe = np.where(mean > 0, mean, 1.0)
    b = np.sqrt(np.log1p((sigma / safe) ** 2))
    a = np.log(safe) - 0.5 * b**2
    value = np.exp(a + b * rng.standard_normal(mean.shape))
    return np.where(mean > 0, value, 0.0)


def _wrap(phi: np.ndarray) -> np.ndarray:
    return (phi + np.pi) % (2 * np.pi) - np.pi


class ParametricDetector:
    """A parametric detector that follows a Delphes card.

    Parameters
    ----------
    card : DetectorCard
        The card's numbers (see `turbosim_hep.generate.cards`).
    """

    def __init__(self, card: DetectorCard):
        self.card = card
        import fastjet  # imported here: generation is an optional extra

        self._fastjet = fastjet
        self._jet_definition = fastjet.JetDefinition(fastjet.antikt_algorithm, card.jet_r)

    # -- the whole chain ----------------------------------------------------------------

    def simulate(self, particles: ak.Array, rng: np.random.Generator) -> DetectorEvents:
        """Reconstruct a batch of events.

        The steps run in the order of the card's execution path (module docstring), each
        drawing its random numbers from ``rng`` in turn.

        Parameters
        ----------
        particles : awkward.Array
            ``n * var * {pid, charge, px, py, pz, E}`` final-state particles.
        rng : numpy.random.Generator
            Source of every random number (efficiencies, smearing, tower positions).

        Returns
        -------
        DetectorEvents
        """
        n_events = len(particles)
        visible = self._visible_particles(particles)
        tracks = self._tracks(visible, rng)
        photons, ecal_key_of_photon, ecal_key_of_particle = self._calorimeter(
            self.card.ecal, visible.truth, visible.f_ecal, visible.calo_eta, visible.calo_phi,
            visible.reaches, tracks.tracked, tracks.energy, tracks.sigma, rng,
        )
        neutral_hadrons, _, _ = self._calorimeter(
            self.card.hcal, visible.truth, visible.f_hcal, visible.calo_eta, visible.calo_phi,
            visible.reaches, tracks.tracked, tracks.energy, tracks.sigma, rng,
        )
        eflow = _energy_flow(
            tracks, photons, ecal_key_of_photon, neutral_hadrons, visible.charge, n_events
        )
        chosen = self._identified(eflow, rng)
        overlap = _jet_overlap(eflow, chosen, ecal_key_of_particle)
        jets = self._jets(eflow.objects, eflow.offsets, overlap)
        met_x = -np.bincount(eflow.objects.event, weights=eflow.objects.px, minlength=n_events)
        met_y = -np.bincount(eflow.objects.event, weights=eflow.objects.py, minlength=n_events)
        return DetectorEvents(
            electrons=_identified_objects(eflow, chosen[_ELECTRON], n_events, with_charge=True),
            muons=_identified_objects(eflow, chosen[_MUON], n_events, with_charge=True),
            photons=_identified_objects(eflow, chosen[_PHOTON], n_events, with_charge=False),
            jets=jets,
            met_pt=np.hypot(met_x, met_y).astype(np.float32),
            met_phi=np.arctan2(met_y, met_x).astype(np.float32),
        )

    # -- the sections of the chain --------------------------------------------------------

    def _visible_particles(self, particles: ak.Array) -> _Visible:
        """The particles a detector sees (charged, or depositing energy in a calorimeter,
        with pT > 0), flat, with their position on the calorimeter surface."""
        counts = ak.to_numpy(ak.num(particles))
        event = np.repeat(np.arange(len(particles)), counts)
        abs_pid = np.abs(ak.to_numpy(ak.flatten(particles["pid"])).astype(np.int64))
        charge = ak.to_numpy(ak.flatten(particles["charge"])).astype(np.float64)
        truth = _Flat(
            event,
            *(
                ak.to_numpy(ak.flatten(particles[c])).astype(np.float64)
                for c in ("px", "py", "pz", "E")
            ),
        )
        f_ecal, f_hcal = self._energy_fractions(abs_pid)
        charged = charge != 0
        visible = charged | (f_ecal > 0) | (f_hcal > 0)
        keep = visible & (truth.pt > 0)
        truth = _take(truth, keep)
        abs_pid, charge = abs_pid[keep], charge[keep]
        f_ecal, f_hcal, charged = f_ecal[keep], f_hcal[keep], charged[keep]
        calo_eta, calo_phi, reaches = self._propagate(
            truth.pt, truth.eta, truth.phi, truth.pz, charge
        )
        return _Visible(
            truth, abs_pid, charge, charged, f_ecal, f_hcal, calo_eta, calo_phi, reaches
        )

    def _tracks(self, visible: _Visible, rng: np.random.Generator) -> _Tracks:
        """Tracks of the charged particles: the card's efficiency, then a log-normal pT
        smearing that keeps direction and mass."""
        truth, charged = visible.truth, visible.charged
        pt, eta, phi = truth.pt, truth.eta, truth.phi
        abs_pid = visible.abs_pid
        track_class = np.where(abs_pid == 11, _ELECTRON, np.where(abs_pid == 13, _MUON, _HADRON))
        track_pt = np.zeros(len(pt))
        efficiency = np.zeros(len(pt))
        resolution = np.zeros(len(pt))
        for name, code in _TRACK_CLASSES.items():
            rows = charged & (track_class == code)
            efficiency[rows] = self.card.tracking_efficiency[name](pt[rows], eta[rows])
            resolution[rows] = self.card.momentum_resolution[name](pt[rows], eta[rows])
        resolution = np.minimum(resolution, 1.0)
        tracked = charged & (rng.random(len(pt)) < efficiency)
        track_pt[tracked] = log_normal(rng, pt[tracked], resolution[tracked] * pt[tracked])
        tracked &= track_pt > 0
        track_index = np.flatnonzero(tracked)
        mass = np.sqrt(np.maximum(truth.energy**2 - truth.pt**2 - truth.pz**2, 0.0))
        track_p = track_pt * np.cosh(eta)
        track_energy = np.hypot(track_p, mass)  # the smearing keeps direction and mass
        objects = _from_pt_eta_phi(
            truth.event[track_index], track_pt[track_index], eta[track_index], phi[track_index],
            track_energy[track_index],
        )
        return _Tracks(
            objects=objects,
            kind=track_class[track_index],
            index=track_index,
            tracked=tracked,
            energy=track_energy,
            sigma=resolution * track_energy,
        )

    def _identified(self, eflow: _EnergyFlow, rng: np.random.Generator) -> dict[int, np.ndarray]:
        """Identification and isolation: the energy-flow rows of the isolated photons,
        electrons and muons (by kind), each kept with the card's efficiency."""
        isolation_pool = (eflow.kind != _ELECTRON) & (eflow.kind != _MUON)
        card = self.card
        chosen = {}
        for code, efficiency_formula, isolation in (
            (_PHOTON, card.photon_efficiency, card.photon_isolation),
            (_ELECTRON, card.electron_efficiency, card.electron_isolation),
            (_MUON, card.muon_efficiency, card.muon_isolation),
        ):
            candidates = np.flatnonzero(eflow.kind == code)
            passed = rng.random(len(candidates)) < efficiency_formula(
                eflow.pt[candidates], eflow.eta[candidates]
            )
            candidates = candidates[passed]
            isolated = self._isolated(
                candidates, isolation, eflow.offsets, eflow.objects.event, eflow.pt, eflow.eta,
                eflow.phi, isolation_pool,
            )
            chosen[code] = candidates[isolated]
        return chosen

    # -- steps ----------------------------------------------------------------------------

    def _energy_fractions(self, abs_pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        card = self.card
        ecal = np.full(len(abs_pid), card.default_fraction[0])
        hcal = np.full(len(abs_pid), card.default_fraction[1])
        for code, (e, h) in card.energy_fractions.items():
            rows = abs_pid == code
            ecal[rows] = e
            hcal[rows] = h
        return ecal, hcal

    def _propagate(self, pt, eta, phi, pz, charge):
        """Position (eta, phi) on the calorimeter surface and whether it is reached.

        Charged particles follow a helix around the z axis from the origin: they hit the
        barrel cylinder (radius R) if their circle is wide enough and they are within the
        half length there, and the endcap disc otherwise.
        """
        card = self.card
        calo_eta = eta.copy()
        calo_phi = phi.copy()
        reaches = np.ones(len(pt), dtype=bool)
        q = charge != 0
        if not np.any(q):
            return calo_eta, calo_phi, reaches
        ptq, pzq, chq = pt[q], pz[q], charge[q]
        radius = ptq / (_C_LIGHT * np.abs(chq) * card.bz)  # m
        ratio = card.radius / (2 * radius)
        wide = ratio <= 1
        turn_barrel = 2 * np.arcsin(np.minimum(ratio, 1.0))
        z_barrel = pzq / ptq * radius * turn_barrel
        barrel = wide & (np.abs(z_barrel) <= card.half_length)
        with np.errstate(divide="ignore", invalid="ignore"):
            turn_endcap = card.half_length * ptq / np.abs(pzq) / radius
            rho_endcap = 2 * radius * np.abs(np.sin(turn_endcap / 2))
            eta_endcap = np.sign(pzq) * np.arcsinh(card.half_length / rho_endcap)
        turn = np.where(barrel, turn_barrel, turn_endcap)
        new_eta = np.where(barrel, np.arcsinh(z_barrel / card.radius), eta_endcap)
        ok = barrel | ((pzq != 0) & np.isfinite(eta_endcap))
        sign = np.sign(chq) * np.sign(card.bz)
        calo_phi[q] = _wrap(phi[q] - sign * turn / 2)
        calo_eta[q] = np.where(ok, new_eta, 0.0)
        reaches[q] = ok
        return calo_eta, calo_phi, reaches

    def _calorimeter(
        self, calorimeter: Calorimeter, truth: _Flat, fraction, calo_eta, calo_phi, reaches,
        tracked, track_energy, track_sigma, rng,
    ):
        """Neutral energy-flow objects of one calorimeter.

        Returns the objects, the tower key (event * n_towers + tower) of each, and the tower
        key of every input particle (-1 where it deposits nothing here).
        """
        grid = calorimeter.grid
        deposit = (fraction > 0) & reaches
        tower, inside = _tower_index(grid, calo_eta, calo_phi)
        deposit &= inside
        key_of_particle = np.where(deposit, truth.event * grid.n_towers + tower, -1)
        rows = np.flatnonzero(deposit)
        keys, inverse = np.unique(key_of_particle[rows], return_inverse=True)
        energy = np.bincount(
            inverse, weights=fraction[rows] * truth.energy[rows], minlength=len(keys)
        )
        track_rows = tracked[rows]
        tower_track_energy = np.bincount(
            inverse[track_rows],
            weights=(fraction[rows] * track_energy[rows])[track_rows],
            minlength=len(keys),
        )
        track_variance = np.bincount(
            inverse[track_rows],
            weights=((fraction[rows] * track_sigma[rows]) ** 2)[track_rows],
            minlength=len(keys),
        )
        event, tower_of_key = np.divmod(keys, grid.n_towers)
        ring = np.searchsorted(grid.offsets, tower_of_key, side="right") - 1
        eta_lo, eta_hi = grid.eta_edges[ring - 1], grid.eta_edges[ring]
        width = 2 * np.pi / grid.n_phi[ring]
        phi_lo = -np.pi + (tower_of_key - grid.offsets[ring]) * width

        sigma = calorimeter.resolution(0.5 * (eta_lo + eta_hi), energy)
        measured = log_normal(rng, energy, sigma)
        too_low = (measured < calorimeter.energy_min) | (
            measured < calorimeter.significance_min * sigma
        )
        measured[too_low] = 0
        neutral = measured - tower_track_energy
        neutral_sigma = np.sqrt(sigma**2 + track_variance)
        keep = (neutral > calorimeter.energy_min) & (
            neutral > calorimeter.significance_min * neutral_sigma
        )
        if calorimeter.smear_tower_center:
            u = rng.random((2, len(keys)))
            tower_eta = eta_lo + u[0] * (eta_hi - eta_lo)
            tower_phi = phi_lo + u[1] * width
        else:
            tower_eta = 0.5 * (eta_lo + eta_hi)
            tower_phi = phi_lo + 0.5 * width
        e = neutral[keep]
        objects = _from_pt_eta_phi(
            event[keep], e / np.cosh(tower_eta[keep]), tower_eta[keep], tower_phi[keep], e
        )
        return objects, keys[keep], key_of_particle

    def _isolated(
        self, candidates, isolation: Isolation, offsets, event, pt, eta, phi, pool
    ) -> np.ndarray:
        """Whether each candidate passes the isolation (sum pT of pool objects in the cone,
        the candidate itself excluded, over its pT)."""
        if len(candidates) == 0:
            return np.zeros(0, dtype=bool)
        ev = event[candidates]
        start, stop = offsets[ev], offsets[ev + 1]
        sizes = stop - start
        owner = np.repeat(np.arange(len(candidates)), sizes)
        first_pair = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        partner = np.repeat(start - first_pair, sizes) + np.arange(sizes.sum())
        c = candidates[owner]
        d_eta = eta[partner] - eta[c]
        d_phi = _wrap(phi[partner] - phi[c])
        in_cone = (
            (d_eta**2 + d_phi**2 <= isolation.delta_r_max**2)
            & pool[partner]
            & (pt[partner] > isolation.pt_min)
            & (partner != c)
        )
        cone = np.bincount(owner[in_cone], weights=pt[partner[in_cone]], minlength=len(candidates))
        return cone / pt[candidates] <= isolation.pt_ratio_max

    def _jets(self, eflow: _Flat, offsets: np.ndarray, overlap: np.ndarray) -> ak.Array:
        counts = np.diff(offsets)
        inputs = ak.unflatten(
            ak.zip({"px": eflow.px, "py": eflow.py, "pz": eflow.pz, "E": eflow.energy}), counts
        )
        sequence = self._fastjet.ClusterSequence(inputs, self._jet_definition)
        raw = sequence.inclusive_jets(min_pt=self.card.jet_pt_min)
        constituents = sequence.constituent_index(min_pt=self.card.jet_pt_min)
        jets_per_event = ak.to_numpy(ak.num(constituents, axis=1))
        size = ak.to_numpy(ak.flatten(ak.num(constituents, axis=2)))
        jet_event = np.repeat(np.arange(len(counts)), jets_per_event)
        jet_of_constituent = np.repeat(np.arange(len(size)), size)
        local = ak.to_numpy(ak.flatten(constituents, axis=None)).astype(np.int64)
        holds_overlap = overlap[offsets[jet_event[jet_of_constituent]] + local]
        dropped = np.bincount(jet_of_constituent[holds_overlap], minlength=len(size)) > 0
        raw = raw[ak.unflatten(~dropped, jets_per_event)]
        jet_counts = ak.to_numpy(ak.num(raw))
        px, py, pz, energy = (
            ak.to_numpy(ak.flatten(raw[c])).astype(np.float64) for c in ("px", "py", "pz", "E")
        )
        jets = _Flat(np.repeat(np.arange(len(counts)), jet_counts), px, py, pz, energy)
        pt, eta, phi = jets.pt, jets.eta, jets.phi
        scale = self.card.jet_energy_scale(pt, eta)
        mass = np.sqrt(np.maximum(jets.energy**2 - jets.px**2 - jets.py**2 - jets.pz**2, 0.0))
        fields = {
            "pt": (pt * scale).astype(np.float32),
            "eta": eta.astype(np.float32),
            "phi": phi.astype(np.float32),
            "mass": (mass * scale).astype(np.float32),
        }
        return _sorted_by_pt(ak.unflatten(ak.zip(fields), jet_counts))


def _energy_flow(
    tracks: _Tracks, photons: _Flat, ecal_key_of_photon: np.ndarray, neutral_hadrons: _Flat,
    charge: np.ndarray, n_events: int,
) -> _EnergyFlow:
    """``EFlowMerger``: the tracks and the neutral excesses of both calorimeters, grouped
    by event (``charge``: of every visible particle)."""
    eflow = _concat([tracks.objects, photons, neutral_hadrons])
    kind = np.concatenate([
        tracks.kind,
        np.full(len(photons.event), _PHOTON),
        np.full(len(neutral_hadrons.event), _NEUTRAL_HADRON),
    ])
    ecal_key = np.concatenate([
        np.full(len(tracks.index), -1),
        ecal_key_of_photon,
        np.full(len(neutral_hadrons.event), -1),
    ])
    source = np.concatenate([tracks.index, np.full(len(kind) - len(tracks.index), -1)])
    order = np.argsort(eflow.event, kind="stable")
    eflow = _take(eflow, order)
    kind, ecal_key, source = kind[order], ecal_key[order], source[order]
    offsets = np.searchsorted(eflow.event, np.arange(n_events + 1))
    eflow_charge = np.zeros(len(kind), dtype=np.int32)
    is_track = source >= 0
    eflow_charge[is_track] = charge[source[is_track]].astype(np.int32)
    return _EnergyFlow(
        eflow, kind, ecal_key, source, offsets, eflow.pt, eflow.eta, eflow.phi, eflow_charge
    )


def _jet_overlap(
    eflow: _EnergyFlow, chosen: dict[int, np.ndarray], ecal_key_of_particle: np.ndarray
) -> np.ndarray:
    """``UniqueObjectFinder``: the energy-flow objects whose jet is dropped (the isolated
    photons, electrons and muons, and the photons in an isolated electron's ECAL tower)."""
    overlap = np.zeros(len(eflow.kind), dtype=bool)
    for code in (_PHOTON, _ELECTRON, _MUON):
        overlap[chosen[code]] = True
    electron_towers = ecal_key_of_particle[eflow.source[chosen[_ELECTRON]]]
    overlap |= (eflow.kind == _PHOTON) & np.isin(
        eflow.ecal_key, electron_towers[electron_towers >= 0]
    )
    return overlap


def _identified_objects(
    eflow: _EnergyFlow, rows: np.ndarray, n_events: int, *, with_charge: bool
) -> ak.Array:
    """The energy-flow objects of ``rows`` as one pT-ordered collection per event."""
    fields = {
        "pt": eflow.pt[rows].astype(np.float32),
        "eta": eflow.eta[rows].astype(np.float32),
        "phi": eflow.phi[rows].astype(np.float32),
        "mass": np.zeros(len(rows), dtype=np.float32),
    }
    if with_charge:
        fields["charge"] = eflow.charge[rows]
    # rows are in event order already (eflow is grouped by event)
    counts = np.bincount(eflow.objects.event[rows], minlength=n_events)
    return _sorted_by_pt(ak.unflatten(ak.zip(fields), counts))


def _tower_index(
    grid: TowerGrid, eta: np.ndarray, phi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tower index of each (eta, phi) and whether it is inside the grid (Delphes' lower_bound)."""
    ring = np.searchsorted(grid.eta_edges, eta, side="left")
    inside = (ring > 0) & (ring < len(grid.eta_edges))
    ring = np.clip(ring, 1, len(grid.eta_edges) - 1)
    n_phi = grid.n_phi[ring]
    width = 2 * np.pi / n_phi
    phi_bin = np.clip(np.ceil((phi + np.pi) / width).astype(np.int64) - 1, 0, n_phi - 1)
    return grid.offsets[ring] + phi_bin, inside


_FIELDS = ("event", "px", "py", "pz", "energy")


def _concat(parts: list[_Flat]) -> _Flat:
    return _Flat(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


def _take(objects: _Flat, rows: np.ndarray) -> _Flat:
    return _Flat(*(getattr(objects, f)[rows] for f in _FIELDS))


def _sorted_by_pt(objects: ak.Array) -> ak.Array:
    return objects[ak.argsort(objects["pt"], axis=1, ascending=False, stable=True)]
