"""Training throughput (events/s) of the full eight-term objective, and decoder inference speed.

Usage::

    python benchmarks/bench_train.py [--device cpu|cuda] [--preset turbosim]
                                     [--batch-sizes 100 1000] [--threads 1 2]
                                     [--gp-intervals 1 4] [--mass-weight 0]
                                     [--ema-decay D] [--seconds 10]

Measures `turbosim_hep.training.Trainer.step` (one critic update with gradient penalty and
one encoder/decoder update per batch, index batching from device-resident tensors, as
in a real epoch) with the reference architecture, for each lazy-penalty interval (1:
the penalty at every critic update, as the reference), and `TurboSim.simulate` under
``torch.inference_mode``. On CUDA each configuration runs twice: eager steps and steps
replayed from captured CUDA graphs (`turbosim_hep.training.graphs`), with their ratio;
``--threads`` applies to the CPU only. Events are synthetic tt-bar-like pairs; the speed
does not depend on their values. The machine load is printed: the cores may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from turbosim_hep.device import resolve_device
from turbosim_hep.errors import TurbosimError
from turbosim_hep.model.presets import loss_config
from turbosim_hep.model.turbosim import ModelConfig, TurboSim
from turbosim_hep.training import PairedEvents, TrainConfig, Trainer


def fake_pairs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Massless random four-momenta standing in for (z, x); speed does not depend on them."""
    rng = np.random.default_rng(seed)

    def objects(k: int) -> np.ndarray:
        pt = 20 + rng.exponential(40.0, (n, k))
        eta, phi = rng.normal(0, 1.2, (n, k)), rng.uniform(-np.pi, np.pi, (n, k))
        p4 = np.stack(
            [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], -1
        )
        return p4.reshape(n, 4 * k).astype(np.float32)

    return torch.from_numpy(objects(6)), torch.from_numpy(objects(6))


def bench_training(
    preset: str,
    batch: int,
    threads: int,
    seconds: float,
    gp_interval: int,
    mass_weight: float,
    device: str = "cpu",
    graphs: bool = False,
    ema_decay: float | None = None,
) -> float:
    """Events per second of `Trainer.step` in one configuration."""
    if device == "cpu":
        torch.set_num_threads(threads)
    z, x = fake_pairs(50_000)
    config = TrainConfig(batch_size=batch, threads=threads, gp_interval=gp_interval,
                         ema_decay=ema_decay, device=device, graphs=graphs)
    trainer = Trainer(ModelConfig(), loss_config(preset, mass_weight=mass_weight), config)
    events = PairedEvents(z.numpy(), x.numpy())
    xs, zs = trainer.prepare(events, events)  # standardised, on the device
    order = torch.randperm(len(xs), device=trainer.device, generator=trainer.generator)
    n_batches = len(xs) // batch

    def run(steps: int) -> torch.Tensor:
        totals = torch.zeros(len(trainer.log_names), device=trainer.device)
        for b in range(steps):
            index = order[(b % n_batches) * batch : (b % n_batches + 1) * batch]
            totals += trainer.step(xs[index], zs[index])
        return totals

    def finished() -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)

    run(20)  # warm-up (and the captures)
    finished()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run(20)
        steps += 20
    finished()
    return steps * batch / (time.perf_counter() - started)


def bench_decoder(threads: int, chunk: int, seconds: float, device: str = "cpu") -> float:
    """Events per second of `TurboSim.simulate` on chunks of ``chunk`` events."""
    if device == "cpu":
        torch.set_num_threads(threads)
    z, x = fake_pairs(chunk)
    model = TurboSim(ModelConfig()).to(device)
    z, x = z.to(device), x.to(device)
    model.fit_standardisation(x, z)
    model.eval()

    def finished() -> None:
        if model.x_scaler.mean.device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        noise = torch.randn(chunk, model.decoder_noise_dim, device=device)
        model.simulate(z, noise)
        finished()
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model.simulate(z, noise)
            n += chunk
        finished()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--preset", default="turbosim")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gp-intervals", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--mass-weight", type=float, default=0.0)
    parser.add_argument("--ema-decay", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--decoder-chunk", type=int, default=65536)
    args = parser.parse_args()
    device = str(resolve_device(args.device))  # one line, exit 2, when CUDA is missing
    torch.set_flush_denormal(True)  # as the training loop does on the CPU
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average: {os.getloadavg()}")
    if device.startswith("cuda"):
        print(f"device {torch.cuda.get_device_name(device)}")
    print(f"preset {args.preset}: terms {loss_config(args.preset).active}, "
          f"mass weight {args.mass_weight}, moving average {args.ema_decay}")
    threads = args.threads if device == "cpu" else args.threads[:1]
    for batch in args.batch_sizes:
        for n_threads in threads:
            for interval in args.gp_intervals:
                settings = (args.preset, batch, n_threads, args.seconds, interval,
                            args.mass_weight, device)
                eager = bench_training(*settings, graphs=False, ema_decay=args.ema_decay)
                if device == "cpu":
                    print(f"train  batch {batch:5d}  threads {n_threads}  "
                          f"gp-interval {interval}: {eager:8,.0f} events/s")
                    continue
                captured = bench_training(*settings, graphs=True, ema_decay=args.ema_decay)
                print(f"train  batch {batch:5d}  gp-interval {interval}: eager {eager:9,.0f} "
                      f"events/s  captured {captured:9,.0f} events/s  ratio "
                      f"{captured / eager:5.1f}")
    for n_threads in threads:
        rate = bench_decoder(n_threads, args.decoder_chunk, args.seconds, device)
        chunk = args.decoder_chunk
        print(f"decoder simulate chunk {chunk} threads {n_threads}: {rate:12,.0f} events/s")
    print(f"load average after: {os.getloadavg()} (above 0: other jobs share these cores)")


if __name__ == "__main__":
    try:
        main()
    except TurbosimError as err:
        sys.exit(f"bench_train: error: {err}")
