r"""Speed and memory of the fast simulation (issue: fast simulation and unfolding; issue 16).

Prints:

1. the decoder forward pass alone (``TurboSim.simulate`` on in-memory tensors of the
   device), as stored and with the fused MLPs `turbosim-hep simulate` uses;
2. each stage of ``simulate`` on its own over the same chunks of a project ROOT file
   of parton events: read and prepare (reading, NaN checks, noise), infer (the model,
   with the host-device copies on CUDA), write (ROOT columns, compression), then the
   three together as ``simulate`` runs them, in events/s, and the end-to-end rate as a
   fraction of the slowest stage's (the goal is 0.9 or more);
3. ``turbosim-hep simulate`` end to end on the same file (a fresh process), events/s;
4. its peak resident memory on a bigger input;
5. the speed-up over generating detector-level events with the project's Pythia 8 +
   detector chain (``turbosim-hep generate --level detector``);
6. with ``--oversample K``: ``simulate --oversample K`` against K = 1 on the same input
   (each input event read and prepared once, simulated K times), events written per
   second and their ratio, with ``--acceptance off`` or the modes of
   ``--oversample-acceptance`` (``sample`` and ``weight`` need a ``--model`` that has an
   acceptance: ``sample`` runs and writes only the kept replicas);
7. with ``--compressions``: ``simulate --compression`` of each, end to end, its events/s
   and the size of its output.

The model has the reference architecture with its standardisation fitted to synthetic
events (speed does not depend on the trained weights); ``--heads demo`` gives it the
demo's model settings instead (`turbosim_hep.demo.DemoSettings.model`: the radiation
decoder head, the decay-chain encoder head), to compare the two designs on the same
machine; pass ``--model`` to use a trained one. Inputs are synthetic tt-bar partons
(``tests/_ttbar.py``) written in the project's format. Run from the repository root:

    python benchmarks/bench_simulate.py                      # 1M end to end, 5M for RSS
    python benchmarks/bench_simulate.py --rss-events 0 --pythia-events 0   # quick
    python benchmarks/bench_simulate.py --rss-events 0 --pythia-events 0 --oversample 8
    python benchmarks/bench_simulate.py --rss-events 0 --pythia-events 0 --heads demo
    python benchmarks/bench_simulate.py --rss-events 0 --pythia-events 0 --stage-repeat 0 \
        --model demo-output/model.pt --oversample 8 --oversample-acceptance off sample
    python benchmarks/bench_simulate.py --device cuda --rss-events 0 --pythia-events 0
    python benchmarks/bench_simulate.py --rss-events 0 --pythia-events 0 --stage-repeat 0 \
        --compressions zstd:1 lz4:1 zlib:1 lzma:1
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic tt-bar generator of the tests

from turbosim_hep.demo import DemoSettings  # noqa: E402
from turbosim_hep.device import flush_denormals, resolve_device  # noqa: E402
from turbosim_hep.inference import BATCH_EVENTS, fuse_for_inference  # noqa: E402
from turbosim_hep.io.writer import (  # noqa: E402
    EventWriter,
    event_columns,
    parse_compression,
    parton_columns,
)
from turbosim_hep.model import TurboSim, load_model, save_checkpoint  # noqa: E402
from turbosim_hep.pipeline.job import Job  # noqa: E402
from turbosim_hep.pipeline.run import inference_threads  # noqa: E402
from turbosim_hep.pipeline.stages import file_stages, process_file, torch_threads  # noqa: E402

from _ttbar import ttbar_partons  # noqa: E402

CHUNK = 500_000
#: The command line, run by this interpreter (the package need not be installed).
TURBOSIM_HEP = (sys.executable, "-m", "turbosim_hep")


#: Model settings of ``--heads``: the reference architecture, or the demo's.
HEADS = ("reference", "demo")


def make_model(path: Path, heads: str = "reference") -> None:
    z = torch.from_numpy(ttbar_partons(100_000, seed=1))
    x = z.clone()  # any X with the right scale; only the standardisation uses it
    config = dict(DemoSettings().model) if heads == "demo" else None
    save_checkpoint(path, TurboSim.from_config(config, x=x, z=z))


def write_partons(path: Path, n: int) -> None:
    """A project ROOT file of n parton events, written in chunks (bounded memory)."""
    with EventWriter(path, force=True) as writer:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            z = ttbar_partons(stop - start, seed=start)
            writer.write(event_columns(np.arange(start, stop)) | parton_columns(z))


def bench_forward(
    model_path: Path, n: int, batch_size: int, threads: int, device: torch.device,
    repeat: int = 5,
) -> None:
    """Best of ``repeat`` passes over n events on the device; the two variants alternate,
    so that a change of load on a shared machine hits both alike."""
    if device.type == "cpu":
        torch.set_num_threads(threads)
    model = load_model(model_path, device=device)
    z = torch.from_numpy(ttbar_partons(n, seed=2)).to(device)
    noise = torch.randn(n, model.decoder_noise_dim, device=device)
    candidates = {"as stored": model, "fused (used by simulate)": fuse_for_inference(model)}
    best = dict.fromkeys(candidates, 0.0)
    with torch.inference_mode(), flush_denormals():
        for _ in range(repeat):
            for label, candidate in candidates.items():
                synchronize(device)
                start = time.perf_counter()
                for lo in range(0, n, batch_size):
                    candidate.simulate(z[lo : lo + batch_size], noise[lo : lo + batch_size])
                synchronize(device)
                best[label] = max(best[label], n / (time.perf_counter() - start))
    where = f"{threads} thread(s)" if device.type == "cpu" else str(device)
    for label, rate in best.items():
        print(f"decoder forward, {label:26s}, {where}: {rate:12,.0f} events/s  "
              f"(batch {batch_size}, {n:,} events, best of {repeat})")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage_job(model_path: Path, device: torch.device, batch_size: int | None) -> Job:
    """The job `simulate_files` runs on one input with this model and device."""
    return Job(
        direction="simulate", model=str(model_path.resolve()), seed=0, device=str(device),
        batch_size=batch_size or BATCH_EVENTS[device.type],
        threads=inference_threads(1) if device.type == "cpu" else 0,
    )


#: The stages measured alone, then the three together.
STAGES = ("read and prepare", "infer", "write")


def stage_round(job: Job, source: Path, output: Path, compression: str) -> dict[str, float]:
    """Events/s of each stage alone over the same chunks, then of `process_file`."""
    compressed = parse_compression(compression)
    with EventWriter(output, force=True, compression=compressed) as writer:
        stages = file_stages(str(source), job, writer)
        start = time.perf_counter()
        chunks = list(stages.chunks)
        seconds = {"read and prepare": time.perf_counter() - start}
        with torch_threads(job.threads):
            start = time.perf_counter()
            for chunk in chunks:
                stages.infer(chunk)
            seconds["infer"] = time.perf_counter() - start
        start = time.perf_counter()
        for chunk in chunks:
            stages.write(chunk)
    seconds["write"] = time.perf_counter() - start  # the file closed: every basket written
    events = sum(len(chunk) for chunk in chunks)
    rates = {stage: events / seconds[stage] for stage in STAGES}
    del chunks
    with EventWriter(output, force=True, compression=compressed) as writer:
        summary = process_file(str(source), job, writer)
    rates["end to end"] = summary.written / summary.seconds
    return rates


def bench_stages(
    model_path: Path, source: Path, workdir: Path, device: torch.device,
    batch_size: int | None, compression: str, repeat: int,
) -> None:
    """Each stage of ``simulate`` alone over the same chunks, then the three together.

    Every round reads all chunks into memory (read and prepare), runs the model on them
    (infer), writes them (write), then runs the file through `process_file` as
    ``simulate`` does (end to end); the best of ``repeat`` rounds is kept for each, the
    rounds alternating the four so that a change of load hits them alike.
    """
    job = stage_job(model_path, device, batch_size)
    rounds = [stage_round(job, source, workdir / "stages.root", compression)
              for _ in range(repeat)]
    (workdir / "stages.root").unlink(missing_ok=True)
    best = {stage: max(r[stage] for r in rounds) for stage in (*STAGES, "end to end")}
    slowest = min(STAGES, key=best.get)
    in_turn = 1 / sum(1 / best[stage] for stage in STAGES)
    for stage, rate in best.items():
        print(f"stage {stage:17s} ({device.type}, {compression}): {rate:12,.0f} events/s  "
              f"(best of {repeat})")
    print(f"end to end / slowest stage ({slowest}): {best['end to end'] / best[slowest]:.2f} "
          f"(goal 0.9); the three stages in turn would give {in_turn:,.0f} events/s, "
          f"end to end is {best['end to end'] / in_turn:.2f} times that")


def run_measured(command: list[str]) -> tuple[float, float, int, str]:
    """Wall time (s), CPU time (s), peak RSS (MB) and stdout of a command in a fresh process."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "sys.stderr.write(p.stderr)\n"
        "print(p.stdout)\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print('WALL', dt, 'CPU', u.ru_utime + u.ru_stime, 'RSS', u.ru_maxrss)\n"
        "sys.exit(p.returncode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    wall, cpu, rss = re.search(r"WALL (\S+) CPU (\S+) RSS (\d+)", done.stdout).groups()
    return float(wall), float(cpu), int(rss) // 1024, done.stdout


def parton_file(workdir: Path, n: int) -> Path:
    """The n-event input of the runs, written once per work directory."""
    source = workdir / f"partons_{n}.root"
    if not source.exists():
        start = time.perf_counter()
        write_partons(source, n)
        print(f"  (wrote {n:,}-event input in {time.perf_counter() - start:.0f} s)")
    return source


def bench_simulate(
    model_path: Path, workdir: Path, n: int, label: str, extra: tuple[str, ...] = (),
    device: str = "cpu",
) -> tuple[float, int]:
    """``simulate`` end to end in a fresh process: events/s inside the command, and the
    size of its output in bytes."""
    source = parton_file(workdir, n)
    output = workdir / f"simulated_{n}.root"
    command = [*TURBOSIM_HEP, "simulate", str(model_path), str(source), "-o", str(output),
               "--force", "--quiet", "--device", device, *extra]
    wall, cpu, rss, stdout = run_measured(command)
    internal = float(re.search(r"\(([\d,]+) events/s\)", stdout).group(1).replace(",", ""))
    written = int(re.search(r": (\d+) events in ", stdout).group(1))
    size = output.stat().st_size
    print(f"simulate end to end, {label}: {internal:12,.0f} events/s inside the command, "
          f"{written / wall:,.0f} events/s including start-up ({wall:.1f} s), peak RSS {rss:,} MB, "
          f"CPU time {cpu:.1f} s = {written / cpu:,.0f} events written per CPU-second "
          f"(idle {os.cpu_count()}-core bound: {os.cpu_count() * written / cpu:,.0f} events/s)")
    output.unlink(missing_ok=True)
    return internal, size


def bench_oversample(
    model_path: Path, workdir: Path, n: int, k: int, modes: list[str],
    run_options: tuple[str, ...], device: str,
) -> None:
    """``simulate --oversample K`` against K = 1 in each ``--acceptance`` mode: events
    written per second inside the command, and their ratio."""
    for mode in modes:
        label = f"{n:,} events, --acceptance {mode}"
        options = (*run_options, "--acceptance", mode)
        single, _ = bench_simulate(model_path, workdir, n, f"{label}, K = 1", options, device)
        many, _ = bench_simulate(model_path, workdir, n, f"{label}, K = {k}",
                                 (*options, "--oversample", str(k)), device)
        print(f"oversampling, --acceptance {mode}: K = {k} writes {many / single:.2f} times "
              "the events per second of K = 1")


def bench_compressions(
    model_path: Path, workdir: Path, n: int, compressions: list[str], device: str
) -> None:
    """``simulate --compression`` of each choice: events/s and output size, in a table."""
    rows = []
    for compression in compressions:
        rate, size = bench_simulate(model_path, workdir, n, f"{n:,} events, {compression}",
                                    ("--compression", compression), device)
        rows.append((compression, rate, size))
    print(f"| --compression | events/s ({n:,} events, {device}) | output size | bytes/event |")
    print("|---|---|---|---|")
    for compression, rate, size in rows:
        print(f"| {compression} | {rate:,.0f} | {size / 1e6:,.1f} MB | {size / n:,.0f} |")


def bench_pythia(workdir: Path, n: int) -> float:
    output = workdir / "pythia.root"
    command = [*TURBOSIM_HEP, "generate", "-n", str(n), "--level", "detector", "-o", str(output),
               "--force", "--no-progress", "--seed", "3"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    rate = n / (time.perf_counter() - start)
    print(f"Pythia 8 + detector chain (generate --level detector, 1 job): {rate:10,.1f} events/s "
          f"({n} events, including start-up)")
    output.unlink(missing_ok=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path,
                        help="trained model (default: an untrained one of --heads)")
    parser.add_argument("--heads", choices=HEADS, default="reference",
                        help="settings of the untrained model: the reference architecture "
                             "(x_head and z_head 'physical') or the demo's (radiation and "
                             "decay-chain heads)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--events", type=int, default=1_000_000, help="end-to-end input size")
    parser.add_argument("--rss-events", type=int, default=5_000_000,
                        help="input size of the RSS run (0: skip)")
    parser.add_argument("--pythia-events", type=int, default=200,
                        help="events for the Pythia chain (0: skip)")
    parser.add_argument("--forward-events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="events per forward pass (default: simulate's for the device)")
    parser.add_argument("--stage-repeat", type=int, default=3,
                        help="rounds of the per-stage measurement (0: skip)")
    parser.add_argument("--compression", default="zstd:1",
                        help="compression of the per-stage measurement (default zstd:1)")
    parser.add_argument("--compressions", nargs="*", default=[], metavar="ALGO[:LEVEL]",
                        help="also compare simulate --compression of each, end to end")
    parser.add_argument("--oversample", type=int, default=0, metavar="K",
                        help="also compare simulate --oversample K with K = 1 (0: skip)")
    parser.add_argument("--oversample-acceptance", nargs="+", default=["off"],
                        choices=["off", "sample", "weight"], metavar="MODE",
                        help="--acceptance modes of the oversampling comparison (default "
                             "off; sample and weight need a --model with an acceptance)")
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the inputs between runs")
    args = parser.parse_args()
    device = resolve_device(args.device)
    batch_size = args.batch_size or BATCH_EVENTS[device.type]
    run_options = ("--batch-size", str(batch_size), "--compression", args.compression)

    print(f"model: {args.model or f'untrained, --heads {args.heads}'}")
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}"
          f"{f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda' else ''}; "
          f"load average {os.getloadavg()[0]:.1f} at start (a shared machine slows every figure)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model_path = args.model or workdir / f"{args.heads}_model.pt"
        if args.model is None:
            make_model(model_path, args.heads)
        threads = sorted({1, os.cpu_count() or 1}) if device.type == "cpu" else [1]
        for count in threads:
            bench_forward(model_path, args.forward_events, batch_size, count, device)
        source = parton_file(workdir, args.events)
        if args.stage_repeat:
            bench_stages(model_path, source, workdir, device, batch_size, args.compression,
                         args.stage_repeat)
        label = f"{args.events:,} events"
        rate, _ = bench_simulate(model_path, workdir, args.events, label, run_options,
                                 args.device)
        if args.rss_events:
            bench_simulate(model_path, workdir, args.rss_events, f"{args.rss_events:,} events",
                           run_options, args.device)
        if args.oversample:
            bench_oversample(model_path, workdir, args.events, args.oversample,
                             args.oversample_acceptance, run_options, args.device)
        if args.compressions:
            bench_compressions(model_path, workdir, args.events, args.compressions, args.device)
        if args.pythia_events:
            pythia = bench_pythia(workdir, args.pythia_events)
            print(f"speed-up of simulate over the Pythia 8 + detector chain: {rate / pythia:,.0f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
