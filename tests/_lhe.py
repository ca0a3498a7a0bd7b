"""Write LHE files laid out as MadGraph5 writes pp -> t t~ with decays, for the LHE tests.

Each event lists the two incoming gluons (status -1), the tops and Ws (status 2) and the
six decay products (status 1) with their mother pointers, in MadGraph's column format.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from turbosim_hep import layout

_HEADER = """<LesHouchesEvents version="3.0">
<header>
<MGVersion>
2.6.7
</MGVersion>
<MGProcCard>
import model sm
generate p p > t t~, (t > w+ b, w+ > u d~), (t~ > w- b~, w- > e- ve~)
output ttbar_semilep
</MGProcCard>
</header>
<init>
2212 2212 6.500000e+03 6.500000e+03 0 0 247000 247000 -4 1
5.0e+01 1.0e-01 5.0e+01 1
<generator name='MadGraph5_aMC@NLO' version='2.6.7'>please cite 1405.0301 </generator>
</init>
"""

_LINE = (
    "{:>9d} {:>2d} {:>4d} {:>4d} {:>4d} {:>4d} {:+.10e} {:+.10e} {:+.10e} {:.10e} {:.10e} "
    "0.0000e+00 {:.4e}\n"
)


def _p4(z: np.ndarray, name: str) -> np.ndarray:
    return z[layout.object_slice("z", name)].astype(np.float64)


def _particle(pid, status, m1, m2, p4, spin=9.0, color=(0, 0)) -> str:
    px, py, pz, e = (float(v) for v in p4)
    mass = np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
    return _LINE.format(pid, status, m1, m2, *color, px, py, pz, e, mass, spin)


def event_text(
    z: np.ndarray, *, swap_w_decay: bool = False, extra_jet: bool = False, conjugate: bool = False
) -> str:
    """One ``<event>`` block for a Z row (the decays follow from the six partons).

    ``swap_w_decay`` writes the leptonic W as W- -> mu- nu_mu-bar (not the wanted final
    state); ``extra_jet`` adds an outgoing gluon (seven final-state particles);
    ``conjugate`` writes the charge-conjugate event (every particle id negated: e+ nu_e
    b-bar b u-bar d, the momenta of the row's slots as they are).
    """
    e, nu, b, bbar, u, dbar = (_p4(z, name) for name in layout.Z_OBJECTS)
    w_plus, w_minus = u + dbar, e + nu
    top, antitop = w_plus + b, w_minus + bbar
    total = top + antitop
    e_in = 0.5 * (total[3] + total[2]), 0.5 * (total[3] - total[2])
    lepton, neutrino = (13, -14) if swap_w_decay else (11, -12)
    lines = [
        _particle(21, -1, 0, 0, (0, 0, e_in[0], e_in[0]), color=(501, 502)),
        _particle(21, -1, 0, 0, (0, 0, -e_in[1], e_in[1]), color=(503, 501)),
        _particle(6, 2, 1, 2, top, color=(503, 0)),
        _particle(-6, 2, 1, 2, antitop, color=(0, 502)),
        _particle(24, 2, 3, 3, w_plus),
        _particle(5, 1, 3, 3, b, color=(503, 0)),
        _particle(2, 1, 5, 5, u, color=(504, 0)),
        _particle(-1, 1, 5, 5, dbar, color=(0, 504)),
        _particle(-24, 2, 4, 4, w_minus),
        _particle(-5, 1, 4, 4, bbar, color=(0, 502)),
        _particle(lepton, 1, 9, 9, e),
        _particle(neutrino, 1, 9, 9, nu),
    ]
    if conjugate:
        lines = [_conjugated(line) for line in lines]
    if extra_jet:
        lines.append(_particle(21, 1, 1, 2, (5.0, 0.0, 3.0, np.hypot(5.0, 3.0)), color=(505, 506)))
    info = f"{len(lines)} 1 +5.0000000e+01 1.72500000e+02 7.54677100e-03 1.07553600e-01\n"
    return "<event>\n" + info + "".join(lines) + "</event>\n"


def _conjugated(line: str) -> str:
    """A particle line with its id negated (gluons stay gluons)."""
    pid, rest = line[:9], line[9:]
    return (f"{-int(pid):>9d}" if int(pid) != 21 else pid) + rest


def write_lhe(
    path: str | os.PathLike,
    z: np.ndarray,
    *,
    wrong_final_state: np.ndarray | None = None,
    cut_after: int | None = None,
    conjugate: np.ndarray | None = None,
) -> str:
    """Write Z rows as an LHE file (gzipped if ``path`` ends in ``.gz``).

    ``wrong_final_state`` marks rows to write with a W- -> mu nu decay; ``cut_after``
    truncates the file in the middle of the event after that many complete events;
    ``conjugate`` marks rows to write as charge-conjugate events.
    """
    path = os.fspath(path)
    wrong = np.zeros(len(z), dtype=bool) if wrong_final_state is None else wrong_final_state
    conjugate = np.zeros(len(z), dtype=bool) if conjugate is None else conjugate
    blocks = [
        event_text(row, swap_w_decay=bool(bad), conjugate=bool(cp))
        for row, bad, cp in zip(z, wrong, conjugate, strict=True)
    ]
    text = _HEADER + "".join(blocks) + "</LesHouchesEvents>\n"
    if cut_after is not None:
        half = blocks[cut_after][: len(blocks[cut_after]) // 2]
        text = _HEADER + "".join(blocks[:cut_after]) + half
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt") as handle:
        handle.write(text)
    return path
