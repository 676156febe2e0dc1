"""The Makefile: PY=... runs in an environment the user has; otherwise .venv is built."""
import shutil
import subprocess

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make here")


def dry_run(tmp_path, *args):
    """`make -n ARGS` in a copy of the repo's make inputs, with no .venv (a fresh clone)."""
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path)
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    done = subprocess.run(["make", "-n", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("target", ["reports", "test", "lab"])
def test_py_uses_the_given_environment_and_builds_no_venv(tmp_path, target):
    out = dry_run(tmp_path, target, "PY=/opt/conda/envs/mnist8k/bin/python")
    assert ".venv" not in out and "pip install" not in out, out
    assert "/opt/conda/envs/mnist8k/bin/python -m " in out


def test_without_py_the_venv_is_built_first(tmp_path):
    out = dry_run(tmp_path, "reports")
    assert "python3 -m venv .venv" in out
    assert ".venv/bin/python -m lib.pipeline run notebooks/03_final.py" in out


def test_a_missed_target_is_a_written_report_a_marked_index_and_a_nonzero_exit(tmp_path):
    """End to end through `make reports`: block 3 on a tiny run (500 images, one epoch),
    which the test-only CHECK_TARGETS_ON_ANY_RUN=1 treats as a full run, so it misses."""
    import json
    import os
    import sys
    out = tmp_path / "reports"
    args = ["make", "--no-print-directory", "reports", f"PY={sys.executable}",
            "NOTEBOOKS=notebooks/03_final.py", f"REPORTS_DIR={out}", "EPOCHS=1", "DEVICE=cpu",
            "PARAMS=-p train_limit 500 -p test_limit 200 -p torch_compile False"]
    env = {**os.environ, "CHECK_TARGETS_ON_ANY_RUN": "1", "OMP_NUM_THREADS": "1"}
    for attempt in ("first run", "up to date"):
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode != 0, (attempt, done.stdout, done.stderr)
        assert f"targets missed: 03_final (see {out / '03_final'}.html)" in done.stderr, attempt
    assert "up to date" in done.stdout
    assert {"03_final.ipynb", "03_final.html", "03_final.metrics.json", "README.md",
            "index.html"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "03_final.metrics.json").read_text())
    assert metrics["target_met"] is False and metrics["full_run"] is True
    assert "TARGETS MISSED: each of the last" in (out / "03_final.ipynb").read_text()
    assert "**MISSED**" in (out / "README.md").read_text()
    assert ">MISSED</strong>" in (out / "index.html").read_text()
    assert not (out / "03_final.failed.ipynb").exists()
