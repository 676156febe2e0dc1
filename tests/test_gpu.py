"""lib.gpu without a network or a GPU: MNIST packed and unpacked with its md5s, clear errors
for a missing or mismatched bundle, the smoke parameters, the freshness key's device, the
link to reports/gpu/ from the main index, a stopped pass over the notebooks. tests/test_gpu_bundle.py runs the whole check
(slow, needs PyPI: `make test-gpu-bundle`)."""
import gzip
import hashlib
import json
import signal
import subprocess
import sys
import time

import pytest

from lib import gpu, pipeline
from lib.gpu import CheckError, pack_mnist, unpack_mnist
from conftest import REPO

FILES = {"train-images-idx3-ubyte": b"images" * 100, "t10k-labels-idx1-ubyte": b"labels"}
MD5S = {name: hashlib.md5(data).hexdigest() for name, data in FILES.items()}


@pytest.fixture
def packed(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, data in FILES.items():
        (raw / name).write_bytes(data)
    pack_mnist(raw, tmp_path / "bundle" / "mnist", MD5S)
    return tmp_path / "bundle" / "mnist"


def test_mnist_round_trip_checks_every_md5(packed, tmp_path):
    assert sorted(p.name for p in packed.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    assert gzip.decompress((packed / "t10k-labels-idx1-ubyte.gz").read_bytes()) == b"labels"
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert sorted(unpack_mnist(packed, raw, MD5S, log=lambda _: None)) == sorted(FILES)
    assert {n: (raw / n).read_bytes() for n in FILES} == FILES
    assert unpack_mnist(packed, raw, MD5S, log=lambda _: None) == []  # verified: left alone
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"damaged")
    assert unpack_mnist(packed, raw, MD5S, log=lambda _: None) == ["t10k-labels-idx1-ubyte"]
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == b"labels"


def test_a_damaged_or_foreign_mnist_is_a_one_line_error(packed, tmp_path):
    raw = tmp_path / "raw2"
    (packed / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"other labels"))
    with pytest.raises(CheckError, match=r"t10k-labels-idx1-ubyte.gz unpacks to md5 \w+, not "):
        unpack_mnist(packed, raw, MD5S, log=lambda _: None)
    (packed / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(CheckError, match="cannot be unpacked"):
        unpack_mnist(packed, raw, MD5S, log=lambda _: None)
    with pytest.raises(CheckError, match="fails its md5 check"):
        pack_mnist(tmp_path / "raw", tmp_path / "again", {**MD5S, "t10k-labels-idx1-ubyte": "0" * 32})


def check_cli(*args):
    return subprocess.run([sys.executable, "-m", "lib.gpu", "check", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_a_missing_bundle_is_one_clear_line(tmp_path):
    done = check_cli("--bundle", tmp_path / "nowhere", "--work", tmp_path / "work")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"error: no GPU bundle at {tmp_path / 'nowhere'}: make it with "
                                   "`make gpu-bundle` on a machine that reaches PyPI, then carry that "
                                   "folder (docs/gpu.md)")
    assert not (tmp_path / "work").exists()


def test_a_bundle_for_another_python_or_an_incomplete_one_is_one_clear_line(packed, tmp_path):
    bundle = packed.parent
    info = {"python_version": "3.99", "wheels": [], "packages": [], "mnist": sorted(FILES)}
    (bundle / "manifest.json").write_text(json.dumps(info))
    done = check_cli("--bundle", bundle, "--work", tmp_path / "work")
    here = "%d.%d" % sys.version_info[:2]
    assert done.returncode != 0 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert f"holds wheels for Python 3.99; this is Python {here}" in done.stderr
    (bundle / "manifest.json").write_text(json.dumps({**info, "wheels": ["papermill-2.7.0-py3-none-any.whl"]}))
    done = check_cli("--bundle", bundle, "--work", tmp_path / "work")
    assert "incomplete: wheels/papermill-2.7.0-py3-none-any.whl missing" in done.stderr, done.stderr


def test_the_bundle_carries_the_pinned_notebook_stack_and_nothing_the_image_has():
    pinned = {gpu.normalize(line.split("==")[0]) for line in (REPO / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert set(gpu.PACKAGES) <= pinned  # pip download's constraints (-c requirements.txt) fix each version
    assert not set(gpu.PACKAGES) & gpu.IMAGE and {"torch", "numpy", "pandas", "pyyaml"} <= gpu.IMAGE
    assert gpu.wheel_project("typing_extensions-4.16.0-py3-none-any.whl") in gpu.IMAGE
    assert gpu.wheel_project("PyYAML-6.0.4-cp312-cp312-manylinux_2_17_x86_64.whl") in gpu.IMAGE
    assert gpu.wheel_project("jupyter_client-8.10.0-py3-none-any.whl") not in gpu.IMAGE


def test_an_error_line_is_the_one_that_says_what_failed():
    traceback = "Traceback (most recent call last):\n  File x\nValueError: No template 'lab' in:\n\t/usr/share\n"
    assert gpu.error_line(traceback) == "ValueError: No template 'lab' in:"
    assert gpu.error_line("[03_final] running\nerror: notebook 03_final failed in cell 4\n") == \
        "notebook 03_final failed in cell 4"
    assert gpu.error_line("Collecting x\nERROR: No matching distribution found for papermill==9\n") == \
        "No matching distribution found for papermill==9"
    assert gpu.error_line("") == "(no output)"


# --- the freshness key: the device a run resolves to --------------------------------------
@pytest.fixture(scope="module")
def block():
    import jupytext
    return jupytext.read(REPO / "notebooks/03_final.py")


def test_the_key_includes_the_device(block):
    py = REPO / "notebooks/03_final.py"
    from lib.inputs import inputs_key
    assert inputs_key(py, {}, device="cpu") != inputs_key(py, {}, device="cuda")
    assert inputs_key(py, {}, device="cpu") == inputs_key(py, {}, device="cpu")


def test_auto_resolves_as_pick_device_does(block, monkeypatch, tmp_path):
    import lib.train

    monkeypatch.setattr(pipeline, "GPU_NODES", (str(tmp_path / "no-such-node"),))
    monkeypatch.setattr(pipeline.sys, "platform", "linux")
    with monkeypatch.context() as here:  # no GPU node: torch is not even imported
        here.setitem(sys.modules, "torch", None)
        here.delitem(sys.modules, "lib.train")
        assert pipeline.run_device(block, {}) == "cpu"
        assert pipeline.run_device(block, {"device": "cuda:1"}) == "cuda:1"
    (tmp_path / "nvidiactl").touch()
    monkeypatch.setattr(pipeline, "GPU_NODES", (str(tmp_path / "nvidiactl"),))
    for here, want in [(["cpu", "mps", "cuda"], "cuda"), (["cpu", "mps"], "mps"), (["cpu"], "cpu")]:
        monkeypatch.setattr(lib.train, "available_devices", lambda names=here: names)
        assert pipeline.run_device(block, {}) == want


def test_a_notebook_without_a_device_has_none_in_its_key():
    import jupytext
    assert pipeline.run_device(jupytext.read(REPO / "notebooks/05_recipe.py"), {}) is None


# --- the main index links reports/gpu/ ------------------------------------------------------
def metrics(**extra):
    history = [dict(epoch=1, lr=0.1, train_loss=0.1, train_acc=99.0, test_loss=0.02, test_acc=99.5, seconds=2.0)]
    return json.dumps({"model": "Model_3", "params": 7912, "epochs": 1, "target_met": True, "wall_seconds": 60,
                       "device": "cpu (x)", "device_name": "x", "git_commit": "0123456789ab", "git_dirty": False,
                       "seed": 1, "history": history, **extra})


def test_the_index_links_the_gpu_reports_when_they_exist(tmp_path):
    from lib.index import write_index
    (tmp_path / "03_final.metrics.json").write_text(metrics())
    write_index(tmp_path)
    assert "gpu/" not in (tmp_path / "README.md").read_text()
    gpu_dir = tmp_path / "gpu"
    gpu_dir.mkdir()
    (gpu_dir / "03_final.metrics.json").write_text(metrics(device="cuda (NVIDIA H200)"))
    write_index(gpu_dir)
    write_index(tmp_path)
    assert "[gpu/](gpu/README.md)" in (tmp_path / "README.md").read_text()
    assert '<a href="gpu/index.html">gpu/</a>' in (tmp_path / "index.html").read_text()
    assert "NVIDIA H200" in (gpu_dir / "README.md").read_text()


STOPPED = """
import json, os, signal, sys
from pathlib import Path
from lib import gpu
signal.signal(signal.SIGTERM, signal.default_int_handler)
*paths, out = map(Path, sys.argv[1:])
print(json.dumps(gpu.run_notebooks("cpu", out, dict(os.environ), out / "logs", jobs=1, paths=paths)))
"""


def test_a_stopped_pass_ends_the_running_notebook_starts_none_and_says_which_are_unfinished(tmp_path):
    from test_pipeline import TINY
    started = tmp_path / "started"
    slow, fast = tmp_path / "a_slow.py", tmp_path / "b_fast.py"
    slow.write_text(TINY.replace("pause = 0", "pause = 120").replace('started = ""', f'started = "{started}"'))
    fast.write_text(TINY)
    proc = subprocess.Popen([sys.executable, "-c", STOPPED, slow, fast, tmp_path / "out"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120  # a cold kernel start on a busy machine takes a while
    while not started.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert started.exists(), proc.communicate()[1]
    stopped_at = time.time()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == [{}, {}, ["a_slow", "b_fast"]]
    assert time.time() - stopped_at < 60 and not (tmp_path / "out" / "a_slow.metrics.json").exists()
    assert not (tmp_path / "out" / "logs" / "b_fast.log").exists()
