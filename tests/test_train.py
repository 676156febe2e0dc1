"""Engine: batched rotation, device-resident batches, device choice, seeded determinism."""
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from lib.data import MEAN, STD, load_mnist
from lib.models import Model_2
from lib.train import (Batches, compile_support, ema_of, fit, mnist_batches, one_cycle, pick_device,
                       rotate, rotation_grid, seed_everything)


def digits(n=64):
    x, _ = load_mnist(train=True)
    return x[:n].unsqueeze(1).float() / 255


def test_rotation_matches_torchvision_rotate_at_the_same_angle():
    x = digits(8)
    rotated, angles = rotate(x, 15, torch.Generator().manual_seed(0))
    for img, out, a in zip(x, rotated, angles):
        ref = TF.rotate(img, float(a), interpolation=InterpolationMode.BILINEAR)
        # same direction and geometry; only the bilinear implementations differ slightly
        assert (out - ref).abs().mean() < 0.01, float(a)
        assert (out - TF.rotate(img, -float(a), interpolation=InterpolationMode.BILINEAR)).abs().mean() > \
            (out - ref).abs().mean()


def test_rotation_grid_is_affine_grids_of_the_rotation_matrices():
    angles = torch.tensor([-7.0, 0.0, 3.5, 90.0, 180.0])
    rad = angles * math.pi / 180
    cos, sin, zero = rad.cos(), rad.sin(), torch.zeros(5)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    for h, w in [(28, 28), (5, 8)]:
        ref = F.affine_grid(theta, [5, 1, h, w], align_corners=False)
        assert torch.allclose(rotation_grid(angles, h, w), ref, atol=1e-6)


def test_a_whole_pixel_shift_moves_the_image_exactly_and_fills_zeros():
    x = digits(2)
    shifts = torch.tensor([[1.0, 2.0], [-3.0, 0.0]])  # (right, down) in pixels
    grid = rotation_grid(torch.zeros(2), 28, 28, shifts)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ref = torch.zeros_like(x)
    ref[0, :, 2:, 1:] = x[0, :, :-2, :-1]
    ref[1, :, :, :-3] = x[1, :, :, 3:]
    assert torch.allclose(out, ref, atol=1e-5)


def test_shifted_batches_draw_the_shift_after_the_angle_and_no_shift_draws_nothing():
    x = digits(16)
    rotated, angles = rotate(x, 7, torch.Generator().manual_seed(3))
    same, angles_0 = rotate(x, 7, torch.Generator().manual_seed(3), max_shift=0)
    shifted, angles_2 = rotate(x, 7, torch.Generator().manual_seed(3), max_shift=2)
    assert torch.equal(same, rotated) and torch.equal(angles_0, angles) and torch.equal(angles_2, angles)
    assert (shifted - rotated).abs().mean() > 0.02  # moved
    assert abs(shifted.mean() - rotated.mean()) < 0.01  # the digit stays in the frame


def test_angles_are_uniform_within_the_range():
    _, angles = rotate(torch.zeros(20_000, 1, 28, 28), 7, torch.Generator().manual_seed(1))
    assert angles.abs().max() <= 7
    assert angles.min() < -6.9 and angles.max() > 6.9
    assert abs(angles.mean()) < 0.1
    assert abs(angles.std().item() - 7 / 3 ** 0.5) < 0.05  # std of U(-7, 7)


def test_rotated_batches_keep_the_pixel_statistics_of_pil_rotation():
    x = digits(512)
    ours, angles = rotate(x, 7, torch.Generator().manual_seed(2))
    pil = torch.stack([TF.to_tensor(TF.rotate(TF.to_pil_image(img), float(a)))
                       for img, a in zip(x, angles)])  # torchvision's PIL path, nearest
    assert abs(ours.mean() - pil.mean()) < 0.005
    assert abs(ours.std() - pil.std()) < 0.02


def test_batches_cover_the_split_once_per_epoch_and_normalise():
    x, y = load_mnist(train=False)
    b = Batches(x[:1000], y[:1000], 128, "cpu", shuffle=True, seed=0)
    seen = torch.cat([yb for _, yb in b])
    assert len(b) == 8 and torch.equal(seen.sort().values, y[:1000].sort().values)
    xb, _ = next(iter(Batches(x, y, 10_000, "cpu")))
    assert abs(xb.mean().item() - (x.float().mean().item() / 255 - MEAN) / STD) < 1e-4


def test_test_split_is_the_full_mnist_test_set():
    _, test = mnist_batches(128, "cpu")
    assert len(test.y) == 10_000 and test.rotation == 0 and not test.shuffle


def test_device_auto_and_unavailable_devices():
    first = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device("auto") == torch.device(first)  # cuda, then mps, then cpu
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device='cuda' is not available here; allowed: 'auto', 'cpu'"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="device='gpu0' is not available"):
        pick_device("gpu0")


def smoke_history(seed, compile=False):
    seed_everything(seed)
    train, test = mnist_batches(64, "cpu", train_limit=640, test_limit=500, rotation=7, seed=seed)
    model = Model_2().to(memory_format=torch.channels_last)
    optimizer, scheduler = one_cycle(model, 0.05, 2, len(train))
    history = fit(model, train, test, 2, optimizer, scheduler, per_batch=True,
                  ema=ema_of(model, 0.9), compile=compile, log=lambda s: None)
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_same_seed_same_metrics_on_cpu():
    a, b = smoke_history(3), smoke_history(3)
    assert a == b
    assert a != smoke_history(4)


CPU_COMPILE = compile_support(torch.device("cpu"))


@pytest.mark.skipif(not CPU_COMPILE[0], reason=f"torch.compile not usable here: {CPU_COMPILE[1]}")
def test_compiled_training_is_seeded_and_agrees_with_eager():
    compiled = smoke_history(3, compile=True)
    assert compiled == smoke_history(3, compile=True)
    eager = smoke_history(3)
    for c, e in zip(compiled, eager):  # same computation, other kernels: float rounding only
        assert c["train_loss"] == pytest.approx(e["train_loss"], rel=0.02)
        assert abs(c["test_acc"] - e["test_acc"]) <= 2.0, (c, e)


@pytest.mark.parametrize("broken", ["raises", "disagrees"])
def test_compiled_code_that_fails_the_self_check_is_not_used(monkeypatch, broken):
    from lib import train

    def compile_badly(*models):
        if broken == "raises":
            raise RuntimeError("C++ compile error")
        for model in models:  # wrong numbers, as inductor's code under a forced ISA gave here
            model[0].weight.data.add_(1.0)

    cpu = torch.device("cpu")
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/g++")
    monkeypatch.setattr(train, "compile_in_place", compile_badly)
    train.cpu_compile_self_check.cache_clear()
    try:
        ok, why = compile_support(cpu)
        assert not ok and "self-check" in why
        assert train.resolve_compile("auto", cpu) is False  # auto falls back to eager
        with pytest.raises(ValueError, match="torch_compile=True is not possible on cpu: torch.compile"):
            train.resolve_compile(True, cpu)
    finally:
        train.cpu_compile_self_check.cache_clear()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_muon_updates_each_conv_weight_as_its_matrix_and_sgd_the_rest(memory_format):
    from lib.train import Together

    torch.manual_seed(0)
    model = Model_2().to(memory_format=memory_format)
    weights = dict(model.named_parameters())
    convs = [n for n, p in weights.items() if p.ndim == 4]
    optimizer, scheduler = one_cycle(model, 0.1, 1, 10, weight_decay=1e-4, muon_lr=0.02)
    assert isinstance(optimizer, Together) and isinstance(scheduler, Together)
    sgd, muon = optimizer.parts
    assert len(muon.views) == len(convs) - 1  # every conv but the classifier ("head")
    assert {id(p) for g in sgd.param_groups for p in g["params"]} == \
        {id(p) for n, p in weights.items() if p.ndim != 4 or n == "head.weight"}
    # Muon by hand on (out, in*k*k) copies of the conv weights, two steps: the same numbers
    want = torch.optim.Muon([weights[n].detach().reshape(len(weights[n]), -1).clone()
                             for n in convs[:-1]], lr=0.002, weight_decay=10 * 1e-4 * 0.1 / 0.02)
    strides = {n: weights[n].stride() for n in convs}
    head = weights["head.weight"].detach().clone()
    for step in range(2):
        assert muon.param_groups[0]["lr"] == pytest.approx(want.param_groups[0]["lr"])
        assert muon.param_groups[0]["momentum"] == 0.95  # Muon's own, not the one-cycle's
        optimizer.zero_grad()
        x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
        F.nll_loss(model(x), y).backward()
        for p, n in zip(want.param_groups[0]["params"], convs[:-1]):
            p.grad = weights[n].grad.reshape(p.shape).clone()  # this step's gradient only
        optimizer.step()
        scheduler.step()
        want.step()
        want.param_groups[0]["lr"] = muon.param_groups[0]["lr"]  # follow the schedule
        for p, n in zip(want.param_groups[0]["params"], convs[:-1]):
            assert torch.allclose(weights[n].detach().reshape(p.shape), p, atol=1e-6), (step, n)
            assert weights[n].stride() == strides[n]  # still in its memory format
    assert not torch.equal(weights["head.weight"], head)  # SGD moved the classifier


def test_muon_leaves_depthwise_and_classifier_convs_to_sgd_and_a_shared_weight_counts_once():
    from lib.models import MODELS

    _, dw = one_cycle(MODELS["Model_3_dw_head"](), 0.1, 1, 10, muon_lr=0.02)[0].parts
    assert [tuple(w.shape) for w, _, _ in dw.views] == [(8, 1, 5, 5), (8, 8, 3, 3), (16, 8, 3, 3),
                                                        (16, 16, 3, 3), (16, 16, 3, 3), (8, 16, 3, 3)]
    model = MODELS["Model_3_shared_conv"]()
    sgd, muon = one_cycle(model, 0.1, 1, 10, muon_lr=0.02)[0].parts
    assert len(muon.views) == 6 and len({id(w) for w, _, _ in muon.views}) == 6
    assert sum(p.numel() for g in sgd.param_groups for p in g["params"]) \
        + sum(w.numel() for w, _, _ in muon.views) == 7944


def test_bn_statistics_recomputed_are_those_of_the_images_and_draw_no_random_numbers():
    from lib.train import recompute_bn

    from lib.models import Model_3

    train, _ = mnist_batches(64, "cpu", train_limit=300, test_limit=10, seed=0)
    model = Model_3(dropout=0.1).eval()  # dropout stays off: no random numbers
    model.compile()  # forward() is the eager code, compiled or not
    bn = model.block1[0][1]
    bn.running_mean.fill_(5.0)
    rng, gen = torch.get_rng_state(), train.generator.get_state()
    recompute_bn(model, train, 250)
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(train.generator.get_state(), gen)
    with torch.no_grad():
        first = model.block1[0][0]((train.x[:250] - MEAN) / STD)
    assert torch.allclose(bn.running_mean, first.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, first.var((0, 2, 3)), rtol=1e-3)
    assert bn.momentum == 0.1 and not model.training  # as they were


def test_label_smoothing_spreads_each_target_over_the_classes():
    """train_epoch's loss with label smoothing ε is (1 − ε)·NLL + ε·(mean over classes of
    −log p) of the model's log-probabilities; ε = 0 is the plain NLL, as before."""
    from lib.train import train_epoch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 10), torch.nn.LogSoftmax(1))
    x, y = torch.randn(8, 1, 2, 2), torch.randint(0, 10, (8,))

    class One:  # a single batch, as Batches iterates
        def __init__(self):
            self.x, self.y = x, y

        def __iter__(self):
            return iter([(x, y)])

    def loss(eps):
        copy = torch.nn.Sequential(*[m for m in model])  # the same weights, no step taken
        frozen = torch.optim.SGD(copy.parameters(), lr=0.0)
        return train_epoch(copy, One(), frozen, label_smoothing=eps)[0]

    logp = model(x)
    nll, uniform = F.nll_loss(logp, y).item(), -logp.mean(1).mean().item()
    assert loss(0.0) == pytest.approx(nll, rel=1e-6)
    assert loss(0.1) == pytest.approx(0.9 * nll + 0.1 * uniform, rel=1e-5)


@pytest.mark.parametrize("muon_lr", [0.0, 0.2])
def test_a_shorter_cycle_ends_at_its_smallest_lr_and_holds_it(muon_lr):
    """one_cycle's `anneal_epochs`: the cycle takes that many epochs, then every optimiser's lr
    stays at its last value; None (or all the epochs) is the full-length cycle, as before."""
    def lrs(anneal_epochs, epochs=4, steps=5):
        torch.manual_seed(0)
        model = Model_2()
        optimizer, scheduler = one_cycle(model, 0.3, epochs, steps, 1e-4, muon_lr, anneal_epochs)
        seen = []
        for _ in range(epochs * steps):
            seen.append([g["lr"] for g in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
        return seen

    full, short = lrs(None), lrs(2)
    assert lrs(4) == full and lrs(9) == full
    assert short[:10] != full[:10] and max(lr for row in short for lr in row) == pytest.approx(max(0.3, muon_lr))
    assert all(row == short[9] for row in short[9:])  # step 9 ends the cycle: held from there
    assert short[9] == pytest.approx([g / 1000 for g in (0.3, muon_lr)[: len(short[9])]])
