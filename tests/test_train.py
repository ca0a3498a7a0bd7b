"""The trainer: data, validation, checkpoints and resume, the ``train`` command."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from turbosim_hep.cli import main, train_cmd
from turbosim_hep.errors import InputError, OutputError, TurbosimError
from turbosim_hep.io.hdf5 import write_reference_h5
from turbosim_hep.io.reader import EventBatch
from turbosim_hep.model import load_model
from turbosim_hep.model.checkpoint import load_checkpoint
from turbosim_hep.model.presets import loss_config
from turbosim_hep.model.turbosim import ModelConfig
from turbosim_hep.training import (
    RESUMABLE_SETTINGS,
    PairedEvents,
    TrainConfig,
    Trainer,
    build_configs,
    fit,
    log_path_for,
    read_pairs,
    train,
)
from turbosim_hep.training.evaluation import ValidationSet

from _ttbar import ttbar_pairs, write_sample


def test_split_is_deterministic_and_disjoint():
    data = ttbar_pairs(500)
    train_a, val_a = data.split(0.2)
    train_b, val_b = data.split(0.2)
    assert len(val_a) == 100 and len(train_a) == 400
    assert np.array_equal(val_a.z, val_b.z) and np.array_equal(train_a.x, train_b.x)
    rows = {tuple(r) for r in train_a.z} & {tuple(r) for r in val_a.z}
    assert not rows


def test_read_pairs_from_root_and_hdf5(tmp_path, paired_file):
    from_root = read_pairs([paired_file])
    h5 = tmp_path / "ttbar.h5"
    write_reference_h5(h5, EventBatch(np.arange(len(from_root)), from_root.z, from_root.x))
    from_h5 = read_pairs([h5, paired_file])
    assert len(from_root) == 1200 and len(from_h5) == 2400
    assert np.array_equal(from_h5.z[:1200], from_root.z)
    with pytest.raises(InputError, match="nothing.root: no such file"):
        read_pairs([tmp_path / "nothing.root"])
    x_only = write_sample(tmp_path / "x_only.root", None, from_root.x)
    with pytest.raises(InputError, match="x_only.root: .*lacks branches"):
        read_pairs([x_only])


def train_fn(output, data, config, resume):
    """`train` on in-memory events with the turbosim preset and no progress bar.

    A resumed run takes only the new number of epochs of ``config``.
    """
    if resume:
        return train(
            ["synthetic"], output, resume=True, resume_changes={"epochs": config.epochs},
            progress=False, events=data,
        )
    return train(
        ["synthetic"], output, train_config=config, loss_config=loss_config("turbosim"),
        progress=False, events=data,
    )


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    data = ttbar_pairs(600, seed=5)

    def config(epochs: int) -> TrainConfig:
        # 9 batches per epoch and a penalty every 4th critic update: the schedule
        # runs across epoch boundaries, so resuming must restore it, as well as the
        # moving average of the weights
        # (and a validation fraction other than the default: the resumed run must split
        # the events as the stored run did)
        # the learning-rate schedule, too, follows the epoch across the interruption
        return TrainConfig(
            epochs=epochs, batch_size=50, seed=3, gp_interval=4, ema_decay=0.9,
            select_on_physics=True, val_fraction=0.25, lr_final_fraction=0.2,
        )

    straight = train_fn(tmp_path / "straight.pt", data, config(3), False)
    train_fn(tmp_path / "killed.pt", data, config(1), False)  # killed after epoch 1
    resumed = train_fn(tmp_path / "killed.pt", data, config(3), True)
    a = load_checkpoint(tmp_path / "straight.pt")
    b = load_checkpoint(tmp_path / "killed.pt")
    for key in ("model_state",):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), name
    for name, value in a["training_state"]["model_state"].items():
        assert torch.equal(value, b["training_state"]["model_state"][name]), name
    def timeless(history):
        return [{k: v for k, v in h.items() if k not in ("seconds", "events_per_second")}
                for h in history]

    assert timeless(a["history"]) == timeless(b["history"])
    assert resumed.best_epoch == straight.best_epoch and resumed.best_ks == straight.best_ks
    lines = open(log_path_for(tmp_path / "killed.pt")).read().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


#: A checkpoint written by the training code before the `turbosim_hep.training` package
#: (commit 83728e3): one epoch of small networks on ``ttbar_pairs(300, seed=5)`` with the mass
#: term, the lazy penalty and the moving average; and the log of that run resumed to two
#: epochs by the same code.
OLD_CHECKPOINT = Path(__file__).parent / "data" / "checkpoint_83728e3.pt"
OLD_RESUMED_LOG = Path(__file__).parent / "data" / "checkpoint_83728e3.resumed.log.jsonl"


def test_checkpoint_of_the_previous_code_resumes(tmp_path):
    output = tmp_path / "old.pt"
    shutil.copy(OLD_CHECKPOINT, output)
    stored = load_checkpoint(output)
    # on the CPU, where the stored run and its continuation were made
    result = train(
        ["synthetic"], output, resume=True, resume_changes={"epochs": 2, "device": "cpu"},
        progress=False, events=ttbar_pairs(300, seed=5),
    )
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[0] == stored["history"][0]
    # the second epoch continues the stored run as the previous code did
    expected = [json.loads(line) for line in open(OLD_RESUMED_LOG)][1]
    assert result.history[1]["lr"] == expected["lr"]
    assert result.history[1]["train"] == pytest.approx(expected["train"], rel=1e-5)
    assert result.history[1]["val"] == pytest.approx(expected["val"], rel=1e-5)
    state = load_checkpoint(output)["training_state"]
    assert set(state) == set(stored["training_state"])
    n_steps = 2 * (225 // 50)  # two epochs of the 225 training events in batches of 50
    assert state["critic_updates"] == n_steps and int(state["ema_state"]["n_averaged"]) == n_steps
    assert all(int(s["step"]) == n_steps for s in state["optimizer"]["state"].values())


def test_save_before_fit_and_state_dict_round_trip(tmp_path):
    data = ttbar_pairs(300, seed=5)
    train_events, val_events = data.split(0.2)
    config = TrainConfig(epochs=1, batch_size=50, seed=2, ema_decay=0.9, gp_interval=3)

    def new() -> Trainer:
        return Trainer(ModelConfig(), loss_config("turbosim", mass_weight=1.0), config)

    trainer = new()
    trainer.save(tmp_path / "fresh.pt")  # nothing trained yet: a valid, resumable state
    resumed = Trainer.resume(tmp_path / "fresh.pt", train_events, val_events)
    straight = fit(new(), train_events, val_events, progress=False)
    again = fit(resumed, train_events, val_events, progress=False)
    kept = again.model.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in straight.model.state_dict().items())
    # load_state_dict restores what state_dict returns
    twin = new()
    twin.load_state_dict(resumed.state_dict())
    a, b = resumed.state_dict(), twin.state_dict()
    assert set(a) == set(b) and a["fingerprint"] == b["fingerprint"] is not None
    for key in ("model_state", "ema_state", "objective_state", "best_state"):
        assert all(torch.equal(v, b[key][name]) for name, v in a[key].items()), key
    assert torch.equal(a["generator"], b["generator"]) and a["history"] == b["history"]
    for name in ("epoch", "critic_updates", "best_ks", "best_epoch", "stale_epochs"):
        assert a[name] == b[name], name
    # the optimisers, the generator and the penalty schedule continue alike
    values = []
    for run in (resumed, twin):
        x, z = run.prepare(train_events, val_events)
        values.append(run.step(x[:50], z[:50]))
    assert torch.equal(values[0], values[1])
    a, b = resumed.state_dict(), twin.state_dict()
    for key in ("model_state", "ema_state", "objective_state"):
        assert all(torch.equal(v, b[key][name]) for name, v in a[key].items()), key
    assert a["critic_updates"] == b["critic_updates"] == 5


def test_moving_average_is_what_is_validated_and_kept():
    data = ttbar_pairs(600, seed=5)
    train_events, val_events = data.split(0.2)
    trainer = Trainer(
        ModelConfig(), loss_config("turbosim"), TrainConfig(epochs=1, batch_size=50, ema_decay=0.9)
    )
    result = fit(trainer, train_events, val_events, progress=False)
    assert int(trainer.ema.n_averaged) == len(train_events) // 50  # one update per step
    average, trained = trainer.ema.module.state_dict(), trainer.model.state_dict()
    kept = result.model.state_dict()
    weights = [name for name in kept if name.endswith("weight")]
    assert all(torch.equal(kept[name], average[name]) for name in kept)
    assert not all(torch.equal(kept[name], trained[name]) for name in weights)
    # the standardisation fitted before the average began is part of it
    assert torch.equal(average["x_scaler.mean"], trained["x_scaler.mean"])
    record = result.history[0]
    assert set(record["ks_physics"]) >= {"m_tt", "m_W_had", "m_t_lep", "m_t_had"}
    assert record["ks_sum"] == pytest.approx(record["ks_x"] + record["ks_z"])


def test_resume_refuses_other_data_and_existing_outputs(tmp_path):
    data = ttbar_pairs(300, seed=5)
    config = TrainConfig(epochs=1, batch_size=50)
    train_fn(tmp_path / "m.pt", data, config, False)
    with pytest.raises(OutputError, match="m.pt: exists"):
        train_fn(tmp_path / "m.pt", data, config, False)
    with pytest.raises(InputError, match="m.pt: was trained on other events"):
        other = ttbar_pairs(300, seed=6)
        train_fn(tmp_path / "m.pt", other, TrainConfig(epochs=2, batch_size=50), True)
    with pytest.raises(InputError, match="none.pt: no such file to resume"):
        train_fn(tmp_path / "none.pt", data, config, True)
    with pytest.raises(TurbosimError, match="m.pt: .*only epochs, .* not batch_size, lr"):
        train(["synthetic"], tmp_path / "m.pt", resume=True, events=data,
              resume_changes={"lr": 1e-3, "batch_size": 10, "epochs": 3})
    with pytest.raises(TurbosimError, match="m.pt: a resumed run keeps its stored settings"):
        train(["synthetic"], tmp_path / "m.pt", resume=True, events=data, train_config=config)


def test_a_new_run_never_replaces_a_model_written_meanwhile(tmp_path, monkeypatch):
    """Two runs to one new model file: the one whose first checkpoint comes second fails
    and leaves the other's file, and no log or temporary of its own."""
    from turbosim_hep.training import loop

    out = tmp_path / "m.pt"
    train_epoch = loop.train_epoch

    def concurrent_run_finishes_first(*args, **kwargs):
        if not out.exists():
            out.write_bytes(b"the other run's model")
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", concurrent_run_finishes_first)
    with pytest.raises(OutputError, match="m.pt: exists already"):
        train_fn(out, ttbar_pairs(300, seed=5), TrainConfig(epochs=2, batch_size=50), False)
    assert out.read_bytes() == b"the other run's model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_cosine_learning_rate_schedule(tmp_path):
    config = TrainConfig(epochs=5, lr=1e-3, critic_lr=2e-4, lr_final_fraction=0.1)
    factors = [config.lr_factor(e) for e in range(5)]
    assert factors[0] == 1.0 and factors[-1] == pytest.approx(0.1)
    assert factors[2] == pytest.approx(0.55) and np.all(np.diff(factors) < 0)
    assert TrainConfig(epochs=5).lr_factor(4) == 1.0  # the reference: constant
    with pytest.raises(ValueError, match="lr_final_fraction"):
        TrainConfig(lr_final_fraction=0.0)
    config = dataclasses.replace(config, epochs=3, batch_size=50)
    data = ttbar_pairs(300, seed=5)
    train_events, val_events = data.split(0.2)
    trainer = Trainer(ModelConfig(), loss_config("turbosim"), config)
    result = fit(trainer, train_events, val_events, progress=False)
    assert [h["lr"] for h in result.history] == pytest.approx([1e-3, 5.5e-4, 1e-4])
    assert trainer.critic_optimizer.param_groups[0]["lr"] == pytest.approx(2e-5)


def test_early_stopping(tmp_path):
    data = ttbar_pairs(300, seed=5)
    # a step of 1e-30 leaves every float32 weight as it is: the run never improves
    config = TrainConfig(epochs=10, batch_size=50, lr=1e-30, patience=2)
    result = train_fn(tmp_path / "m.pt", data, config, False)
    assert len(result.history) == 3 and result.best_epoch == 1


def test_log_holds_every_term_train_and_validation(tmp_path):
    data = ttbar_pairs(300, seed=5)
    train_fn(tmp_path / "m.pt", data, TrainConfig(epochs=1, batch_size=50), False)
    (record,) = [json.loads(line) for line in open(tmp_path / "m.log.jsonl")]
    active = ["dzt", "Dzt", "dxh", "Dxh", "Dxt", "dzh"]
    assert set(record["train"]) == {"total", *active, "critic_Dzt", "critic_Dxh", "critic_Dxt"}
    assert set(record["val"]) == {"total", *active}
    assert record["ks_sum"] == pytest.approx(record["ks_x"] + record["ks_z"])
    assert record["valid_fraction"] == 1.0


def test_short_training_improves_validation_ks(shipped_sample):
    data = read_pairs([shipped_sample])
    order = np.random.default_rng(0).permutation(len(data))[:16000]  # about 10 s of training
    train_events, val_events = PairedEvents(data.z[order], data.x[order]).split(0.25)
    config = TrainConfig(epochs=4, batch_size=100, seed=0, lr=3e-4, critic_lr=3e-4)
    trainer = Trainer(ModelConfig(), loss_config("turbosim"), config)
    x, z = torch.from_numpy(train_events.x), torch.from_numpy(train_events.z)
    trainer.model.fit_standardisation(x, z)
    untrained = trainer.validate(ValidationSet.from_events(val_events, trainer.device))
    result = fit(trainer, train_events, val_events, progress=False)
    assert result.best_ks < 0.7 * untrained["ks_sum"], (untrained["ks_sum"], result.best_ks)
    assert result.history[-1]["ks_x"] < 0.7 * untrained["ks_x"]
    assert result.history[-1]["valid_fraction"] == 1.0


def test_build_configs_precedence(tmp_path):
    from turbosim_hep.training import read_config_file

    path = tmp_path / "run.yaml"
    path.write_text(
        "preset: aae\nmodel: {noise_mode: cat, noise_dim: 4}\n"
        "loss: {weights: {dxt: 3}, divergence: {Dzt: mmd}, p: 1, score: {dzt: energy}}\n"
        "train: {epochs: 7, batch_size: 20}\n"
    )
    model, loss, run = build_configs(
        read_config_file(path), weights={"dxt": 5}, score={"dzh": "energy"},
        train_overrides={"epochs": 2},
    )
    assert model.noise_mode == "cat" and model.noise_dim == 4
    assert loss.weights["Dzt"] == 1 and loss.weights["dxh"] == 10 and loss.weights["dxt"] == 5
    assert loss.divergence["Dzt"] == "mmd" and loss.p == 1
    assert loss.score == {"dzt": "energy", "dxh": "lp", "dxt": "lp", "dzh": "energy"}
    assert run.epochs == 2 and run.batch_size == 20
    _, gan, _ = build_configs(read_config_file(path), preset="gan")
    assert gan.weights["Dxt"] == 1 and gan.weights["dxt"] == 3
    path.write_text("train: {epoch: 3}\n")
    with pytest.raises(TurbosimError, match="unknown training setting"):
        build_configs(read_config_file(path), source=str(path))
    path.write_text("optimiser: {}\n")
    with pytest.raises(InputError, match="unknown section"):
        read_config_file(path)


def test_cli_train_resume_and_errors(tmp_path, paired_file, capsys):
    out = tmp_path / "model.pt"
    args = ["train", paired_file, "-o", str(out), "--epochs", "1", "--batch-size", "50", "--quiet"]
    speed = ["--gp-interval", "3", "--ema-decay", "0.99", "--select-on-physics"]
    assert main(args + ["--preset", "regression", "--weight", "dzh=2"] + speed) == 0
    assert "best epoch 1 of 1" in capsys.readouterr().out
    model = load_model(out)
    assert model.decoder_noise_dim == 24
    payload = load_checkpoint(out)
    assert payload["loss_config"]["weights"]["dzh"] == 2.0
    settings = payload["train_config"]
    assert settings["epochs"] == 1 and settings["gp_interval"] == 3
    assert settings["ema_decay"] == 0.99 and settings["select_on_physics"] is True
    assert main(args) == 2
    assert "model.pt: exists" in capsys.readouterr().err
    assert main(args[:4] + ["--epochs", "2", "--resume", "--quiet"]) == 0
    assert len(load_checkpoint(out)["history"]) == 2
    # without --epochs the stored total stands: the finished run has nothing left to do,
    # and says so; so does a run asked for fewer epochs than it has
    capsys.readouterr()
    before = out.read_bytes()
    for fewer in ([], ["--epochs", "1"]):
        assert main(args[:4] + ["--resume", "--quiet", *fewer]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"turbosim-hep train: warning: {out}: the run has 2 epochs already, as many as "
            f"or more than the {fewer[-1] if fewer else 2} asked for; nothing to train (give "
            "a larger --epochs to continue it)"
        ]
    assert out.read_bytes() == before
    assert load_checkpoint(out)["train_config"]["epochs"] == 2
    assert len(load_checkpoint(out)["history"]) == 2
    assert main(args[:4] + ["--resume", "--preset", "gan", "--lr", "1e-3"]) == 2
    assert "--preset, --lr cannot change (only --epochs" in capsys.readouterr().err
    assert main(args + ["--force", "--weight", "Dxx=1"]) == 2
    assert "unknown loss term" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "no.root"), "-o", str(tmp_path / "m2.pt")]) == 2
    assert "no.root: no such file" in capsys.readouterr().err


def test_cli_setting_flags_are_the_parser_s_and_follow_the_resume_policy():
    subparsers = argparse.ArgumentParser().add_subparsers()
    actions = train_cmd.add_parser(subparsers)._actions
    flags = {action.dest: action.option_strings[-1] for action in actions if action.option_strings}
    assert {dest: flags[dest] for dest in train_cmd.SETTING_FLAGS} == train_cmd.SETTING_FLAGS
    others = {"help", "output", "resume", "force", "progress"}
    assert set(flags) - set(train_cmd.SETTING_FLAGS) == others
    assert train_cmd.RESUME_FLAGS == {dest: flags[dest] for dest in RESUMABLE_SETTINGS}


def test_mixed_precision_critic_updates_see_the_updated_critics():
    """Under autocast the second critic update of a step uses the weights the first one
    left, not a cast of them cached before it."""
    from turbosim_hep.model.losses import TurboSimObjective
    from turbosim_hep.model.turbosim import TurboSim
    from turbosim_hep.training.step import TrainStep

    data = ttbar_pairs(200, seed=5)
    x, z = torch.from_numpy(data.x), torch.from_numpy(data.z)
    torch.manual_seed(0)
    model = TurboSim.from_config(None, x=x, z=z)
    objective = TurboSimObjective(loss_config("wgan-gp"))
    xs, zs = model.x_scaler(x[:64]), model.z_scaler(z[:64])
    last_critic_loss = []
    for updates in (1, 2):
        step_model, step_objective = copy.deepcopy(model), copy.deepcopy(objective)
        step = TrainStep(
            step_model,
            step_objective,
            torch.optim.Adam(step_model.decoder.parameters(), lr=1e-4),
            torch.optim.Adam(step_objective.critics.parameters(), lr=1e-2),
            autocast=True,  # bfloat16 on the CPU here; the same autocast as on CUDA
        )
        values = step(xs, zs, torch.Generator().manual_seed(1), (0.0,) * updates)
        last_critic_loss.append(values[-1])
    # no penalty, detached fakes: the second update differs only by the critic's weights
    assert not torch.equal(last_critic_loss[0], last_critic_loss[1])
