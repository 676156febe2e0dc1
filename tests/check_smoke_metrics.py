"""The smoke runs' training figures, within a tolerance of the reference run's.

Run by `make nbval` right after nbval has re-executed tests/reference/*.ipynb (it is named so
that a plain `pytest tests` does not collect it): each notebook wrote its metrics to the
`out_dir` of its injected-parameters cell, and this compares them with
tests/reference/<notebook>.metrics.json, written by `make reference` in the same run as the
reference notebook.

Exact: what does not depend on float arithmetic (model, parameter and MAC counts, epochs, test
size, seeds, learning rates). Within a tolerance: losses and accuracies. The smoke runs train
on 4,000 images for one epoch and test on 1,000, early on the learning curve where a little
rounding moves a few test digits: between thread counts and kernel choices we measured
differences of up to ACC_MEASURED percentage points and LOSS_MEASURED in loss (see
docs/tests.md), so the tolerances are over twice that — and still far below what a real
regression moves (a model that does not train sits near 10 %, the smoke runs reach 60-78 %).
"""
import ast
import json
import time
from pathlib import Path

import nbformat
import pytest

from lib.index import runs_of
from lib.pipeline import REPO

REFERENCE = REPO / "tests" / "reference"
# the notebooks that train; a study's notebook (05_recipe) only reads committed records, and
# nbval compares all of its outputs exactly
NOTEBOOKS = sorted(p.stem for p in REFERENCE.glob("*.ipynb")
                   if "study" not in json.loads((REFERENCE / f"{p.stem}.metrics.json").read_text()))
COLLECTED_AT = time.time()  # before nbval executes anything: older metrics are not this run's
ACC_MEASURED = 3.4          # percentage points, the largest difference seen across float paths
LOSS_MEASURED = 0.07        # the same, for mean losses of 1.0-2.0
ACC_TOLERANCE = 8.0         # percentage points (80 of the 1,000 test images)
LOSS_TOLERANCE = 0.2        # absolute
EXACT = ("model", "params", "macs", "epochs", "test_size", "seed", "full_run")


def injected_out_dir(stem):
    """Where the reference notebook's re-execution writes its metrics."""
    nb = nbformat.read(REFERENCE / f"{stem}.ipynb", 4)
    cell = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    values = {t.id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body
              if isinstance(node, ast.Assign) for t in node.targets}
    out = Path(values["out_dir"])
    return out if out.is_absolute() else REPO / out


def compare(reference, fresh):
    """The differences between two metrics records that exceed what float rounding explains."""
    problems = [f"{key}: {fresh.get(key)!r} != reference {reference.get(key)!r}"
                for key in EXACT if reference.get(key) != fresh.get(key)]
    ref_h, new_h = dict(runs_of(reference)), dict(runs_of(fresh))
    if set(ref_h) != set(new_h):
        return problems + [f"seeds {sorted(new_h)} != reference {sorted(ref_h)}"]
    for seed, ref_rows in ref_h.items():
        if len(ref_rows) != len(new_h[seed]):
            problems.append(f"seed {seed}: {len(new_h[seed])} epochs != reference {len(ref_rows)}")
            continue
        for ref, new in zip(ref_rows, new_h[seed]):
            where = f"seed {seed} epoch {ref['epoch']}"
            if new["lr"] != pytest.approx(ref["lr"], rel=1e-9):
                problems.append(f"{where}: lr {new['lr']} != reference {ref['lr']}")
            for key, tol in (("train_acc", ACC_TOLERANCE), ("test_acc", ACC_TOLERANCE),
                             ("train_loss", LOSS_TOLERANCE), ("test_loss", LOSS_TOLERANCE)):
                if abs(new[key] - ref[key]) > tol:
                    problems.append(f"{where}: {key} {new[key]:.4f} differs from the reference "
                                    f"{ref[key]:.4f} by more than {tol}")
    return problems


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_smoke_metrics_agree_with_the_reference_within_tolerance(stem):
    path = injected_out_dir(stem) / f"{stem}.metrics.json"
    assert path.exists() and path.stat().st_mtime >= COLLECTED_AT, \
        f"{path} was not written by this run: run this file after nbval (`make nbval`)"
    reference = REFERENCE / f"{stem}.metrics.json"
    assert reference.exists(), f"{reference} is missing: run `make reference`"
    problems = compare(json.loads(reference.read_text()),
                       json.loads(path.read_text()))
    assert not problems, f"{stem}: " + "; ".join(problems)


def test_the_comparison_fails_on_a_broken_run():
    reference = json.loads((REFERENCE / "03_final.metrics.json").read_text())
    broken = json.loads(json.dumps(reference))
    for rows in dict(runs_of(broken)).values():
        rows[-1]["test_acc"] -= ACC_TOLERANCE + 0.1
    assert compare(reference, reference) == []
    assert "test_acc" in " ".join(compare(reference, broken))
    assert "params" in " ".join(compare(reference, {**reference, "params": 7000}))
