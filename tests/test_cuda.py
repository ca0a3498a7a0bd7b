"""Training and inference on CUDA: the captured training step, the inference's staging
(pinned buffers, a copy stream beside the compute stream), and what they share with the
CPU path.

The tests marked ``needs_cuda`` run only where torch sees a GPU; the others check on any
machine the code the CUDA path shares (the setting and its flag, the moving average, the
optimiser state, the warm-up that capturing undoes, the message without CUDA, the
batches of the staging and its ordering of streams and events, run on stand-ins).
"""

from __future__ import annotations

import contextlib
import copy
import json

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils._python_dispatch import TorchDispatchMode

from turbosim_hep import layout
from turbosim_hep.cli import main
from turbosim_hep.inference import cached_model, run_model
from turbosim_hep.model import TurboSim, load_model, save_checkpoint
from turbosim_hep.model.checkpoint import load_checkpoint
from turbosim_hep.model.presets import loss_config
from turbosim_hep.model.turbosim import ModelConfig
from turbosim_hep.pipeline import staging
from turbosim_hep.pipeline.staging import Batch, CudaStaging, plan_batches
from turbosim_hep.training import (
    RESUMABLE_SETTINGS,
    TrainConfig,
    Trainer,
    fit,
    log_path_for,
    train,
)
from turbosim_hep.training.graphs import (
    CapturedSteps,
    LearningRates,
    Snapshot,
    graphs_unavailable,
    update_moving_average,
)

from _ttbar import smear, ttbar_pairs, ttbar_partons, write_sample

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def states_equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# --- the shared code, on any machine ------------------------------------------------


def test_graphs_setting_is_checked_and_resumable():
    assert TrainConfig().graphs is True and "graphs" in RESUMABLE_SETTINGS
    assert TrainConfig.from_dict({"epochs": 2}).graphs  # checkpoints without the setting
    with pytest.raises(ValueError, match="graphs must be true or false"):
        TrainConfig(graphs="no")


def test_graphs_are_ignored_on_the_cpu():
    data = ttbar_pairs(300, seed=5)
    train_events, val_events = data.split(0.2)
    states = []
    for graphs in (True, False):
        config = TrainConfig(epochs=1, batch_size=50, ema_decay=0.9, device="cpu", graphs=graphs)
        trainer = Trainer(ModelConfig(), loss_config("turbosim"), config)
        assert trainer.captured_steps is None
        fit(trainer, train_events, val_events, progress=False)
        states.append(trainer.state_dict())
    for key in ("model_state", "ema_state", "objective_state"):
        assert states_equal(states[0][key], states[1][key]), key


def test_no_graphs_flag_is_stored_and_taken_on_resume(tmp_path, paired_file):
    out = tmp_path / "m.pt"
    args = ["train", paired_file, "-o", str(out), "--batch-size", "100", "--quiet"]
    assert main(args + ["--epochs", "1", "--device", "cpu", "--no-graphs"]) == 0
    assert load_checkpoint(out)["train_config"]["graphs"] is False
    assert main(args[:4] + ["--resume", "--epochs", "2", "--quiet"]) == 0
    assert main(args[:4] + ["--resume", "--epochs", "2", "--no-graphs", "--quiet"]) == 0
    assert len(load_checkpoint(out)["history"]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path, paired_file, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", paired_file, "-o", str(out), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err
    assert not out.exists()
    assert graphs_unavailable(torch.device("cuda")) == "CUDA is not available"
    assert "need a CUDA device" in graphs_unavailable(torch.device("cpu"))


def test_a_torch_that_cannot_register_generators_is_named(monkeypatch):
    """Such a torch trains eagerly after one warning naming this (`Trainer`)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", type("OlderCUDAGraph", (), {}))
    reason = graphs_unavailable(torch.device("cuda"))
    assert reason.startswith(f"torch {torch.__version__} cannot register a random generator")


def test_moving_average_update_is_torch_s():
    torch.manual_seed(0)
    model = TurboSim(ModelConfig())
    ours = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    torch_s = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    for _ in range(3):  # the first update copies the weights, the next ones average
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        update_moving_average(ours, model, 0.9)
        torch_s.update_parameters(model)
        assert states_equal(ours.state_dict(), torch_s.state_dict())
    assert int(ours.n_averaged) == 3


def test_learning_rates_reach_their_tensors_and_the_groups_stay_eager():
    weights = [torch.nn.Parameter(torch.ones(3))]
    optimizer = torch.optim.Adam(weights, lr=1e-3)
    group = optimizer.param_groups[0]
    rates = LearningRates([optimizer], torch.device("cpu"))
    (tensor,) = rates.tensors
    with rates.bound():  # as in the warm-up and the capture
        assert group["lr"] is tensor and group["capturable"] is True
    assert group["lr"] == 1e-3 and group["capturable"] is False
    group["lr"] = 5e-4  # what the schedule of an epoch does
    rates.sync()
    assert float(tensor) == pytest.approx(5e-4) and group["lr"] == 5e-4
    assert optimizer.state_dict()["param_groups"][0]["lr"] == 5e-4


@pytest.mark.parametrize("stepped", [False, True])
def test_warmup_before_a_capture_leaves_no_trace(stepped):
    """The eager steps before a capture are undone: the run continues as its twin."""
    data = ttbar_pairs(300, seed=5)
    train_events, val_events = data.split(0.2)
    config = TrainConfig(batch_size=50, seed=2, ema_decay=0.9, gp_interval=2, device="cpu")
    runs = [Trainer(ModelConfig(), loss_config("turbosim", mass_weight=1.0), config)
            for _ in range(2)]
    batches = [run.prepare(train_events, val_events) for run in runs]
    if stepped:  # optimiser state and the average exist before the warm-up
        for run, (x, z) in zip(runs, batches, strict=True):
            run.step(x[:50], z[:50])
    run, (x, z) = runs[0], batches[0]
    steps = CapturedSteps(run._step, run.generator, config.ema_decay)
    saved = Snapshot(run._step, run.generator, run.ema)
    for scales in ((2.0,), (0.0,)):
        steps.body(x[50:100], z[50:100], scales, run.ema)
    saved.restore()
    values = [r.step(b[0][100:150], b[1][100:150]) for r, b in zip(runs, batches, strict=True)]
    assert torch.equal(values[0], values[1])
    a, b = (r.state_dict() for r in runs)
    for key in ("model_state", "ema_state", "objective_state"):
        assert states_equal(a[key], b[key]), key
    assert torch.equal(a["generator"], b["generator"])
    for key in ("optimizer", "critic_optimizer"):
        for state_a, state_b in zip(a[key]["state"].values(), b[key]["state"].values(),
                                    strict=True):
            assert states_equal(state_a, state_b), key


#: Operators that need the host to wait for the device (a value or a data-dependent size)
#: or copy host data to it: none may run inside a captured step.
HOST_ROUND_TRIPS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "lift_fresh")


class _HostRoundTrips(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if any(op in name for op in HOST_ROUND_TRIPS):
            self.seen.add(name)
        if name.startswith(("aten.index.", "aten.index_put")) and any(  # a boolean mask
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        ):
            self.seen.add(name + " with a mask")
        return func(*args, **(kwargs or {}))


#: Heads that take the partons (response) or part of the noise (radiation, chain), with
#: the energy score's second draws of every d term.
_NEW_HEADS = {"x_head": "radiation", "z_head": "chain", "encoder_noise_mode": "cat"}
_ENERGY = {t: "energy" for t in ("dzt", "dxh", "dxt", "dzh")}


@pytest.mark.parametrize(
    "preset, model, score",
    [("turbosim", {}, {}), ("gan", {}, {}), ("cycle", {}, {}), ("regression", {}, {}),
     ("turbosim", {"x_head": "response"}, {}), ("turbosim", _NEW_HEADS, _ENERGY)],
    ids=["turbosim", "gan", "cycle", "regression", "response-head", "new-heads-energy"],
)
def test_what_is_captured_makes_no_host_round_trip(preset, model, score):
    """The body of a graph, run on the CPU with the captured optimiser settings, calls no
    operator that synchronises with the host or copies host data (the CPU kernels' own
    internals are not seen; a capture on CUDA checks the rest)."""
    loss = loss_config(preset, mass_weight=1.0, divergence={"Dxt": "mmd"} if preset == "cycle"
                       else {}, score=score)
    config = TrainConfig(batch_size=64, ema_decay=0.9, gp_interval=2, device="cpu")
    run = Trainer(ModelConfig(**model), loss, config)
    x, z = run.prepare(*ttbar_pairs(400, seed=5).split(0.2))
    steps = CapturedSteps(run._step, run.generator, config.ema_decay)
    rates = LearningRates(steps.optimizers, x.device)
    with rates.bound():
        steps.body(x[:64], z[:64], (2.0,), run.ema)  # the warm-up: caches are filled
        probe = _HostRoundTrips()
        with probe:
            for scales in ((2.0,), (0.0,)):
                steps.body(x[:64], z[:64], scales, run.ema)
    assert not probe.seen


def test_batches_cut_every_array_and_straddle_none():
    assert plan_batches([5, 0, 12, 4], 4) == [
        Batch(0, 0, 4), Batch(0, 4, 5), Batch(2, 0, 4), Batch(2, 4, 8), Batch(2, 8, 12),
        Batch(3, 0, 4),
    ]
    assert [len(b) for b in plan_batches([262_144 + 1], 262_144)] == [262_144, 1]
    assert plan_batches([], 10) == []


class _Timeline:
    """Stand-ins for CUDA streams and events that log what the staging asks of them."""

    def __init__(self):
        self.log: list[tuple] = []
        self.current = None  # the stream of the enclosing ``torch.cuda.stream``

    def stream(self, device=None):
        timeline = self

        class Stream:
            def wait_event(self, event):
                timeline.log.append(("wait", self, event))

        return Stream()

    def event(self, blocking=False):
        timeline = self

        class Event:
            def record(self, stream):
                timeline.log.append(("record", self, stream))

            def synchronize(self):
                timeline.log.append(("synchronize", self))

        return Event()

    @contextlib.contextmanager
    def on(self, stream):
        outer, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = outer


def _since_last(log: list[tuple], position: int, entry: tuple, marker: tuple) -> bool:
    """Whether ``entry`` is in the log between the last ``marker`` before ``position``
    (or the start) and ``position``."""
    start = max([i for i in range(position) if log[i] == marker], default=-1)
    return entry in log[start + 1:position]


def test_staging_orders_its_copies_and_waits_as_documented(monkeypatch):
    """The staging on stand-ins of streams and events, on the CPU: the outputs of every
    job, the function on the compute stream, and each slot's discipline: an upload after
    the device has read the slot's previous inputs, the computation after its upload, a
    download after the computation, the host reusing pinned inputs only once uploaded and
    reading outputs only once downloaded."""
    timeline = _Timeline()
    monkeypatch.setattr(torch.cuda, "Stream", timeline.stream)
    monkeypatch.setattr(torch.cuda, "Event", timeline.event)
    monkeypatch.setattr(torch.cuda, "stream", timeline.on)
    monkeypatch.setattr(staging, "pinned", lambda shape: torch.empty(shape))
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda tensor, stream: None)
    run = CudaStaging(torch.device("cpu"), 3, 2, 1, batch_size=4)

    def function(inputs, noise):
        timeline.log.append(("call", timeline.current))
        return inputs.sum(1, keepdim=True) + noise.sum(1, keepdim=True)

    rng = np.random.default_rng(1)
    for sizes in ((2,), (9, 0, 6), (13,)):  # a small first chunk: the slots grow later
        jobs = [(rng.normal(size=(n, 3)).astype(np.float32),
                 rng.normal(size=(n, 2)).astype(np.float32)) for n in sizes]
        outputs = run.run(function, jobs)
        for (inputs, noise), values in zip(jobs, outputs, strict=True):
            assert values.shape == (len(inputs), 1)
            np.testing.assert_allclose(values[:, 0], inputs.sum(1) + noise.sum(1), rtol=1e-6)
    log, copy_stream, compute = timeline.log, run.copy_stream, run.compute_stream
    assert all(entry[1] is compute for entry in log if entry[0] == "call")
    for slot in run._slots:
        for i, entry in enumerate(log):
            if entry == ("record", slot.uploaded, copy_stream):
                assert _since_last(log, i, ("wait", copy_stream, slot.computed), entry)
                assert i == log.index(entry) or _since_last(
                    log, i, ("synchronize", slot.uploaded), entry)
            if entry == ("record", slot.computed, compute):
                assert log[i - 2:i] == [("wait", compute, slot.uploaded), ("call", compute)]
            if entry == ("record", slot.downloaded, copy_stream):
                assert log[i - 1] == ("wait", copy_stream, slot.computed)
                assert log[i + 1] == ("synchronize", slot.downloaded)
    uploads = [e for e in log if e[0] == "record" and e[2] is copy_stream
               and any(e[1] is s.uploaded for s in run._slots)]
    assert len(uploads) == 1 + 5 + 4  # one per batch of 4 events at most


# --- on a GPU ------------------------------------------------------------------------

#: (preset, loss settings, training settings) of the captured-versus-eager comparison.
CASES = {
    "turbosim-mass-ema-lazy": ("turbosim", {"mass_weight": 1.0}, {"ema_decay": 0.9,
                                                                  "gp_interval": 2}),
    "gan-dre": ("gan", {}, {}),
    "regression-no-critic": ("regression", {}, {}),
    "cycle-mmd": ("cycle", {"divergence": {"Dxt": "mmd"}}, {}),
    "turbosim-amp": ("turbosim", {}, {"amp": True, "critic_steps": 2}),
}


@needs_cuda
@pytest.mark.parametrize("after_a_step", [False, True], ids=["first-step", "later-step"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_captured_step_matches_the_eager_step(case, after_a_step):
    preset, loss_settings, train_settings = CASES[case]
    data = ttbar_pairs(600, seed=5)
    train_events, val_events = data.split(0.2)
    runs, batches = [], []
    for graphs in (False, True):
        config = TrainConfig(batch_size=64, seed=3, device="cuda", graphs=graphs,
                             **train_settings)
        run = Trainer(ModelConfig(), loss_config(preset, **loss_settings), config)
        runs.append(run)
        batches.append(run.prepare(train_events, val_events))
    eager, captured = runs
    assert eager.captured_steps is None and captured.captured_steps is not None
    x, z = batches[0]
    if after_a_step:  # optimiser moments, an average to move, the penalty-free variant
        eager.step(x[:64], z[:64])
        captured.load_state_dict(eager.state_dict())
    values = [run.step(x[64:128], z[64:128]) for run in runs]
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if train_settings.get("amp") else {
        "rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(values[1], values[0], **tolerance)
    a, b = eager.state_dict(), captured.state_dict()
    for key in ("model_state", "objective_state", "ema_state"):
        if a[key] is not None:
            torch.testing.assert_close(b[key], a[key], **tolerance)
    for key in ("optimizer", "critic_optimizer"):
        if a[key] is not None:
            torch.testing.assert_close(b[key]["state"], a[key]["state"], **tolerance)
            assert b[key]["param_groups"] == a[key]["param_groups"]  # as eager: floats
    # the same random numbers were drawn, and as many
    assert torch.equal(a["generator"], b["generator"])
    assert a["critic_updates"] == b["critic_updates"]
    assert captured.captured_steps.n_graphs == 1


@needs_cuda
def test_captured_run_resumes_exactly(tmp_path):
    data = ttbar_pairs(600, seed=5)

    def run(output, epochs, resume=False, **changes):
        if resume:
            return train(["synthetic"], output, resume=True, progress=False, events=data,
                         resume_changes={"epochs": epochs, **changes})
        config = TrainConfig(epochs=epochs, batch_size=50, seed=3, gp_interval=4, ema_decay=0.9,
                             lr_final_fraction=0.2, device="cuda")
        return train(["synthetic"], output, train_config=config, progress=False, events=data,
                     loss_config=loss_config("turbosim", mass_weight=1.0))

    straight = run(tmp_path / "straight.pt", 3)
    run(tmp_path / "killed.pt", 1)
    resumed = run(tmp_path / "killed.pt", 3, resume=True)
    a, b = (load_checkpoint(tmp_path / f"{name}.pt") for name in ("straight", "killed"))
    assert states_equal(a["model_state"], b["model_state"])
    for key in ("model_state", "ema_state", "objective_state"):
        assert states_equal(a["training_state"][key], b["training_state"][key]), key

    def timeless(history):
        return [{k: v for k, v in h.items() if k not in ("seconds", "events_per_second")}
                for h in history]

    assert timeless(a["history"]) == timeless(b["history"])
    assert resumed.best_ks == straight.best_ks
    # a captured run's checkpoint is an eager one's: it continues without graphs
    for group in a["training_state"]["optimizer"]["param_groups"]:
        assert type(group["lr"]) is float and group["capturable"] is False
    result = run(tmp_path / "killed.pt", 4, resume=True, graphs=False)
    assert len(result.history) == 4 and np.isfinite(result.history[-1]["train"]["total"])


@needs_cuda
@pytest.mark.parametrize("graphs", [True, False], ids=["graphs", "no-graphs"])
def test_one_epoch_of_training_on_cuda(tmp_path, paired_file, graphs):
    out = tmp_path / "m.pt"
    args = ["train", paired_file, "-o", str(out), "--epochs", "1", "--batch-size", "100",
            "--device", "cuda", "--ema-decay", "0.99", "--gp-interval", "4", "--mass-weight",
            "1", "--quiet"]
    assert main(args + ([] if graphs else ["--no-graphs"])) == 0
    (record,) = [json.loads(line) for line in open(log_path_for(out))]
    assert np.isfinite(list(record["train"].values())).all()
    assert record["events_per_second"] > 0 and record["valid_fraction"] == 1.0
    model = load_model(out)  # on the CPU
    assert next(model.parameters()).device.type == "cpu"
    assert load_checkpoint(out)["train_config"]["graphs"] is graphs


@pytest.fixture(scope="module")
def inference_files(tmp_path_factory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("inference")
    z = ttbar_partons(1500, seed=31)
    x = smear(z, seed=32)
    model = TurboSim.from_config(None, x=torch.from_numpy(x), z=torch.from_numpy(z))
    save_checkpoint(directory / "model.pt", model)
    return {"model": str(directory / "model.pt"),
            "partons": write_sample(directory / "partons.root", z, None),
            "full": write_sample(directory / "full.root", z, x),
            "dir": str(directory)}


def _close(cuda: np.ndarray, cpu: np.ndarray) -> None:
    """Within 1e-4 relative (and 1e-3 GeV for components near zero)."""
    np.testing.assert_allclose(cuda, cpu, rtol=1e-4, atol=1e-3)


#: Runs of the CUDA-against-CPU comparison: one batch per chunk (the defaults), and many
#: batches per chunk over several replicas (the staging's two slots in turn).
INFERENCE_RUNS = {
    "defaults": {},
    "replicas-in-batches": {"oversample": 3, "batch_size": 500, "chunk_events": 700},
}


@needs_cuda
@pytest.mark.parametrize("settings", sorted(INFERENCE_RUNS))
def test_simulate_on_cuda_gives_the_cpu_events(inference_files, tmp_path, settings):
    from turbosim_hep.io import read_events
    from turbosim_hep.pipeline import simulate_files

    batches = {}
    for device in ("cuda", "cpu"):
        out = tmp_path / f"{device}.root"
        simulate_files(inference_files["model"], [inference_files["partons"]], out, seed=5,
                       device=device, progress=False, **INFERENCE_RUNS[settings])
        batches[device], _ = read_events(out)
    np.testing.assert_array_equal(batches["cuda"].entry, batches["cpu"].entry)
    _close(batches["cuda"].x, batches["cpu"].x)


@needs_cuda
def test_unfold_on_cuda_gives_the_cpu_events(inference_files, tmp_path):
    from turbosim_hep.io import read_events
    from turbosim_hep.pipeline import unfold_files

    batches = {}
    for device in ("cuda", "cpu"):
        out = tmp_path / f"{device}.root"
        unfold_files(inference_files["model"], [inference_files["full"]], out, seed=5,
                     device=device, batch_size=400, progress=False)
        batches[device], _ = read_events(out)
    np.testing.assert_array_equal(batches["cuda"].entry, batches["cpu"].entry)
    _close(batches["cuda"].z, batches["cpu"].z)


@needs_cuda
def test_staging_runs_the_model_on_its_compute_stream_and_gives_the_cpu_outputs(
    inference_files,
):
    """The copy-stream path itself: jobs of several batches, an empty one, buffers that
    grow after a small first run and are reused by the next."""
    cpu = cached_model(inference_files["model"], "cpu")
    cuda = cached_model(inference_files["model"], "cuda")
    noise_dim = cuda.decoder_noise_dim
    run = CudaStaging(torch.device("cuda"), layout.N_FEATURES, noise_dim, layout.N_FEATURES,
                      batch_size=700)
    assert run.copy_stream != run.compute_stream != torch.cuda.default_stream()
    streams = []

    def simulate(inputs, noise):
        streams.append(torch.cuda.current_stream())
        return cuda.simulate(inputs, noise)

    z = ttbar_partons(2500, seed=33)
    noise = np.random.default_rng(34).standard_normal((2500, noise_dim), dtype=np.float32)
    for jobs in ([(z[:300], noise[:300])], [(z[300:], noise[300:]), (z[:0], noise[:0]),
                                            (z[:1000], noise[:1000])]):
        outputs = run.run(simulate, jobs)
        for (inputs, eps), values in zip(jobs, outputs, strict=True):
            expected = run_model(cpu.simulate, inputs, eps, torch.device("cpu"), 4096)
            _close(values, expected)
    assert streams and all(stream == run.compute_stream for stream in streams)
    assert run._slots[0].capacity == run._slots[1].capacity == 700


@needs_cuda
def test_coffea_plugin_on_cuda_gives_the_cpu_events(inference_files):
    from turbosim_hep.coffea import FastSim
    from turbosim_hep.io.schemas import open_nanoevents

    path = inference_files["partons"]
    simulated = {}
    for device in ("cuda", "cpu"):
        events = open_nanoevents(path, mode="eager", metadata={"filename": path,
                                                                "entrystart": 0})
        simulated[device] = FastSim(inference_files["model"], seed=4, device=device)(events)
    np.testing.assert_array_equal(simulated["cuda"].mask, simulated["cpu"].mask)
    _close(simulated["cuda"].x, simulated["cpu"].x)


def test_copying_a_trainer_state_shares_nothing():
    """`Trainer.load_state_dict` copies; a captured trainer relies on that to keep its
    tensors (checked here on the CPU, where the state is the same)."""
    config = TrainConfig(batch_size=50, device="cpu")
    source = Trainer(ModelConfig(), loss_config("turbosim"), config)
    target = Trainer(ModelConfig(), loss_config("turbosim"), config)
    before = [p.data_ptr() for p in target.model.parameters()]
    target.load_state_dict(copy.deepcopy(source.state_dict()))
    assert [p.data_ptr() for p in target.model.parameters()] == before
