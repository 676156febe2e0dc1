"""`make bench`: training images/s of the standard torchvision pipeline vs ours, side by side.

Standard: `torchvision.datasets.MNIST` + per-sample PIL `RandomRotation(7)`, `ToTensor`,
`Normalize` + `DataLoader(batch_size, shuffle=True, num_workers=2)`.
Ours: `lib.train.Batches` — the split resident on the device, a permutation per epoch,
rotation of whole batches with `affine_grid`/`grid_sample`, channels-last model.
Same model (the final block's), batch size, optimiser and number of steps; the two are run
alternately, `--repeats` times, and the ratio is the median of the per-pair ratios.

    python -m lib.bench [--steps 60] [--repeats 3] [--batch-size 128] [--device auto]
"""
import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from lib.data import MEAN, STD, ensure_mnist, load_mnist
from lib.models import Model_3
from lib.summary import macs_per_image
from lib.train import Batches, evaluate, pick_device


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def standard_loader(train, batch_size, device):
    tf = [transforms.RandomRotation(7)] if train else []
    tf += [transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
    ds = datasets.MNIST(ensure_mnist().parents[1], train=train, download=False,
                        transform=transforms.Compose(tf))
    return DataLoader(ds, batch_size=batch_size, shuffle=train, num_workers=2,
                      pin_memory=device.type == "cuda", persistent_workers=True)


def train_steps(model, batches, steps, device, channels_last):
    """Images/s over `steps` optimiser steps (after 5 warm-up steps), data loading included."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    done, it = 0, iter(batches)
    for i in range(steps + 5):
        if i == 5:
            sync(device)
            start, done = time.perf_counter(), 0
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches)
            x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.nll_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += len(y)
    sync(device)
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


def cpu_name():
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        return next(l.split(":", 1)[1].strip() for l in lines if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lib.bench")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats")

    standard = standard_loader(True, args.batch_size, device)
    x, y = load_mnist(train=True)
    ours = Batches(x, y, args.batch_size, device, shuffle=True, rotation=7.0)
    model_std = Model_3().to(device)                                   # as students run it
    model_ours = Model_3().to(device, memory_format=torch.channels_last)
    rates = {"standard": [], "ours": []}
    for r in range(args.repeats):  # alternate, so drift in machine load hits both alike
        rates["standard"].append(train_steps(model_std, standard, args.steps, device, False))
        rates["ours"].append(train_steps(model_ours, ours, args.steps, device, True))
        print(f"repeat {r + 1}: standard {rates['standard'][-1]:8.0f} img/s   "
              f"ours {rates['ours'][-1]:8.0f} img/s")
    ratios = [o / s for o, s in zip(rates["ours"], rates["standard"])]

    xt, yt = load_mnist(train=False)
    ev_std = eval_standard(model_std, standard_loader(False, 1000, device), device)
    ev_ours = eval_ours(model_ours, Batches(xt, yt, 1000, device), device)
    macs = macs_per_image(Model_3())
    peak = matmul_flops(device)
    train_flops = 3 * 2 * macs * statistics.median(rates["ours"])  # forward + backward ~ 3x forward
    print(f"train (median): standard {statistics.median(rates['standard']):.0f} img/s, "
          f"ours {statistics.median(rates['ours']):.0f} img/s "
          f"-> one 60,000-image epoch in {60_000 / statistics.median(rates['ours']):.1f} s")
    print(f"eval: standard {ev_std:.0f} img/s, ours {ev_ours:.0f} img/s")
    print(f"model: Model_3, {macs:,} MACs per image; training at "
          f"{train_flops / 1e9:.2f} GFLOP/s = {100 * train_flops / peak:.1f} % of this device's "
          f"measured fp32 matmul peak ({peak / 1e9:.0f} GFLOP/s)")
    print(f"ratios per repeat: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
