"""`unfold --samples K`: K posterior draws per detector event, and `posterior_samples`."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
import uproot

import turbosim_hep as ts
from turbosim_hep import layout
from turbosim_hep.arguments import ArgumentError
from turbosim_hep.cli import main
from turbosim_hep.errors import InputError, TurbosimError
from turbosim_hep.io import EventWriter, read_events
from turbosim_hep.io.samples import PosteriorSamples, posterior_samples
from turbosim_hep.io.writer import (
    event_columns,
    parton_columns,
    read_chunks,
    read_metadata,
    reco_columns,
)
from turbosim_hep.model import TurboSim, load_model, save_checkpoint
from turbosim_hep.pipeline import simulate_files, stages, unfold_files
from turbosim_hep.pipeline.run import run_files
from turbosim_hep.random import event_normal, stream_id

from _ttbar import write_sample


def events(path) -> ak.Array:
    with uproot.open(path) as file:
        return file["Events"].arrays()


def by_event(array: ak.Array) -> ak.Array:
    """The rows sorted by (source, event, replica): the order `posterior_samples` groups."""
    replica = ak.to_numpy(array.replica) if "replica" in array.fields else np.zeros(len(array))
    return array[np.lexsort((replica, ak.to_numpy(array.event), ak.to_numpy(array.source)))]


def parton_p4(array: ak.Array) -> np.ndarray:
    """(n, 24) written partons from the Cartesian branches."""
    n = len(array)
    p4 = [ak.to_numpy(ak.flatten(array[f"Parton_{c}"])).reshape(n, 6) for c in layout.COMPONENTS]
    return np.stack(p4, -1).reshape(n, 24)


def write_both_channels(path, z, x, conjugate) -> str:
    """An own-format file whose ``conjugate`` events are of the positron channel."""
    with EventWriter(path) as writer:
        writer.write(event_columns(np.arange(len(z))) | reco_columns(x, conjugate=conjugate)
                     | parton_columns(z, conjugate=conjugate))
    return str(path)


def test_samples_are_k_draws_of_the_encoder_with_per_event_noise(paired_sample, tmp_path):
    n, k, seed = len(paired_sample["x"]), 4, 6
    full = paired_sample["full"]
    summary = unfold_files(paired_sample["model"], full, tmp_path / "k.root", samples=k,
                           seed=seed, progress=False)
    assert summary.written == k * n and summary.files[0].oversample == k
    out = events(tmp_path / "k.root")
    assert np.bincount(ak.to_numpy(out.replica)).tolist() == [n] * k
    np.testing.assert_array_equal(ak.to_numpy(out.weight), np.float32(1 / k))
    assert read_metadata(tmp_path / "k.root")["oversample"] == k
    # sample r of an event is the encoder with the noise of (seed, file, entry, r)
    model = load_model(paired_sample["model"])
    z = parton_p4(out)
    for r in range(k):
        rows = ak.to_numpy(out.replica) == r
        entry = ak.to_numpy(out.event[rows])
        noise = event_normal(seed, stream_id("full.root"), entry, model.encoder_noise_dim,
                             replica=r)
        with torch.inference_mode():
            expected = model.unfold(torch.from_numpy(paired_sample["x"][entry]),
                                    torch.from_numpy(noise)).numpy()
        np.testing.assert_allclose(z[rows], expected, rtol=1e-4, atol=1e-2)
    first, second = out[out.replica == 0], out[out.replica == 1]
    np.testing.assert_array_equal(first.event, second.event)
    assert not np.array_equal(ak.flatten(first.Parton_pt), ak.flatten(second.Parton_pt))
    # the detector objects of an event are those of its input, in every sample
    assert ak.array_equal(first.Jet_pt, second.Jet_pt)


def test_one_sample_is_the_unfold_without_samples(paired_sample, tmp_path):
    model, full = paired_sample["model"], paired_sample["full"]
    unfold_files(model, full, tmp_path / "plain.root", seed=3, progress=False)
    unfold_files(model, full, tmp_path / "one.root", samples=1, seed=3, progress=False)
    unfold_files(model, full, tmp_path / "three.root", samples=3, seed=3, progress=False)
    plain, one, three = (events(tmp_path / f"{name}.root") for name in ("plain", "one", "three"))
    assert "replica" not in plain.fields and ak.array_equal(plain, one)
    assert read_metadata(tmp_path / "one.root") == read_metadata(tmp_path / "plain.root")
    # sample 0 of K is the single sample, bit for bit
    first = three[three.replica == 0]
    for name in plain.fields:
        if name != "weight":
            assert ak.array_equal(first[name], plain[name]), name
    # and the first samples of a larger K are those of a smaller one
    unfold_files(model, full, tmp_path / "five.root", samples=5, seed=3, progress=False)
    five = posterior_samples(tmp_path / "five.root")
    np.testing.assert_array_equal(five.z[:, :3], posterior_samples(tmp_path / "three.root").z)


def test_samples_do_not_depend_on_chunking_batches_or_jobs(paired_sample, tmp_path):
    """The draws of an event are keyed by (seed, file, entry, sample): the same whatever
    the chunks, the groups of samples planned at once, the batches or the jobs."""
    k = 10
    model = paired_sample["model"]
    inputs = [paired_sample["full"],
              write_sample(tmp_path / "second.root", paired_sample["z"][:300],
                           paired_sample["x"][:300])]
    # chunks of 97 events plan the 10 samples in two groups (8 and 2)
    assert stages.replica_groups(97, k, 97) == [range(0, 8), range(8, 10)]
    runs = {
        "whole": {"jobs": 1},
        "chunked": {"jobs": 1, "chunk_events": 97},
        "batched": {"jobs": 1, "chunk_events": 250, "batch_size": 64},
        "parallel": {"jobs": 2, "chunk_events": 97},
    }
    for name, options in runs.items():
        unfold_files(model, inputs, tmp_path / f"{name}.root", samples=k, seed=8,
                     progress=False, **options)
    whole = by_event(events(tmp_path / "whole.root"))
    chunked = by_event(events(tmp_path / "chunked.root"))
    assert ak.array_equal(whole, chunked)  # same batches: bit for bit
    for name in ("batched", "parallel"):
        other = by_event(events(tmp_path / f"{name}.root"))
        for ids in ("source", "event", "replica"):
            np.testing.assert_array_equal(other[ids], whole[ids])
        np.testing.assert_allclose(parton_p4(other), parton_p4(whole), rtol=1e-5, atol=1e-3)
    samples = {name: posterior_samples(tmp_path / f"{name}.root") for name in runs}
    np.testing.assert_array_equal(samples["chunked"].z, samples["whole"].z)
    # another seed, other draws
    unfold_files(model, inputs[0], tmp_path / "seed9.root", samples=2, seed=9, progress=False)
    unfold_files(model, inputs[0], tmp_path / "seed8.root", samples=2, seed=8, progress=False)
    nine, eight = (posterior_samples(tmp_path / f"seed{s}.root").z for s in (9, 8))
    assert np.mean(np.isclose(nine, eight, rtol=1e-3)) < 0.5


def test_posterior_samples_groups_the_samples_of_each_event(paired_sample, tmp_path):
    n, k = 300, 5
    z, x = paired_sample["z"][:n], paired_sample["x"][:n]
    conjugate = np.arange(n) % 4 == 1
    path = write_both_channels(tmp_path / "mixed.root", z, x, conjugate)
    second = write_sample(tmp_path / "second.root", z[:50], x[:50])
    out = tmp_path / "posterior.root"
    unfold_files(paired_sample["model"], [path, second], out, samples=k, seed=4,
                 chunk_events=70, jobs=1, progress=False)
    samples = ts.posterior_samples(out)
    assert isinstance(samples, PosteriorSamples)
    assert samples.z.shape == (n + 50, k, 24) and samples.z.dtype == np.float32
    assert len(samples) == n + 50 and samples.samples == k
    assert samples.inputs == ["mixed.root", "second.root"]
    np.testing.assert_array_equal(samples.source, np.repeat([0, 1], [n, 50]))
    np.testing.assert_array_equal(samples.event, np.r_[np.arange(n), np.arange(50)])
    np.testing.assert_array_equal(samples.conjugate, np.r_[conjugate, np.zeros(50, bool)])
    np.testing.assert_allclose(samples.weight, 1.0, rtol=1e-6)
    # the events match their truth: read_events numbers them by the same entries
    truth, _ = read_events(path, channel="both")
    np.testing.assert_array_equal(truth.entry, samples.event[:n])
    # every sample of the file is in the array once, at (its event, its replica)
    written = by_event(events(out))
    np.testing.assert_array_equal(samples.z.reshape(-1, 24), parton_p4(written))
    # the reference frame: conjugate events CP-mirrored like read_events' truth
    reference = posterior_samples(out, frame="reference")
    np.testing.assert_array_equal(reference.z[~samples.conjugate], samples.z[~samples.conjugate])
    np.testing.assert_array_equal(reference.z[samples.conjugate],
                                  layout.cp_mirror(samples.z[samples.conjugate]))
    # K = 1 gives one sample per event
    unfold_files(paired_sample["model"], path, tmp_path / "one.root", progress=False)
    assert posterior_samples(tmp_path / "one.root").z.shape == (n, 1, 24)


def test_posterior_samples_leaves_out_incomplete_events_and_refuses_other_files(
    paired_sample, tmp_path
):
    out = tmp_path / "posterior.root"
    unfold_files(paired_sample["model"], paired_sample["full"], out, samples=3, progress=False)
    # a file where the model gave a non-finite value for one sample of event 7
    incomplete = tmp_path / "incomplete.root"
    with EventWriter(incomplete, metadata=read_metadata(out)) as writer:
        for chunk in read_chunks(out):
            drop = (np.asarray(chunk["event"]) == 7) & (np.asarray(chunk["replica"]) == 2)
            writer.write({name: values[~drop] for name, values in chunk.items()})
    with pytest.warns(UserWarning, match="1 of 1500 events have fewer than 3 samples"):
        samples = posterior_samples(incomplete)
    assert len(samples) == 1499 and 7 not in samples.event
    simulated = tmp_path / "simulated.root"
    simulate_files(paired_sample["model"], paired_sample["partons"], simulated, progress=False)
    with pytest.raises(InputError, match="simulated.root: not an output of 'turbosim-hep unfold'"):
        posterior_samples(simulated)
    with pytest.raises(InputError, match="not a ROOT file"):
        posterior_samples(paired_sample["model"])
    with pytest.raises(ArgumentError, match="frame: must be one of own, reference"):
        posterior_samples(out, frame="lab")


def test_bad_sample_counts_are_one_line_errors(paired_sample, tmp_path, capsys):
    model, full = paired_sample["model"], paired_sample["full"]
    for samples in (0, 65537, 10**12, 2.0, True, "4"):
        with pytest.raises(ArgumentError, match="samples: must be an integer from 1 to 65536"):
            unfold_files(model, full, tmp_path / "x.root", samples=samples)
    with pytest.raises(TurbosimError, match="unfold takes no acceptance"):
        run_files("unfold", model, full, tmp_path / "x.root", acceptance="sample")
    for value, fragment in (
        ("0", "argument --samples: must be an integer from 1 to 65536, got 0"),
        ("65537", "argument --samples: must be an integer from 1 to 65536, got 65537"),
        ("1.5", "argument --samples: must be an integer from 1 to 65536, got '1.5'"),
    ):
        code = main(["unfold", model, full, "-o", str(tmp_path / "y.root"), "--samples", value])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "x.root").exists() and not (tmp_path / "y.root").exists()


def test_cli_samples(paired_sample, tmp_path, capsys):
    out = tmp_path / "cli.root"
    code = main(["unfold", paired_sample["model"], paired_sample["full"], "-o", str(out),
                 "--samples", "3", "--seed", "2", "--quiet"])
    assert code == 0
    assert "full.root: 4500 of 1500 events written (3 samples each)" in capsys.readouterr().out
    unfold_files(paired_sample["model"], paired_sample["full"], tmp_path / "api.root",
                 samples=3, seed=2, progress=False)
    assert ak.array_equal(events(out), events(tmp_path / "api.root"))


def test_a_deterministic_encoder_warns_that_its_samples_are_equal(paired_sample, tmp_path):
    model = TurboSim.from_config({"noise_mode": "none"}, x=torch.from_numpy(paired_sample["x"]),
                                 z=torch.from_numpy(paired_sample["z"]))
    save_checkpoint(tmp_path / "deterministic.pt", model)
    with pytest.warns(UserWarning, match="encoder takes no noise .* the 2 samples of every "
                                         "event are the same parton event"):
        unfold_files(tmp_path / "deterministic.pt", paired_sample["full"], tmp_path / "d.root",
                     samples=2, progress=False)
    samples = posterior_samples(tmp_path / "d.root")
    np.testing.assert_array_equal(samples.z[:, 0], samples.z[:, 1])


def test_heads_that_take_noise_get_the_events_noise_in_the_pipeline(paired_sample, tmp_path):
    """With the chain and radiation heads, part of each event's noise is the heads': the
    pipeline's outputs are the model's with the per-event noise, whatever the chunking."""
    z, x = (torch.from_numpy(paired_sample[k]) for k in ("z", "x"))
    model = TurboSim.from_config(
        {"x_head": "radiation", "z_head": "chain", "encoder_noise_mode": "cat",
         "encoder_noise_sigma": 1.0}, x=x, z=z,
    )
    assert model.decoder_noise_dim == 24 + 4 and model.encoder_noise_dim == 24 + 4
    save_checkpoint(tmp_path / "heads.pt", model)
    full = paired_sample["full"]
    for direction, run, noise_dim, inputs in (
        ("unfold", unfold_files, model.encoder_noise_dim, x),
        ("simulate", simulate_files, model.decoder_noise_dim, z),
    ):
        options = {"acceptance": "off"} if direction == "simulate" else {}
        run(tmp_path / "heads.pt", full, tmp_path / f"{direction}.root", seed=2,
            progress=False, **options)
        run(tmp_path / "heads.pt", full, tmp_path / f"{direction}_small.root", seed=2,
            chunk_events=97, progress=False, **options)
        out = by_event(events(tmp_path / f"{direction}.root"))
        small = by_event(events(tmp_path / f"{direction}_small.root"))
        entry = ak.to_numpy(out.event)
        noise = torch.from_numpy(event_normal(2, stream_id("full.root"), entry, noise_dim))
        with torch.inference_mode():
            function = model.unfold if direction == "unfold" else model.simulate
            expected = function(inputs[entry], noise).numpy()
        if direction == "unfold":
            written, again = parton_p4(out), parton_p4(small)
        else:
            written = ak.to_numpy(out.Jet_pt)
            again = ak.to_numpy(small.Jet_pt)
            expected = np.hypot(expected[:, 8::4], expected[:, 9::4])
        np.testing.assert_allclose(written, expected, rtol=1e-3, atol=1e-2)
        np.testing.assert_array_equal(written, again)
