"""`make bench`: training images/s of the standard torchvision pipeline vs ours, side by side.

Standard: `torchvision.datasets.MNIST` + per-sample PIL `RandomRotation(7)`, `ToTensor`,
`Normalize` + `DataLoader(batch_size, shuffle=True, num_workers=2)`.
Ours: `lib.train.Batches` — the split resident on the device, a permutation per epoch,
rotation of whole batches (`rotation_grid` + `grid_sample`), channels-last model — run eager and,
where `torch.compile` works here (`lib.train.compile_support`), compiled too.
Same model and recipe (block 3's: `lib.train.recipe` with the defaults of notebooks/03_final.py,
its optimisers, one-cycle schedule and moving average), batch size and number of steps; the pipelines are run
alternately, `--repeats` times. `ratio` is ours, as the blocks run it by default (compiled on
the CPU, eager on a GPU: `lib.train.resolve_compile`), over standard: the median of the
per-repeat ratios. Compiling happens in the warm-up steps and is timed separately.

    python -m lib.bench [--steps 60] [--repeats 3] [--batch-size 128] [--device auto]
    python -m lib.bench --study-workers [--epochs 3]    # make bench ARGS=--study-workers

`--study-workers` measures the studies runner instead: the same small study (block 3, seeds
1-4, a few epochs, full data) run with 1 worker (all cores) and with 2 workers (half the cores
each), one after the other in temporary folders; it prints runs per hour for each, measured
and extrapolated to 15-epoch runs, and ends with `workers ratio: X` (2 workers over 1).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from lib.data import MEAN, STD, ensure_mnist, load_mnist
from lib.models import MODELS
from lib.paths import REPO
from lib.run import cpu_kind, cpu_name
from lib.summary import macs_per_image
from lib.train import (Batches, clean_retry, compile_in_place, compile_support, evaluate, pick_device, recipe,
                       resolve_compile)

WARMUP = 5  # steps before timing starts (compiling happens in the first)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def standard_loader(train, batch_size, device):
    tf = [transforms.RandomRotation(7)] if train else []
    tf += [transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
    ds = datasets.MNIST(ensure_mnist().parents[1], train=train, download=False,
                        transform=transforms.Compose(tf))
    return DataLoader(ds, batch_size=batch_size, shuffle=train, num_workers=2,
                      pin_memory=device.type == "cuda", persistent_workers=True)


def block_3():
    """The parameters block 3 runs with: the defaults of notebooks/03_final.py."""
    import jupytext
    from lib.pipeline import notebook_parameters

    return notebook_parameters(jupytext.read(REPO / "notebooks/03_final.py"))


class Trainer:
    """Block 3's model and recipe (`block_3`, `lib.train.recipe`) on a batch source; `rate(steps)`
    trains and returns images/s, data loading included."""

    def __init__(self, batches, device, channels_last, compile):
        self.batches, self.device, self.channels_last = batches, device, channels_last
        self.model, self.optimizer, self.scheduler, self.ema = recipe(block_3(), len(batches), device)
        if not channels_last:  # as students run it
            self.model.to(memory_format=torch.contiguous_format)
        if compile:
            compile_in_place(self.model)
        self.it = iter(batches)
        start = time.perf_counter()
        clean_retry(lambda: self.steps(WARMUP))  # a broken compile cache: cleaned, compiled again
        self.warmup_seconds = time.perf_counter() - start

    def steps(self, n):
        model, device = self.model, self.device
        model.train()
        done = 0
        for _ in range(n):
            try:
                x, y = next(self.it)
            except StopIteration:
                self.it = iter(self.batches)
                x, y = next(self.it)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = F.nll_loss(model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(model)
            done += len(y)
        sync(device)
        return done

    def rate(self, steps):
        start = time.perf_counter()
        done = self.steps(steps)
        return done / (time.perf_counter() - start)


@torch.no_grad()
def eval_standard(model, loader, device):
    model.eval()
    start, n = time.perf_counter(), 0
    for x, y in loader:
        model(x.to(device)).argmax(1)
        n += len(y)
    sync(device)
    return n / (time.perf_counter() - start)


def eval_ours(model, batches, device):
    clean_retry(lambda: evaluate(model, batches))  # warm-up (compiles the eval-mode graph, if compiled)
    sync(device)
    start = time.perf_counter()
    evaluate(model, batches)
    sync(device)
    return len(batches.y) / (time.perf_counter() - start)


def matmul_flops(device, n=2048, reps=10):
    """Practical peak FLOP/s of the device: a large fp32 matmul, measured here."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


WORKERS_STUDY = """notebook = "notebooks/03_final.py"
seeds = [1, 2, 3, 4]
[defaults]
epochs = {epochs}
[variants]
Model_3 = {{}}
"""


def study_workers(epochs, jobs_list=(1, 2)):
    """Runs per hour of `python -m lib.study run` with N workers of cores/N threads each."""
    from lib.study import read_results

    cores = os.cpu_count() or 1
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    per_hour = {}
    for jobs in jobs_list:
        with tempfile.TemporaryDirectory() as tmp:
            toml = Path(tmp) / "workers.toml"
            toml.write_text(WORKERS_STUDY.format(epochs=epochs))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lib.study", "run", str(toml), "--jobs", str(jobs)],
                           check=True, env=env, capture_output=True)
            wall = time.perf_counter() - start
            rows = list(read_results(toml.with_suffix(".jsonl")).values())
        epoch = statistics.median(s for r in rows for s in r["epoch_seconds"][1:])  # 1: compiling
        overhead = statistics.median(r["seconds"] - sum(r["epoch_seconds"][1:]) - epoch for r in rows)
        per_hour[jobs] = 3600 * len(rows) / wall
        full = 3600 * jobs / (overhead + 15 * epoch)
        print(f"{jobs} worker(s) x {max(1, cores // jobs)} thread(s): {len(rows)} runs of {epochs} epochs "
              f"in {wall:.0f} s = {per_hour[jobs]:.1f} runs/h; an epoch {epoch:.1f} s, "
              f"{overhead:.0f} s a run besides its epochs -> about {full:.1f} runs/h of 15 epochs", flush=True)
    print(f"workers ratio: {per_hour[jobs_list[-1]] / per_hour[jobs_list[0]]:.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lib.bench")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--study-workers", action="store_true", help="measure the studies runner instead")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run with --study-workers")
    args = ap.parse_args(argv)
    if args.study_workers:
        print(f"studies runner on {cpu_name()} ({cpu_kind()}), {os.cpu_count()} cores, torch {torch.__version__}")
        return study_workers(args.epochs)
    device = pick_device(args.device)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {cpu_kind()}"
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats")

    can_compile, why = compile_support(device)
    ours_name = "ours, compiled" if resolve_compile("auto", device) else "ours, eager"
    x, y = load_mnist(train=True)
    ours = Batches(x, y, args.batch_size, device, shuffle=True, rotation=7.0)
    trainers = {  # the standard one as students run it: NCHW, eager
        "standard": Trainer(standard_loader(True, args.batch_size, device), device, False, False),
        "ours, eager": Trainer(ours, device, True, False),
    }
    if can_compile:
        trainers["ours, compiled"] = Trainer(ours, device, True, True)
        print(f"ours, compiled: warm-up of {WARMUP} steps incl. compiling took "
              f"{trainers['ours, compiled'].warmup_seconds:.1f} s "
              f"(eager: {trainers['ours, eager'].warmup_seconds:.1f} s)")
    else:
        print(f"ours, compiled: not run ({why})")
    print(f"ours = {ours_name}, as the blocks run it here")
    rates = {name: [] for name in trainers}
    for r in range(args.repeats):  # alternate, so drift in machine load hits all alike
        for name, trainer in trainers.items():
            rates[name].append(trainer.rate(args.steps))
        print(f"repeat {r + 1}: " + "   ".join(f"{n} {v[-1]:6.0f} img/s" for n, v in rates.items()))
    ratios = [o / s for o, s in zip(rates[ours_name], rates["standard"])]
    median = {name: statistics.median(v) for name, v in rates.items()}

    xt, yt = load_mnist(train=False)
    ev_std = eval_standard(trainers["standard"].model, standard_loader(False, 1000, device), device)
    ev_ours = eval_ours(trainers[ours_name].model, Batches(xt, yt, 1000, device), device)
    model_name = block_3()["model_name"]
    macs = macs_per_image(MODELS[model_name]())
    peak = matmul_flops(device)
    train_flops = 3 * 2 * macs * median[ours_name]  # forward + backward ~ 3x the forward's MACs
    print("train (median): " + ", ".join(f"{n} {v:.0f} img/s" for n, v in median.items())
          + f" -> one 60,000-image epoch of ours in {60_000 / median[ours_name]:.1f} s "
          f"(+ {10_000 / ev_ours:.1f} s to test 10,000)")
    print(f"eval: standard {ev_std:.0f} img/s, ours {ev_ours:.0f} img/s")
    print(f"model: {model_name}, {macs:,} MACs per image; ours trains at "
          f"{train_flops / 1e9:.2f} GFLOP/s = {100 * train_flops / peak:.1f} % of this device's "
          f"measured fp32 matmul peak ({peak / 1e9:.0f} GFLOP/s)")
    print(f"ours, eager / standard: {median['ours, eager'] / median['standard']:.2f}"
          + (f"; ours, compiled / ours, eager: "
             f"{median['ours, compiled'] / median['ours, eager']:.2f}" if can_compile else ""))
    print(f"ratios per repeat (ours / standard): {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
