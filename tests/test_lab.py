"""`make lab`: JupyterLab started as `python -m lib.lab` starts it, checked through its REST API."""
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from lib.lab import lab_command
from conftest import REPO, free_port

NOTEBOOK = sorted((REPO / "notebooks").glob("[0-9]*.py"))[0].name
TOKEN = "mnist8k-test-token"


@contextlib.contextmanager
def lab_server(tmp, root=REPO / "notebooks"):
    """JupyterLab on a free port of 127.0.0.1, for a user without settings of their own; always
    stopped at the end. Yields request(path, body=None, method="GET") -> parsed JSON."""
    port = free_port()
    argv, env = lab_command(["--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                             "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}"],
                            root)  # as root too: lab_command allows it
    env.update(JUPYTER_CONFIG_DIR=str(tmp / "user-config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    log = tmp / "lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def request(path, body=None, method="GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"JupyterLab exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"JupyterLab not up in 90 s:\n{log.read_text()[-3000:]}"
            try:
                request("/api/status")
                break
            except OSError:
                time.sleep(0.5)
        yield request
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The server `make lab` starts, on the repo's notebooks/."""
    with lab_server(tmp_path_factory.mktemp("lab")) as request:
        yield request


def test_a_py_opens_as_a_notebook_by_default(lab):
    s = lab("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    viewers = s["settings"].get("defaultViewers", s["schema"]["properties"]["defaultViewers"]["default"])
    assert viewers.get("python") == "Jupytext Notebook", viewers


def test_no_news_pop_up(lab):
    s = lab("/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert s["settings"].get("fetchNews", s["schema"]["properties"]["fetchNews"]["default"]) == "false"


def test_a_py_in_notebooks_is_served_as_a_notebook(lab):
    model = lab(f"/api/contents/{NOTEBOOK}?type=notebook")
    assert model["type"] == "notebook" and model["format"] == "json"
    cells = model["content"]["cells"]
    assert cells and any("parameters" in c["metadata"].get("tags", []) for c in cells)


def test_saving_writes_the_py_and_its_ipynb_twin(tmp_path):
    root = tmp_path / "notebooks"  # a copy: the test must not write into the repo
    root.mkdir()
    for name in ("jupytext.toml", NOTEBOOK):
        shutil.copy(REPO / "notebooks" / name, root)
    with lab_server(tmp_path, root) as lab:
        model = lab(f"/api/contents/{NOTEBOOK}?type=notebook")
        model["content"]["cells"][0]["source"] += "\n\nEdited in JupyterLab."
        lab(f"/api/contents/{NOTEBOOK}", {"type": "notebook", "format": "json",
                                          "content": model["content"]}, "PUT")
    twin = root / NOTEBOOK.replace(".py", ".ipynb")
    assert "# Edited in JupyterLab." in (root / NOTEBOOK).read_text()
    assert twin.exists() and "Edited in JupyterLab." in twin.read_text()


@pytest.mark.parametrize("uid", [0, 1000])
def test_as_root_the_lab_is_allowed_to_start_and_not_otherwise(monkeypatch, uid):
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    argv, _ = lab_command(["--no-browser"])
    assert ("--allow-root" in argv) == (uid == 0)
    argv, _ = lab_command(["--allow-root"])
    assert argv.count("--allow-root") == 1
