"""The GPU bundle's mechanism, end to end, on this machine: the bundle recipe of
`make gpu-bundle` for this machine's Python, installed offline into a venv over a Python that
has only what the GPU image has (torch, torchvision, numpy, pandas, matplotlib, ...: .venv's
own, seen through links, not copies), then `gpu-check` in it on the CPU on smoke parameters.

Slow (minutes) and needs PyPI for the download: not part of `make test`; `make test-gpu-bundle`
runs it (RUN_GPU_BUNDLE_TEST=1)."""
import json
import os
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from lib import gpu
from lib.data import MD5
from conftest import REPO

pytestmark = [
    pytest.mark.skipif(os.environ.get("RUN_GPU_BUNDLE_TEST") != "1",
                       reason="slow and needs PyPI: make test-gpu-bundle"),
    pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64",
                       reason="the bundle's wheels are for manylinux x86-64"),
]


def image_closure():
    """The distributions of .venv that the GPU image has: gpu.IMAGE and what they need."""
    found, todo = {}, list(gpu.IMAGE)
    while todo:
        name = gpu.normalize(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def image_python(root):
    """A venv whose site-packages sees only the image's packages: a folder of links to their
    files in .venv, named by a .pth file. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(root / "image")], check=True, timeout=300)
    python = root / "image" / "bin" / "python"
    links = root / "image-packages"
    links.mkdir()
    for dist in image_closure().values():
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source = Path(dist.locate_file(top))
            if top.startswith("..") or top == "__pycache__" or not source.exists():
                continue
            if not (links / top).exists():
                (links / top).symlink_to(source)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "image-packages.pth").write_text(f"{links}\n")
    return python


def test_the_bundle_installs_offline_and_the_check_runs_end_to_end(tmp_path):
    started = time.perf_counter()
    here = "%d.%d" % sys.version_info[:2]
    bundle = tmp_path / "bundle"
    done = subprocess.run([sys.executable, "-m", "lib.gpu", "bundle", "--out", str(bundle),
                           "--python-version", here], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^bundle: [0-9.]+ MiB; with the working tree .* of 64 MiB$", done.stdout, re.M), done.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    carried = {gpu.wheel_project(w) for w in manifest["wheels"]}
    assert {"papermill", "jupytext", "nbconvert", "ipykernel", "torchinfo"} <= carried
    assert not carried & gpu.IMAGE  # no second torch, numpy, pandas, ...

    python = image_python(tmp_path)
    has = lambda module: subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0
    assert has("torch") and has("torchvision") and has("pandas") and not has("papermill") and not has("nbconvert")

    data = tmp_path / "data"  # empty: MNIST comes from the bundle
    env = {**os.environ, "MNIST_DATA_DIR": str(data)}
    env.pop("PYTHONPATH", None)
    work = tmp_path / "work"
    done = subprocess.run([str(python), "-m", "lib.gpu", "check", "--bundle", str(bundle), "--device", "cpu",
                           "--smoke-only", "--work", str(work)], cwd=REPO, capture_output=True, text=True,
                          timeout=2400, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[gpu] MNIST in" in done.stdout and "4 file(s) unpacked" in done.stdout
    assert sorted(p.name for p in (data / "MNIST" / "raw").iterdir()) == sorted(MD5)

    assert (work / "site" / "papermill").is_dir() and not (work / "site" / "torch").exists()  # the image's torch

    out = work / "smoke"
    record = json.loads((out / "gpu-record.json").read_text())
    stems = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9]*.py"))
    assert sorted(record["notebook_seconds"]) == stems and record["failures"] == {}
    devices = [json.loads(p.read_text()).get("device") for p in out.glob("*.metrics.json")]
    assert len(devices) == len(stems) and all(d is None or d.startswith("cpu") for d in devices)
    assert record["bench_ratio"] > 0 and record["environment"]["torch"]
    assert {f"{s}.html" for s in stems} | {"README.md", "index.html", "gpu-record.json"} <= {p.name for p in out.iterdir()}
    executed = json.loads((out / "03_final.ipynb").read_text())  # the figures came out as images
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    reference = json.loads((REPO / "tests/reference/03_final.ipynb").read_text())
    figures = lambda cells: sum("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code"
                                for o in c.get("outputs", []))
    assert figures(executed["cells"]) == figures(reference["cells"]) > 0
    assert not [o for o in outputs if o.get("name") == "stderr" and "Warning" in "".join(o.get("text", ""))]
    print(f"\nbundle + offline install + check (cpu, smoke): {time.perf_counter() - started:.0f} s; "
          f"check stages: {record['stages']}")
