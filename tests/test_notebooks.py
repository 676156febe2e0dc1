"""The notebooks: one versioned side (.py), references in step, the parameters every block has."""
import subprocess

import jupytext
import nbformat
import pytest

from lib.pipeline import notebook_parameters
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.py"))
# the notebooks that train (blocks, the seeds study); the others only read a study's record
TRAINING = [p for p in NOTEBOOKS if "from lib.train import" in p.read_text()]
COMMON = {"epochs", "batch_size", "lr", "device", "train_limit", "test_limit", "out_dir"}


def sources(nb):
    """(cell type, source) of every cell but papermill's injected-parameters cell."""
    return [(c.cell_type, c.source) for c in nb.cells
            if "injected-parameters" not in c.metadata.get("tags", [])]


def test_only_the_py_side_is_versioned():
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert tracked, "not a git checkout?"
    assert not [t for t in tracked if t.endswith(".ipynb")], "commit the .py, not the .ipynb"
    assert 'formats = "ipynb,py:percent"' in (REPO / "notebooks/jupytext.toml").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_pairing_round_trips(path):
    text = path.read_text()
    assert jupytext.writes(jupytext.reads(jupytext.writes(jupytext.reads(text), "ipynb"), "ipynb"),
                           "py:percent") == text


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_parameters_cell_has_the_common_parameters(path):
    names = set(notebook_parameters(jupytext.read(path)))
    assert COMMON <= names and ({"seed"} <= names or {"seeds"} <= names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbval_reference_is_in_step_with_the_notebook(path):
    ref = REPO / "tests/reference" / f"{path.stem}.ipynb"
    assert ref.exists(), f"{ref} is missing: run `make reference`"
    assert sources(nbformat.read(ref, 4)) == sources(jupytext.read(path)), \
        f"{ref.name} is stale: {path.name} changed; run `make reference` and review the diff"
    injected = [c for c in nbformat.read(ref, 4).cells if "injected-parameters" in c.metadata.get("tags", [])]
    smoke = "train_limit = 4000" if path in TRAINING else 'study = "tests/studies/smoke.toml"'
    assert len(injected) == 1 and smoke in injected[0].source
