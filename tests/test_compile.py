"""torch.compile's rough edges: a broken compile cache never crashes a run, a stopped run
leaves later runs working, and a run that does not compile probes nothing.

The slow tests run real inductor builds in fresh processes (in-process, torch keeps what it
loaded): a planted cut-short library, and a build stopped by Ctrl-C, each followed by a run
that must finish. They share one compile cache so that inductor's one-time setup is paid once."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lib import train
from lib.train import CompileGuard, broken_libraries, compile_support
from conftest import REPO

CPU_COMPILE = compile_support(torch.device("cpu"))
needs_compile = pytest.mark.skipif(not CPU_COMPILE[0],
                                   reason=f"torch.compile not usable here: {CPU_COMPILE[1]}")

# a compiled training run through lib.train.fit, as the notebooks make it; argv: the width
# (it picks the graph), then "probe" to run the self-check first as a notebook's Run does
FIT = """
import logging, sys, torch
from lib.train import Batches, compiled_steps_fell_back, cpu_compile_self_check, fit, one_cycle
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="log: %(message)s")
if sys.argv[2:] == ["probe"]:
    print("self-check:", repr(cpu_compile_self_check()), flush=True)
torch.manual_seed(0)
width = int(sys.argv[1])
x, y = (torch.rand(256, 28, 28) * 255).to(torch.uint8), torch.randint(0, 10, (256,))
train, test = Batches(x, y, 64, "cpu", shuffle=True), Batches(x[:100], y[:100], 50, "cpu")
model = torch.nn.Sequential(torch.nn.Conv2d(1, width, 3), torch.nn.BatchNorm2d(width),
    torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(width, 10),
    torch.nn.LogSoftmax(1))
optimizer, scheduler = one_cycle(model, 0.05, 1, len(train))
fit(model, train, test, 1, optimizer, scheduler, per_batch=True, compile=True)
print("fell back:", compiled_steps_fell_back() or "no")
"""


def real_library(folder, name):
    """A shared library built as inductor builds its own (by the C++ compiler) as `folder/name`."""
    path = folder / name
    subprocess.run([shutil.which("g++") or "c++", "-shared", "-fPIC", "-x", "c++", "-", "-o", path],
                   input='extern "C" int answer() { return 42; }', text=True, check=True)
    return path


@needs_compile
def test_broken_libraries_are_those_cut_short(tmp_path):
    whole = real_library(tmp_path, "whole.so")
    size = whole.stat().st_size
    (tmp_path / "sub").mkdir()
    cut = {n: real_library(tmp_path / "sub", f"{n}.so") for n in (0, 30, 64, size // 2, size - 1)}
    for n, path in cut.items():
        os.truncate(path, n)
    (tmp_path / "notes.txt").write_bytes(b"")  # not a library
    assert sorted(broken_libraries(tmp_path)) == sorted(cut.values())


@pytest.fixture
def guarded(monkeypatch, tmp_path):
    """A compile cache of the test's own holding one broken library; this process compiling
    again afterwards, whatever the test did to torch's stance."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(train, "EAGER_SINCE", {})
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "cab.main.so").write_bytes(b"")
    yield tmp_path
    torch.compiler.set_stance("default")
    torch.compiler.reset()


def compiled_doubling(fails):
    """A compiled function whose compiler fails the first `fails` times as inductor does on a
    cut-short library, and the number of compiles so far."""
    compiles = []

    def backend(graph, inputs):
        compiles.append(graph)
        if len(compiles) <= fails:
            raise ImportError("/cache/ab/cab.main.so: file too short")
        return graph.forward

    torch.compiler.reset()
    return torch.compile(lambda x: x * 2, backend=backend), compiles


def test_a_compiled_step_that_fails_once_is_compiled_again_after_the_cache_is_cleaned(guarded):
    double, compiles = compiled_doubling(fails=1)
    said = []
    out = CompileGuard(said.append)(lambda: double(torch.ones(3)))
    assert torch.equal(out, torch.full((3,), 2.0)) and len(compiles) == 2
    assert not (guarded / "ab" / "cab.main.so").exists()
    assert len(said) == 1 and "ImportError: /cache/ab/cab.main.so: file too short" in said[0]
    assert "removed 1 broken library" in said[0]
    assert train.compiled_steps_fell_back() == ""


def test_a_compiled_step_that_fails_twice_runs_eager_for_the_rest_of_the_process(guarded):
    double, compiles = compiled_doubling(fails=10)
    said = []
    guard = CompileGuard(said.append)
    assert torch.equal(guard(lambda: double(torch.ones(3))), torch.full((3,), 2.0))
    assert len(compiles) == 2 and "ImportError" in train.compiled_steps_fell_back()
    assert said[-1].startswith("torch.compile: off for the rest of this run")
    assert torch.equal(guard(lambda: double(torch.ones(4))), torch.full((4,), 2.0))
    assert len(compiles) == 2  # eager now: no compile tried


def test_a_failure_eager_code_repeats_is_raised(guarded):
    def step():
        raise ValueError("shapes do not match")

    with pytest.raises(ValueError, match="shapes do not match"):
        CompileGuard(lambda line: None)(step)


def test_a_run_that_fell_back_to_eager_records_it(monkeypatch, tmp_path):
    from lib.run import Run

    run = Run("03_final", {"seed": 1, "device": "cpu", "torch_compile": False,
                           "out_dir": str(tmp_path)})
    run.compile_chosen = True
    assert run.compile is True
    monkeypatch.setattr(train, "EAGER_SINCE", {"why": "a compiled step failed twice (ImportError)"})
    assert run.compile is False
    import json
    record = json.loads(run.save_metrics().read_text())
    assert record["torch_compile"] is False and "ImportError" in record["compile_fell_back"]


def test_compile_off_probes_nothing(monkeypatch):
    def probe(device):
        raise AssertionError("probed")

    monkeypatch.setattr(train, "compile_support", probe)
    assert train.resolve_compile(False, torch.device("cpu")) is False


def test_the_compile_cache_is_the_projects_unless_set(monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert train.compile_cache() == REPO / "build" / "torchinductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    assert train.compile_cache() == Path("/elsewhere")


# forced kernels are not inherited: a forced ISA keys inductor's cache otherwise, and can make
# its code disagree with eager (what the self-check is for, tested in test_train)
FLOAT_PATH = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def fit_in_a_fresh_process(cache, width, env=(), probe=False, **popen):
    environment = {**{k: v for k, v in os.environ.items() if k not in FLOAT_PATH},
                   "TORCHINDUCTOR_CACHE_DIR": str(cache), "TQDM_DISABLE": "1", **dict(env)}
    return subprocess.Popen([sys.executable, "-c", FIT, str(width)] + ["probe"] * probe, cwd=REPO, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finished(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, out + err
    assert "epoch  1 " in out and "fell back: no" in out, out + err
    return out, err


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A compile cache that a run of width 4 filled, and what that run printed, under a forced
    ISA named as inductor does not take it (`AVX2`: ATen reads the lower case)."""
    cache = tmp_path_factory.mktemp("inductor")
    return cache, finished(fit_in_a_fresh_process(cache, 4, {"ATEN_CPU_CAPABILITY": "AVX2"}, probe=True))


@needs_compile
def test_what_inductor_warns_in_the_probe_is_one_log_line_not_stderr(warm_cache):
    _, (out, err) = warm_cache
    assert "ignoring invalid value" not in err and "Warning" not in err, err
    if sys.platform == "linux" and os.uname().machine == "x86_64":  # where inductor warns of it
        assert out.count("torch.compile self-check: ignoring invalid value for ATEN_CPU_CAPABILITY AVX2") == 1, out


def with_every_library_cut(warm_cache, tmp_path):
    """A copy of the warm cache (each test meets it as the first run after the fixture's did)
    whose libraries are all cut to 0 bytes, as a build stopped midway leaves one."""
    cache = Path(shutil.copytree(warm_cache[0], tmp_path / "cache"))
    libraries = list(cache.rglob("*.so"))
    assert libraries and not broken_libraries(cache)
    for path in libraries:
        os.truncate(path, 0)
    return cache


@needs_compile
def test_a_cut_short_library_met_in_training_is_rebuilt_and_the_run_goes_on(warm_cache, tmp_path):
    cache = with_every_library_cut(warm_cache, tmp_path)
    out, _ = finished(fit_in_a_fresh_process(cache, 4))  # fit's CompileGuard meets them
    failed = [line for line in out.splitlines() if "a compiled step failed" in line]
    assert len(failed) == 1 and "file too short" in failed[0] and "compiling again" in failed[0], out
    assert not broken_libraries(cache)


@needs_compile
def test_a_cut_short_library_met_by_the_self_check_is_rebuilt_before_training(warm_cache, tmp_path):
    cache = with_every_library_cut(warm_cache, tmp_path)
    out, _ = finished(fit_in_a_fresh_process(cache, 4, probe=True))
    assert "self-check: ''" in out and "log: torch.compile: a compiled step failed" in out, out
    assert "\ntorch.compile: a compiled step failed" not in out  # all were removed before training
    assert not broken_libraries(cache)


@needs_compile
def test_a_run_stopped_while_inductor_builds_leaves_the_next_run_working(warm_cache):
    cache, _ = warm_cache
    before = set(cache.rglob("*.cpp"))
    stopped = fit_in_a_fresh_process(cache, 6, start_new_session=True)
    deadline = time.monotonic() + 300
    while not set(cache.rglob("*.cpp")) - before and stopped.poll() is None:
        assert time.monotonic() < deadline, "inductor built nothing in 300 s"
        time.sleep(0.05)
    os.killpg(stopped.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
    stopped.communicate(timeout=300)
    finished(fit_in_a_fresh_process(cache, 6))


def test_a_long_error_line_keeps_what_went_wrong():
    """The reason ends the line (a library's path comes first): a long one keeps its end."""
    from lib.train import what_failed

    path = "/tmp/" + "deep/" * 40 + "x.main.so"
    error = RuntimeError(f"backend failed\nInductorError: ImportError: {path}: file too short")
    line = what_failed(error)
    assert line.startswith("RuntimeError: InductorError: ImportError: /tmp/deep/")
    assert line.endswith("x.main.so: file too short") and len(line) < 200
    assert what_failed(ValueError("short")) == "ValueError: short"
