"""The Makefile: PY=... runs in an environment the user has; otherwise .venv is built."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
