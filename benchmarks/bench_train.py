"""Training throughput (events/s) of the full eight-term objective, and decoder inference speed.

Usage::

    python benchmarks/bench_train.py [--preset turbosim] [--batch-sizes 100 1000]
                                     [--threads 1 2] [--gp-intervals 1 4]
                                     [--mass-weight 0] [--seconds 10]

Measures `turbosim_hep.training.Trainer.step` (one critic update with gradient penalty and
one encoder/decoder update per batch, index batching from device-resident tensors, as
in a real epoch) with the reference architecture, for each lazy-penalty interval (1:
the penalty at every critic update, as the reference), and `TurboSim.simulate` under
``torch.inference_mode``. Events are synthetic tt-bar-like pairs; the speed does not
depend on their values. The machine load is printed: the cores may be shared.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from turbosim_hep.model.presets import loss_config
from turbosim_hep.model.turbosim import ModelConfig
from turbosim_hep.training import TrainConfig, Trainer


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
    preset: str, batch: int, threads: int, seconds: float, gp_interval: int, mass_weight: float
) -> float:
    torch.set_num_threads(threads)
    z, x = fake_pairs(50_000)
    config = TrainConfig(batch_size=batch, threads=threads, gp_interval=gp_interval)
    trainer = Trainer(ModelConfig(), loss_config(preset, mass_weight=mass_weight), config)
    trainer.model.fit_standardisation(x, z)
    scaler = trainer.model.x_scaler
    trainer.objective.fit_mass_scale(x, scaler.mean, scaler.std)
    xs, zs = trainer.model.x_scaler(x), trainer.model.z_scaler(z)
    order = torch.randperm(len(xs), generator=trainer.generator)
    n_batches = len(xs) // batch

    def run(steps: int) -> torch.Tensor:
        totals = torch.zeros(len(trainer.log_names))
        for b in range(steps):
            index = order[(b % n_batches) * batch : (b % n_batches + 1) * batch]
            totals += trainer.step(xs[index], zs[index])
        return totals

    run(20)  # warm-up
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run(20)
        steps += 20
    return steps * batch / (time.perf_counter() - started)


def bench_decoder(threads: int, chunk: int, seconds: float) -> float:
    torch.set_num_threads(threads)
    z, x = fake_pairs(chunk)
    model = Trainer(ModelConfig(), loss_config(), TrainConfig()).model
    model.fit_standardisation(x, z)
    model.eval()
    with torch.inference_mode():
        noise = torch.randn(chunk, model.decoder_noise_dim)
        model.simulate(z, noise)
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model.simulate(z, noise)
            n += chunk
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="turbosim")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gp-intervals", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--mass-weight", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--decoder-chunk", type=int, default=65536)
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # as the training loop does on the CPU
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average: {os.getloadavg()}")
    print(f"preset {args.preset}: terms {loss_config(args.preset).active}, "
          f"mass weight {args.mass_weight}")
    for batch in args.batch_sizes:
        for threads in args.threads:
            for interval in args.gp_intervals:
                rate = bench_training(
                    args.preset, batch, threads, args.seconds, interval, args.mass_weight
                )
                print(f"train  batch {batch:5d}  threads {threads}  gp-interval {interval}: "
                      f"{rate:8,.0f} events/s")
    for threads in args.threads:
        rate = bench_decoder(threads, args.decoder_chunk, args.seconds)
        chunk = args.decoder_chunk
        print(f"decoder simulate chunk {chunk} threads {threads}: {rate:12,.0f} events/s")
    print(f"load average after: {os.getloadavg()} (above 0: other jobs share these cores)")


if __name__ == "__main__":
    main()
