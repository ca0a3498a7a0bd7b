"""A minimal Delphes-layout tree (split ``Particle.*`` branches) holding a generator record."""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot


def delphes_particles(z: np.ndarray, good: np.ndarray) -> ak.Array:
    """Generator records (t, W, decay products) as Delphes' ``Particle`` collection.

    Events where ``good`` is False have a muon in place of the electron.
    """
    n = len(z)
    p4 = z.reshape(n, 6, 4).astype(np.float64)
    e, nu, b, bbar, u, dbar = (p4[:, k] for k in range(6))
    w_minus, w_plus = e + nu, u + dbar
    top, antitop = w_plus + b, w_minus + bbar
    pid = np.tile([6, -6, 24, -24, 5, -5, 11, -12, 2, -1], (n, 1))
    pid[~good, 6] = 13  # a muon instead of the electron
    mother = np.tile([-1, -1, 0, 1, 0, 1, 3, 3, 2, 2], (n, 1))
    momenta = np.stack([top, antitop, w_plus, w_minus, b, bbar, e, nu, u, dbar], axis=1)
    counts = np.full(n, 10)

    def jag(values):
        return ak.unflatten(np.ascontiguousarray(values).reshape(-1), counts)

    return ak.zip({
        "PID": jag(pid.astype(np.int32)), "Status": jag(np.full((n, 10), 22, np.int32)),
        "M1": jag(mother.astype(np.int32)),
        "Px": jag(momenta[..., 0].astype(np.float32)),
        "Py": jag(momenta[..., 1].astype(np.float32)),
        "Pz": jag(momenta[..., 2].astype(np.float32)), "E": jag(momenta[..., 3].astype(np.float32)),
    })


def write_delphes(path: str, z: np.ndarray, good: np.ndarray) -> None:
    """A Delphes-layout tree (split ``Particle.*`` branches) of `delphes_particles`."""
    particle = delphes_particles(z, good)
    with uproot.recreate(path) as file:
        file.mktree("Delphes", {"Particle": particle.type.content},
                    field_name=lambda outer, inner: f"{outer}.{inner}",
                    counter_name=lambda name: f"{name}_size")
        file["Delphes"].extend({"Particle": particle})
