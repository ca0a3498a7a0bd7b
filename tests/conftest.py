"""Shared fixtures: paths to shipped data and small files written by the project's writer."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from turbosim_hep.io import EventWriter
from turbosim_hep.io.writer import collection, event_columns, parton_columns

from _ttbar import ttbar_pairs, write_sample

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DELPHES_SAMPLE = SHARED / "data" / "delphes_pp_tth_10events.root"
SHIPPED_SAMPLE = Path(__file__).resolve().parents[1] / "turbosim_hep" / "data" / "ttbar_sample.root"
#: Events of the `paired_sample` fixture.
PAIRED_EVENTS = 1500


@pytest.fixture
def delphes_file() -> Path:
    """The real Delphes 3.4.2 file of ../shared (skips when it is absent)."""
    if not DELPHES_SAMPLE.exists():
        pytest.skip(f"{DELPHES_SAMPLE} is not present")
    return DELPHES_SAMPLE


@pytest.fixture(scope="session")
def paired_sample(tmp_path_factory) -> dict:
    """A small model and the synthetic tt-bar files it simulates and unfolds.

    An untrained `TurboSim` standardised on `PAIRED_EVENTS` synthetic events (its outputs
    are deterministic functions of its inputs and noise, which is what the inference
    tests check), a parton-only file (``partons``) and a parton + detector file
    (``full``) of the same events, and their ``z`` and ``x`` arrays. Shared by the
    tests of the pipeline and of the coffea plugin; tests write their outputs elsewhere.
    """
    import torch

    from turbosim_hep.model import TurboSim, save_checkpoint

    from _ttbar import smear, ttbar_partons, write_sample

    directory = tmp_path_factory.mktemp("paired")
    z = ttbar_partons(PAIRED_EVENTS, seed=11)
    x = smear(z, seed=12)
    model = TurboSim.from_config(None, x=torch.from_numpy(x), z=torch.from_numpy(z))
    save_checkpoint(directory / "model.pt", model)
    return {
        "model": str(directory / "model.pt"),
        "partons": write_sample(directory / "partons.root", z, None),
        "full": write_sample(directory / "full.root", z, x),
        "z": z,
        "x": x,
    }


@pytest.fixture(scope="session")
def paired_file(tmp_path_factory) -> str:
    """A small own-format ROOT file of 1,200 paired tt-bar events."""
    data = ttbar_pairs(1200, seed=11)
    return write_sample(tmp_path_factory.mktemp("paired") / "ttbar.root", data.z, data.x)


@pytest.fixture
def shipped_sample() -> Path:
    """The shipped pp -> tt-bar sample (skips when it has not been generated)."""
    if not SHIPPED_SAMPLE.exists():
        pytest.skip(f"{SHIPPED_SAMPLE} is not present")
    return SHIPPED_SAMPLE


def random_objects(rng: np.random.Generator, counts: np.ndarray, mass: float = 0.0) -> np.ndarray:
    """Flat (sum(counts), 4) massless-or-massive four-momenta with realistic-ish spectra."""
    n = int(np.sum(counts))
    pt = rng.exponential(40.0, n) + 20.0
    eta = rng.uniform(-2.4, 2.4, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(pt**2 + pz**2 + mass**2)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pz, energy], -1).astype(np.float32)


def jagged(flat_p4: np.ndarray, counts: np.ndarray, **extra: np.ndarray) -> ak.Array:
    """A collection from flat four-momenta, sorted by pT within each event."""
    n = len(counts)
    fields = collection(flat_p4[None], **{k: v[None] for k, v in extra.items()})[0]
    events = ak.unflatten(fields, counts)
    return events[ak.argsort(events.pt, axis=1, ascending=False)] if n else events


def write_mixed_file(path: Path, n: int = 600, seed: int = 7) -> dict[str, np.ndarray]:
    """Write an own-format file whose events fail each cut in turn; return the truth.

    Returns the per-event multiplicities and charges used, and the Z arrays written.
    """
    rng = np.random.default_rng(seed)
    n_electrons = rng.choice([0, 1, 1, 1, 1, 2], n)
    charge_sign = rng.choice([-1, -1, -1, 1], n)
    n_muons = rng.choice([0, 0, 0, 0, 1], n)
    n_photons = rng.choice([0, 0, 0, 0, 0, 1], n)
    n_jets = rng.choice([3, 4, 4, 4, 4, 5], n)
    complete = rng.random(n) > 0.05
    charges = np.repeat(charge_sign, n_electrons).astype(np.int32)
    z = random_objects(rng, np.full(n, 6), mass=4.7).reshape(n, 24)
    z_counts = np.where(complete, 6, 0)
    parton = parton_columns(z)["Parton"]
    parton = ak.where(complete, parton, parton[:, :0])
    columns = event_columns(np.arange(n)) | {
        "Electron": jagged(random_objects(rng, n_electrons), n_electrons, charge=charges),
        "Muon": jagged(random_objects(rng, n_muons), n_muons,
                       charge=np.ones(int(n_muons.sum()), np.int32)),
        "Photon": jagged(random_objects(rng, n_photons), n_photons),
        "Jet": jagged(random_objects(rng, n_jets), n_jets),
        "MET_pt": (rng.exponential(50.0, n)).astype(np.float32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "Parton": parton,
    }
    with EventWriter(path) as writer:
        half = n // 2
        writer.write({k: v[:half] for k, v in columns.items()})
        writer.write({k: v[half:] for k, v in columns.items()})
    return {
        "n_electrons": n_electrons, "charge": charge_sign, "n_muons": n_muons,
        "n_photons": n_photons, "n_jets": n_jets, "complete": complete, "z": z,
        "z_counts": z_counts,
    }


@pytest.fixture
def mixed_file(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """An own-format file with events failing every cut, and the truth it was made from."""
    path = tmp_path / "mixed.root"
    return path, write_mixed_file(path)




@pytest.fixture
def full_disk(tmp_path: Path) -> Path:
    """A directory on a 1 MB tmpfs filled to the last byte by the file ``filler``.

    Skips where mounting is not allowed (not root, or no tmpfs); `tests/test_outputs.py`
    mocks the same error where this cannot run.
    """
    mount = tmp_path / "full"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]
    if os.geteuid() != 0 or subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        with contextlib.suppress(OSError), open(mount / "filler", "wb", buffering=0) as filler:
            while True:
                filler.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
