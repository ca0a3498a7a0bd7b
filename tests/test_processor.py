"""The coffea validation processor: same events as the reader, same output on every runner."""

from __future__ import annotations

import numpy as np
import pytest

from turbosim_hep import layout, physics
from turbosim_hep.io import read_events
from turbosim_hep.validation.processor import (
    WEIGHT_VALUES,
    TtbarValidationProcessor,
    ValueList,
    dataset_values,
)
from turbosim_hep.validation.quantities import QUANTITIES
from turbosim_hep.validation.runner import make_executor, run_fileset

from _ttbar import smear, ttbar_partons, write_sample

N_EVENTS = 3000
CHUNK = 1000  # several chunks per file, so the accumulation is exercised


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("processor")
    z = ttbar_partons(N_EVENTS, seed=21)
    truth = write_sample(directory / "truth.root", z, smear(z, seed=22))
    sim = write_sample(directory / "sim.root", z, smear(z, seed=23, jet_resolution=0.15))
    partons_only = write_sample(directory / "partons.root", z, None)
    return {"truth": truth, "sim": sim, "partons": partons_only}


def run(fileset, executor_name="iterative", **kwargs):
    return run_fileset(
        fileset, executor=make_executor(executor_name, progress=False, **kwargs), chunksize=CHUNK
    )


@pytest.fixture(scope="module")
def iterative_output(files):
    return run({"truth": [files["truth"]], "sim": [files["sim"]]})


def test_features_and_cutflow_equal_the_readers(files, iterative_output):
    batch, cutflow = read_events(files["truth"])
    values = dataset_values(iterative_output, "truth")
    for i, column in enumerate(layout.X_COLUMNS):
        np.testing.assert_array_equal(values[f"x_{column}"], batch.x[:, i])
    for i, column in enumerate(layout.Z_COLUMNS):
        np.testing.assert_array_equal(values[f"z_{column}"], batch.z[:, i])
    assert iterative_output["cutflow"]["truth"] == cutflow.as_dict()
    observables = physics.reconstruct(batch.x)
    for name in physics.OBSERVABLE_NAMES:
        np.testing.assert_allclose(values[name], observables[name].astype(np.float32))


def test_histograms_hold_every_quantity_per_dataset(iterative_output):
    hists = iterative_output["hists"]
    assert set(hists) == {q.name for q in QUANTITIES}
    for q in QUANTITIES:
        h = hists[q.name]
        assert list(h.axes["dataset"]) == ["truth", "sim"]
        assert h.axes[q.name].label == q.label
        for dataset in ("truth", "sim"):
            assert h[{"dataset": dataset}].sum(flow=True).value == N_EVENTS
    assert iterative_output["valid"] == {
        "truth": {"checked": N_EVENTS, "valid": N_EVENTS},
        "sim": {"checked": N_EVENTS, "valid": N_EVENTS},
    }


def _assert_same_output(a, b):
    assert a["cutflow"] == b["cutflow"] and a["valid"] == b["valid"]
    for name, h in a["hists"].items():
        other = b["hists"][name]
        for dataset in h.axes["dataset"]:
            left, right = h[{"dataset": dataset}], other[{"dataset": dataset}]
            np.testing.assert_array_equal(left.values(flow=True), right.values(flow=True))
            np.testing.assert_array_equal(left.variances(flow=True), right.variances(flow=True))
    for dataset, columns in a["values"].items():
        for name, column in columns.items():  # chunks may arrive in any order
            other = b["values"][dataset][name]
            np.testing.assert_array_equal(np.sort(column.value), np.sort(other.value))


def test_futures_executor_gives_identical_histograms(files, iterative_output):
    output = run({"truth": [files["truth"]], "sim": [files["sim"]]}, "futures", workers=2)
    _assert_same_output(iterative_output, output)


def test_dask_local_cluster_gives_identical_histograms(files, iterative_output):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        output = run({"truth": [files["truth"]], "sim": [files["sim"]]}, "dask", client=client)
    _assert_same_output(iterative_output, output)


def test_parton_only_file_fills_the_parton_quantities(files):
    output = run({"unfolded": [files["partons"]]})
    values = dataset_values(output, "unfolded")
    assert set(values) == {f"z_{c}" for c in layout.Z_COLUMNS} | {WEIGHT_VALUES}
    np.testing.assert_array_equal(values[WEIGHT_VALUES], np.ones(N_EVENTS))
    assert output["yield"]["unfolded"] == N_EVENTS
    assert output["cutflow"]["unfolded"] == {"all": N_EVENTS, layout.PARTON_CUT: N_EVENTS}


def test_delphes_file_gives_the_readers_cutflow(delphes_file):
    output = run({"delphes": [delphes_file]})
    reader_file_batch, cutflow = read_events(delphes_file)
    assert output["cutflow"]["delphes"] == cutflow.as_dict()
    assert len(dataset_values(output, "delphes")["x_E_jet1"]) == len(reader_file_batch)


def test_processor_can_drop_unbinned_values(files):
    output = run_fileset(
        {"truth": [files["truth"]]},
        TtbarValidationProcessor(keep_values=False, bins=10),
        executor=make_executor(progress=False),
    )
    assert "values" not in output
    assert output["hists"]["m_tt"].axes["m_tt"].size == 10


def test_unknown_executor_and_missing_client_are_refused():
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("spark")
    with pytest.raises(ValueError, match="Client"):
        make_executor("dask")


def test_value_list_adds_without_touching_its_inputs():
    a, b = ValueList([np.array([1.0, 2.0], np.float32)]), ValueList([np.array([3.0], np.float32)])
    total = a + b
    np.testing.assert_array_equal(total.value, [1.0, 2.0, 3.0])
    assert len(a) == 2 and len(b) == 1 and len(total) == 3
    assert ValueList().value.dtype == np.float32 and len(ValueList().value) == 0
    with pytest.raises(TypeError):
        a.add(np.zeros(2))


class _TalkingProcessor(TtbarValidationProcessor):
    """The validation processor, printing one line per chunk."""

    def process(self, events):
        print("processed a chunk")
        return super().process(events)


def test_no_progress_prints_no_bars_but_keeps_what_the_processor_prints(files, capfd):
    run_fileset({"truth": [files["truth"]]}, _TalkingProcessor(),
                executor=make_executor(progress=False), chunksize=CHUNK)
    out, err = capfd.readouterr()
    assert out.count("processed a chunk") == N_EVENTS // CHUNK
    assert "\u2501" not in out + err
    assert "Processing" not in out + err
