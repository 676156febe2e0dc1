"""Training engine: device-resident data, batched augmentation, train/test loops.

The whole split lives on the training device as one float tensor in [0, 1]. Each epoch
draws a random permutation on that device; rotation (and a shift) is applied to whole batches,
one angle per image (`rotation_grid` + `grid_sample`); normalisation follows.
No DataLoader, no PIL, no per-sample Python in the hot loop. On the CPU the model is compiled
with `torch.compile` (fused BatchNorm/ReLU kernels; `make bench` prints what it gains for
the final model on the machine it runs on).
"""
import functools
import logging
import math
import os
import random
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from lib.data import MEAN, STD, load_mnist
from lib.paths import REPO

log = logging.getLogger(__name__)


# --- reproducibility and device ---------------------------------------------------------
def seed_everything(seed):
    """Seed python, numpy and torch (all devices). Same seed on CPU -> identical metrics."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def available_devices():
    names = ["cpu"]
    if torch.backends.mps.is_available():
        names.append("mps")
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return names


def pick_device(name="auto"):
    """"auto" -> cuda, then mps, then cpu. An explicit device must be available here."""
    if name == "auto":
        name = next(d for d in ("cuda", "mps", "cpu") if d in available_devices())
    if name not in available_devices():
        raise ValueError(f"device={name!r} is not available here; allowed: "
                         f"'auto', {', '.join(repr(d) for d in available_devices())}")
    return torch.device(name)


def compile_support(device):
    """(True, "") if `torch.compile` can run on `device` here, else (False, the reason)."""
    if device.type == "cpu":
        compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
        if not any(c and shutil.which(c) for c in compilers):
            return False, "no C++ compiler found (set CXX or install g++)"
        why = cpu_compile_self_check()
        return (False, why) if why else (True, "")
    if device.type == "cuda":
        import importlib.util  # a GPU Triton cannot compile for goes eager in `CompileGuard`
        return (True, "") if importlib.util.find_spec("triton") else (False, "Triton is not installed")
    return False, f"not used on {device.type}"


@functools.cache
def cpu_compile_self_check():
    """"" if compiled CPU code trains a small conv net as eager code does, else what went wrong.

    Inductor's generated C++ follows ATEN_CPU_CAPABILITY; forcing it (`default`, `avx2`) on a
    machine whose compiler or headers disagree made the C++ fail to build, or compute NaN and
    out-of-range indices, with torch 2.14.1 on an AVX-512 AMD EPYC. One forward and backward
    pass here, once per process (seconds; cached on disk by torch), keeps that out of a run.
    What inductor warns meanwhile (a forced ISA it does not take) goes to the log, once.
    """
    def loss_and_grads(model, x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return [loss.detach()] + [p.grad for p in model.parameters()]

    def probe():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            make = lambda: torch.nn.Sequential(
                torch.nn.Conv2d(1, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(36, 10))
            eager, compiled = make(), make()
            compiled.load_state_dict(eager.state_dict())
            compile_in_place(compiled)
            x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
            return loss_and_grads(eager, x, y), loss_and_grads(compiled, x, y)

    said = []
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            want, got = clean_retry(probe, log.info)
    except Exception as e:  # a C++ build error, an index out of range, ...
        return f"torch.compile failed a self-check on this CPU ({type(e).__name__})"
    finally:
        for message in {str(w.message) for w in said}:
            # inductor warns again at every compile: once in the log, never in a notebook
            log.info("torch.compile self-check: %s", message)
            warnings.filterwarnings("ignore", message=re.escape(message))
    if not all(torch.allclose(w, g, atol=1e-4) for w, g in zip(want, got)):
        return "torch.compile's CPU code disagreed with eager in a self-check on this CPU"
    return ""


def resolve_compile(setting, device):
    """The `torch_compile` parameter: True insists; False never (and nothing is probed); "auto"
    compiles on the CPU (where it can), where it pays (`make bench` measures it), not on a GPU:
    there these small models' steps are bound by kernel launches, and compiled ones measured
    slower than eager (`make bench` on an H200)."""
    if setting is False:
        return False
    ok, why = compile_support(device)
    if setting is True and not ok:
        raise ValueError(f"torch_compile=True is not possible on {device}: {why}; "
                         "allowed here: 'auto', False")
    return ok and device.type == "cpu" if setting == "auto" else bool(setting)


def compile_cache():
    """Where inductor keeps the code it builds: TORCHINDUCTOR_CACHE_DIR if set, else the
    project's build/torchinductor (set here, so that notebook kernels, study workers and the
    bench share it, `make clean` clears it and two checkouts never share a broken file)."""
    return Path(os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(REPO / "build" / "torchinductor")))


def compile_in_place(*models):
    """`torch.compile` each model in place (its state_dict keys stay the same)."""
    compile_cache()
    # inductor on a CPU-only machine warns "No CUDA runtime is found" on every run: noise
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    for model in models:
        model.compile()


def broken_libraries(folder):
    """The shared libraries under `folder` that are cut short (0 bytes included): a build
    stopped midway leaves one, and inductor loads it as if built ("file too short")."""
    broken = []
    for path in Path(folder).rglob("*.so"):
        try:
            data = path.read_bytes()
        except OSError:  # removed meanwhile (another process recovering)
            continue
        if elf_size(data) is None or elf_size(data) > len(data):
            broken.append(path)
    return broken


def elf_size(data):
    """The bytes a 64-bit little-endian ELF file's headers say it has: the end of its
    section table, of its last section and of its last segment; None if it is not one."""
    if len(data) < 64 or data[:6] != b"\x7fELF\x02\x01":
        return None
    number = lambda at, size: int.from_bytes(data[at:at + size], "little")
    phoff, shoff, phsize, phnum, shsize, shnum = (number(32, 8), number(40, 8), number(54, 2),
                                                  number(56, 2), number(58, 2), number(60, 2))
    end = max(phoff + phsize * phnum, shoff + shsize * shnum)
    if end > len(data):
        return end
    for i in range(phnum):  # segments: p_offset, p_filesz
        at = phoff + i * phsize
        end = max(end, number(at + 8, 8) + number(at + 32, 8))
    for i in range(shnum):  # sections but those with no bytes in the file (SHT_NOBITS, 8)
        at = shoff + i * shsize
        if number(at + 4, 4) != 8:
            end = max(end, number(at + 24, 8) + number(at + 32, 8))
    return end


EAGER_SINCE = {}  # "why": set once a failing compile made this process run eager


def compiled_steps_fell_back():
    """Why this process stopped compiling ("" if it did not): a run records it ran eager."""
    return EAGER_SINCE.get("why", "")


def what_failed(error):
    """One line: the error's type and the line of its message that names an error (dynamo
    wraps the compiler's own: "BackendCompilerFailed: ... ImportError: x.so: file too short").
    A long line keeps its start and its end, which says what went wrong (a path between)."""
    line = ([line for line in str(error).splitlines() if "Error" in line] or [str(error)])[0]
    return f"{type(error).__name__}: {line if len(line) <= 160 else line[:50] + ' … ' + line[-107:]}"


def clean_retry(step, log=print):
    """`step()`; if it raises, the compile cache's broken libraries are removed, torch's
    compiled code forgotten (`torch.compiler.reset`) and `step()` tried once more."""
    try:
        return step()
    except Exception as e:
        first = e
    removed = broken_libraries(compile_cache())
    for path in removed:
        path.unlink(missing_ok=True)
    torch.compiler.reset()
    log(f"torch.compile: a compiled step failed ({what_failed(first)}); "
        f"removed {len(removed)} broken librar{'y' if len(removed) == 1 else 'ies'} from the "
        f"compile cache ({compile_cache()}); compiling again")
    return step()


class CompileGuard:
    """Runs a compiled step (forward, or forward and backward: inductor builds the backward at
    its first use) through `clean_retry`; if it fails again, the rest of the process runs eager
    (`torch.compiler.set_stance`) and the step is tried eagerly: a line in the log each time,
    never a lost run. A failure that eager code repeats is not the compiler's, and is raised."""

    def __init__(self, log=print):
        self.log = log

    def __call__(self, step):
        if compiled_steps_fell_back():
            return step()
        try:
            return clean_retry(step, self.log)
        except Exception as e:
            EAGER_SINCE["why"] = f"a compiled step failed twice ({what_failed(e)})"
        torch.compiler.set_stance("force_eager")
        self.log(f"torch.compile: off for the rest of this run: {EAGER_SINCE['why']}")
        return step()


# --- data on the device -----------------------------------------------------------------
def rotation_grid(angles, height, width, shifts=None):
    """The sampling grid of a rotation by `angles` (degrees, one per image) about the centre:
    what `F.affine_grid` builds from rotation matrices (align_corners=False), as two
    broadcast products instead of a batched matmul (several times faster on a CPU). With
    `shifts` (N, 2; pixels), each rotated image then moves right and down by its own (dx, dy)."""
    rad = angles.view(-1, 1, 1) * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # pixel centres in [-1, 1]; grid_sample reads output pixel (x, y) from the input at
    # the inverse rotation of (x, y), so a positive angle turns the image counter-clockwise
    xs = (torch.arange(width, device=angles.device) * 2 + 1) / width - 1
    ys = ((torch.arange(height, device=angles.device) * 2 + 1) / height - 1).view(-1, 1)
    grid = torch.stack([cos * xs - sin * ys, sin * xs + cos * ys], dim=-1)  # (N, H, W, 2)
    if shifts is None:
        return grid
    pixel = torch.tensor([2 / width, 2 / height], device=angles.device)  # a pixel in [-1, 1] units
    return grid - (shifts * pixel).view(-1, 1, 1, 2)


def rotate(x, max_degrees, generator=None, max_shift=0.0):
    """Rotate each image of a batch (N, 1, H, W) by its own angle ~ U(-max, +max) degrees and,
    with `max_shift`, then move it by its own shift ~ U(-max_shift, +max_shift) pixels along
    each axis (bilinear: fractions of a pixel too).

    Counter-clockwise for positive angles, as torchvision's `rotate`; zeros fill the corners.
    Returns the rotated batch and the angles used.
    """
    n, _, height, width = x.shape
    angles = (torch.rand(n, device=x.device, generator=generator) * 2 - 1) * max_degrees
    shifts = (torch.rand(n, 2, device=x.device, generator=generator) * 2 - 1) * max_shift if max_shift else None
    grid = rotation_grid(angles, height, width, shifts).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False), angles


class Batches:
    """An MNIST split on the device, iterated in (optionally shuffled, rotated and shifted) batches."""

    def __init__(self, images, labels, batch_size, device, shuffle=False, rotation=0.0, seed=0, shift=0.0):
        self.x = images.to(device).unsqueeze(1).float().div_(255)  # (N, 1, 28, 28) in [0, 1]
        self.y = labels.to(device)
        self.batch_size, self.shuffle, self.rotation, self.shift = batch_size, shuffle, rotation, shift
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        n = len(self.y)
        order = (torch.randperm(n, device=self.x.device, generator=self.generator)
                 if self.shuffle else torch.arange(n, device=self.x.device))
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.x[idx]
            if self.rotation or self.shift:
                x, _ = rotate(x, self.rotation, self.generator, self.shift)
            yield (x - MEAN) / STD, self.y[idx]


def mnist_batches(batch_size, device, train_limit=None, test_limit=None, rotation=0.0, seed=0,
                  test_batch_size=1000, shift=0.0):
    """(train, test) batch iterators. Test = the real 10,000-image test split, unaugmented."""
    x, y = load_mnist(train=True)
    xt, yt = load_mnist(train=False)
    assert len(y) == 60_000 and len(yt) == 10_000, (len(y), len(yt))
    train = Batches(x[:train_limit], y[:train_limit], batch_size, device, True, rotation, seed, shift)
    test = Batches(xt[:test_limit], yt[:test_limit], test_batch_size, device)
    return train, test


def one_cycle(model, lr, epochs, steps_per_epoch, weight_decay=0.0, muon_lr=0.0, anneal_epochs=None):
    """SGD (momentum 0.9) with a one-cycle schedule stepped every batch: 20 % warm-up from
    lr/10 to lr, then a cosine anneal to lr/1000. Returns (optimizer, scheduler).
    With `anneal_epochs` below `epochs`, the cycle takes that many epochs and the lr then
    stays at its last value (`Settled`): the last epochs train at the smallest step.

    With `muon_lr` > 0, Muon (`torch.optim.Muon`, peak lr `muon_lr`, the same lr schedule,
    its own constant momentum 0.95) updates the weights of every full conv (not depthwise)
    but the classifier (the last conv) instead, each as its (out, in*k*k) matrix; SGD keeps
    BatchNorm and the classifier. SGD's weight decay passes through its momentum (about 0.9):
    a shrink of about 10 * lr * wd per step at the peak; Muon's is decoupled (w *= 1 - lr*wd)
    and gets `10 * weight_decay * lr / muon_lr`, the same shrink."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    matrices = list({id(m.weight): m.weight for m in convs[:-1] if m.groups == 1}.values()) \
        if muon_lr else []  # a weight shared by two convs once
    rest = [p for p in model.parameters() if all(p is not w for w in matrices)]
    sgd = torch.optim.SGD(rest, lr=lr, momentum=0.9, weight_decay=weight_decay)
    optimizers = [sgd] + ([MatrixMuon(matrices, muon_lr, 10 * weight_decay * lr / muon_lr)]
                          if matrices else [])
    cycle = min(anneal_epochs or epochs, epochs)
    schedulers = [torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=o.param_groups[0]["lr"], epochs=cycle, steps_per_epoch=steps_per_epoch,
        pct_start=0.2, div_factor=10, final_div_factor=100, cycle_momentum=o is sgd)
        for o in optimizers]
    if cycle < epochs:
        schedulers = [Settled(s, cycle * steps_per_epoch - 1) for s in schedulers]
    return (sgd, schedulers[0]) if len(optimizers) == 1 else (Together(optimizers), Together(schedulers))


class Settled:
    """A per-batch scheduler stepped `steps` times at most: then its lr stays where it ended."""

    def __init__(self, scheduler, steps):
        self.scheduler, self.steps = scheduler, steps

    def step(self):
        if self.scheduler.last_epoch < self.steps:
            self.scheduler.step()


class MatrixMuon(torch.optim.Muon):
    """Muon over conv weights: it takes 2-D parameters only, so it is given a matrix view of
    each weight, one row per output channel, which shares the weight's memory, and that view's
    gradient. A channels-last weight's columns are ordered (k, k, in), not (in, k, k): a
    permutation of the columns, which changes nothing in Muon's orthogonalised update."""

    def __init__(self, weights, lr, weight_decay):
        self.views = [(w, *matrix_view(w.detach())) for w in weights]
        super().__init__([flat for _, flat, _ in self.views], lr=lr, weight_decay=weight_decay)

    def step(self, closure=None):
        for w, flat, order in self.views:
            flat.grad = None if w.grad is None else w.grad.permute(order).reshape(flat.shape)
        return super().step(closure)

    def zero_grad(self, set_to_none=True):
        super().zero_grad(set_to_none)
        for w, _, _ in self.views:  # the weights' own gradients: backward accumulates into them
            w.grad = None


def matrix_view(weight):
    """(a view of `weight` as an (out, in*k*k) matrix in its own memory order, the dim order)."""
    for order in ((0, 1, 2, 3), (0, 2, 3, 1)):  # contiguous, channels-last
        try:
            return weight.permute(order).view(len(weight), -1), order
        except RuntimeError:
            continue
    raise ValueError(f"no matrix view of a weight with strides {weight.stride()}")


class Together:
    """Optimizers (or schedulers) stepped as one; `param_groups` are the first's, then the rest."""

    def __init__(self, parts):
        self.parts = parts

    @property
    def param_groups(self):
        return [g for part in self.parts for g in part.param_groups]

    def zero_grad(self, set_to_none=True):
        for part in self.parts:
            part.zero_grad(set_to_none)

    def step(self):
        for part in self.parts:
            part.step()


# --- loops --------------------------------------------------------------------------------
def progress(batches, desc):
    """A live progress bar over `batches`: a widget in JupyterLab, text in a terminal; none
    where TQDM_DISABLE=1 (headless runs, `python -m lib.pipeline`: the epoch log is the log)."""
    return tqdm(batches, desc=desc, leave=False, disable=os.environ.get("TQDM_DISABLE") == "1")


def ema_of(model, decay):
    """An exponential moving average of `model`'s weights and BatchNorm statistics, updated
    after every optimiser step: w_ema <- decay * w_ema + (1 - decay) * w."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def recipe(p, steps_per_epoch, device):
    """Block 3's recipe from a notebook's parameters `p` (model_name, dropout, lr, epochs,
    weight_decay, muon_lr, ema_decay; anneal_epochs where given): the model, channels-last on `device`; its optimiser and
    one-cycle schedule, stepped every batch (`one_cycle`); the moving average of its weights
    that is tested (`ema_of`; None at ema_decay 0). Returns (model, optimizer, scheduler, ema)."""
    from lib.models import MODELS

    model = MODELS[p["model_name"]](dropout=p["dropout"]).to(device, memory_format=torch.channels_last)
    optimizer, scheduler = one_cycle(model, p["lr"], p["epochs"], steps_per_epoch, p["weight_decay"],
                                     p["muon_lr"], p.get("anneal_epochs"))
    return model, optimizer, scheduler, (ema_of(model, p["ema_decay"]) if p["ema_decay"] else None)


def call(step):
    """What runs a step where nothing guards it: the step itself."""
    return step()


def train_epoch(model, batches, optimizer, scheduler=None, per_batch=False, desc="train", ema=None,
                guard=call, label_smoothing=0.0):
    """One pass over `batches`; steps a per-batch scheduler and the EMA, if any; each forward and
    backward pass runs through `guard` (a `CompileGuard` where the model is compiled).
    The loss is the negative log-likelihood of the model's log-probabilities; with
    `label_smoothing` ε, that of targets with ε spread evenly over the classes.
    Returns (mean loss, accuracy %) of the model being trained."""
    def forward_backward(x, y):
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = F.cross_entropy(out, y, label_smoothing=label_smoothing) if label_smoothing \
            else F.nll_loss(out, y)
        loss.backward()
        return out, loss

    model.train()
    loss_sum = torch.zeros((), device=batches.x.device)
    correct = torch.zeros((), device=batches.x.device, dtype=torch.long)
    for x, y in progress(batches, desc):
        out, loss = guard(lambda: forward_backward(x, y))
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        if scheduler is not None and per_batch:
            scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
    n = len(batches.y)
    return loss_sum.item() / n, 100.0 * correct.item() / n


@torch.no_grad()
def recompute_bn(model, batches, images):
    """Set `model`'s BatchNorm statistics to those of its own activations on the first
    `images` training images (all of them, if fewer), un-augmented (a cumulative average, as
    SWA does), instead of the running averages collected while the weights moved (as torch's
    `update_bn` does: the mean of per-batch statistics, batches of 1,000). Only BatchNorm is
    in training mode (dropout stays off): draws no random numbers."""
    bns = [m for m in model.modules()
           if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d))]
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    images = min(images, len(batches.x))
    for start in range(0, images, 1000):
        x = batches.x[start:min(start + 1000, images)]
        model.forward((x - MEAN) / STD)  # forward(): eager, also where the model is compiled
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.train(was_training)


@torch.no_grad()
def evaluate(model, batches, keep_predictions=False, guard=call):
    """Mean loss and accuracy % on `batches` (and the predictions, if asked); each forward
    pass runs through `guard`, as in `train_epoch`."""
    model.eval()
    loss_sum, correct, preds = 0.0, 0, []
    for x, y in batches:
        out = guard(lambda: model(x))
        loss_sum += F.nll_loss(out, y, reduction="sum").item()
        pred = out.argmax(1)
        correct += (pred == y).sum().item()
        if keep_predictions:
            preds.append(pred)
    n = len(batches.y)
    result = (loss_sum / n, 100.0 * correct / n)
    return (*result, torch.cat(preds)) if keep_predictions else result


def fit(model, train, test, epochs, optimizer, scheduler=None, per_batch=False, ema=None,
        compile=False, bn_recompute=0, label_smoothing=0.0, log=print):
    """Train for `epochs`; returns the history, one dict per epoch, accuracies in percent.

    `scheduler` steps once per batch if `per_batch` (OneCycleLR), else once per epoch.
    With `ema` (from `ema_of`), the test figures are those of the averaged model; with
    `bn_recompute` > 0, its BatchNorm statistics are recomputed on that many un-rotated
    training images before each test (`recompute_bn`); `label_smoothing`: see `train_epoch`.
    With `compile`, the model (and the EMA copy) are compiled in place first; epoch 1's time
    then includes compiling (seconds when torch's on-disk cache already has the kernels). A
    compiled step that fails is recovered (`CompileGuard`): compiled again, else run eager.
    """
    guard = CompileGuard(log) if compile else call
    if compile:
        compile_in_place(model, *([ema.module] if ema is not None else []))
        log("torch.compile: on (epoch 1 includes compiling)")
    history = []
    for epoch in range(1, epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        train_loss, train_acc = train_epoch(model, train, optimizer, scheduler, per_batch,
                                            desc=f"epoch {epoch}/{epochs}", ema=ema, guard=guard,
                                            label_smoothing=label_smoothing)
        if scheduler is not None and not per_batch:
            scheduler.step()
        if bn_recompute:
            recompute_bn(model if ema is None else ema.module, train, bn_recompute)
        test_loss, test_acc = evaluate(model if ema is None else ema, test, guard=guard)
        row = dict(epoch=epoch, lr=lr, train_loss=train_loss, train_acc=train_acc,
                   test_loss=test_loss, test_acc=test_acc,
                   seconds=round(time.perf_counter() - start, 2))
        history.append(row)
        log(f"epoch {epoch:2d}  lr {lr:.5f}  train loss {train_loss:.4f} acc {train_acc:6.2f}%  "
            f"test loss {test_loss:.4f} acc {test_acc:6.2f}%  {row['seconds']:.1f}s")
    return history
