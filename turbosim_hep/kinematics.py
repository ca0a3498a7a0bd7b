"""Conversions between (pt, eta, phi, mass) and (px, py, pz, E) on fixed NumPy arrays.

These run on every event the readers and writers touch, so they are plain NumPy
ufuncs on whole columns: `vector`'s NumPy backend builds a structured array per call,
which costs about 40 times more here. Analysis-level four-vector arithmetic (sums,
invariant masses) uses `vector` with awkward arrays, in `turbosim_hep.physics`.
"""

from __future__ import annotations

import numpy as np


def p4_from_ptetaphim(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray | float = 0.0
) -> np.ndarray:
    """Four-momenta (px, py, pz, E) from transverse momentum, pseudorapidity, azimuth, mass.

    Parameters
    ----------
    pt, eta, phi : numpy.ndarray
        Arrays of the same shape.
    mass : numpy.ndarray or float, optional
        Invariant mass; 0 (massless) by default. A negative mass stands for a
        space-like vector (m^2 = -mass^2), as `ptetaphim_from_p4` returns it.

    Returns
    -------
    numpy.ndarray
        Array of shape ``pt.shape + (4,)`` with the dtype of ``pt``.
    """
    out = np.empty(np.shape(pt) + (4,), dtype=np.result_type(pt))
    np.multiply(pt, np.cos(phi), out=out[..., 0])
    np.multiply(pt, np.sin(phi), out=out[..., 1])
    np.multiply(pt, np.sinh(eta), out=out[..., 2])
    if np.isscalar(mass) and mass == 0.0:
        np.multiply(pt, np.cosh(eta), out=out[..., 3])
    else:
        m2 = np.sign(mass) * np.square(mass)
        p2 = np.square(pt) + np.square(out[..., 2]) + m2
        np.sqrt(np.maximum(p2, 0.0), out=out[..., 3])
    return out


def ptetaphim_from_p4(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Transverse momentum, pseudorapidity, azimuth and mass of four-momenta.

    Parameters
    ----------
    p4 : numpy.ndarray
        Array of shape ``(..., 4)`` holding (px, py, pz, E).

    Returns
    -------
    tuple of numpy.ndarray
        ``(pt, eta, phi, mass)``, each of shape ``p4.shape[:-1]``. A vector with zero
        transverse momentum gets eta = 0; a space-like vector gets a negative mass
        (``-sqrt(-m^2)``), as ROOT's TLorentzVector does.
    """
    px, py, pz, energy = np.moveaxis(p4, -1, 0)
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / pt), 0.0).astype(p4.dtype, copy=False)
    phi = np.arctan2(py, px)
    m2 = (energy - np.sqrt(pt * pt + pz * pz)) * (energy + np.sqrt(pt * pt + pz * pz))
    mass = np.sign(m2) * np.sqrt(np.abs(m2))
    return pt, eta, phi, mass
