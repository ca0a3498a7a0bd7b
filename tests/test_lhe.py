"""Reading LHE files: final-state matching, gzip, entry numbers, cut-off files."""

from __future__ import annotations

import numpy as np
import pytest

from turbosim_hep import layout
from turbosim_hep.errors import InputError
from turbosim_hep.io import Cutflow
from turbosim_hep.io.lhe import LHEFile, final_state_partons, is_lhe

from _lhe import write_lhe
from _ttbar import ttbar_partons


@pytest.mark.parametrize("name", ["events.lhe", "events.lhe.gz"])
def test_reads_final_state_in_z_order(tmp_path, name):
    z = ttbar_partons(300, seed=3)
    wrong = np.zeros(len(z), dtype=bool)
    wrong[::4] = True
    path = write_lhe(tmp_path / name, z, wrong_final_state=wrong)
    assert is_lhe(path)
    cutflow = Cutflow()
    batches = list(LHEFile(path).iterate(cutflow=cutflow, chunk_events=70))
    assert len(batches) == 5  # 300 events in chunks of 70
    entry = np.concatenate([b.entry for b in batches])
    got = np.concatenate([b.z for b in batches])
    np.testing.assert_array_equal(entry, np.flatnonzero(~wrong))
    # MadGraph-style text keeps 11 significant digits
    np.testing.assert_allclose(got, z[~wrong], rtol=1e-6, atol=1e-4)
    assert cutflow.as_dict() == {"all": 300, layout.PARTON_CUT: int((~wrong).sum())}


def test_final_state_matching_rejects_extra_and_duplicate_particles():
    ids = np.array(layout.PARTON_PDG_IDS)
    events = [
        (ids[::-1], np.ones(6)),  # right particles in another order: kept, reordered
        (np.append(ids, 21), np.ones(7)),  # an extra gluon
        (np.append(ids, 21), np.append(np.ones(6), 2)),  # an extra intermediate: kept
        (np.where(ids == 2, 4, ids), np.ones(6)),  # c instead of u
        (np.where(ids == -1, 5, ids), np.ones(6)),  # two b quarks
    ]
    counts = np.array([len(pid) for pid, _ in events])
    pid = np.concatenate([pid for pid, _ in events])
    status = np.concatenate([st for _, st in events]).astype(np.int64)
    p4 = np.arange(4 * len(pid), dtype=np.float64).reshape(-1, 4)
    batch = final_state_partons(counts, pid, status, p4, start=10)
    np.testing.assert_array_equal(batch.entry, [10, 12])
    first = batch.z[0].reshape(6, 4)
    np.testing.assert_array_equal(first[:, 0], p4[:6][::-1, 0])  # back in Z order


@pytest.mark.parametrize("name", ["cut.lhe", "cut.lhe.gz"])
def test_cut_off_file_is_an_error(tmp_path, name):
    path = write_lhe(tmp_path / name, ttbar_partons(20), cut_after=12)
    with pytest.raises(InputError, match="cut off"):
        list(LHEFile(path).iterate())


def test_truncated_gzip_stream_is_an_error(tmp_path):
    path = write_lhe(tmp_path / "events.lhe.gz", ttbar_partons(400))
    data = (tmp_path / "events.lhe.gz").read_bytes()
    (tmp_path / "events.lhe.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut off"):
        list(LHEFile(path).iterate())


def test_not_an_lhe_file(tmp_path):
    path = tmp_path / "notes.lhe"
    path.write_text("<html>hello</html>\n")
    assert not is_lhe(path)
    with pytest.raises(InputError, match="not a readable LHE file"):
        LHEFile(path)
    with pytest.raises(InputError, match="no such file"):
        LHEFile(tmp_path / "missing.lhe")
