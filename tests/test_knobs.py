"""Every notebook with the knobs a user turns, not only the defaults the references ran with:
another seed, another model, compiling off, seeds no study holds, a study with no record.
Each runs headless on smoke data, its targets checked as on a full run (so the sections that
only a full run shows run too), and must finish with no failed cell and no `nan` or `None`
where a figure should stand."""
import re
import shutil

import nbformat
import pytest

from lib.pipeline import SMOKE_RUN, execute
from conftest import REPO

SMOKE = {**SMOKE_RUN, "train_limit": 2000, "test_limit": 500}  # the smoke run on less data: the same paths, in less time
SMOKE_STUDY = "tests/studies/smoke.toml"
NO_FIGURE = re.compile(r"\b(nan|NaN|None)\b")


def empty_study(tmp_path):
    """A copy of the smoke study's definition with no record at all."""
    toml = tmp_path / "no_record" / "fresh.toml"
    toml.parent.mkdir()
    shutil.copy(REPO / SMOKE_STUDY, toml)
    return str(toml)


KNOBS = {  # id: (notebook, parameters beyond smoke data)
    "01-seed-7": ("01_seed_model", {"seed": 7}),
    "01-model-2": ("01_seed_model", {"model_name": "Model_2", "dropout": 0.0}),
    "02-seed-3-model-3": ("02_lean", {"seed": 3, "model_name": "Model_3"}),
    "03-seed-5-smallest": ("03_final", {"seed": 5, "model_name": "Frontier_sep_931"}),
    "03-sgd-no-average-shifted": ("03_final", {"model_name": "Woolly_3762", "muon_lr": 0.0, "ema_decay": 0.0,
                                       "bn_recompute": 0, "rotation": 0.0,
                                       "shift": 2.0}),
    "04-seeds-no-study-holds": ("04_seeds", {"seeds": [21, 22], "ema_decay": 0.9, "study": SMOKE_STUDY,
                                             "train_limit": 300, "test_limit": 200}),
    "04-seeds-half-held": ("04_seeds", {"seeds": [2, 23], "ema_decay": 0.9, "study": SMOKE_STUDY,
                                        "train_limit": 300, "test_limit": 200}),
    "04-other-model": ("04_seeds", {"seeds": [1], "model_name": "Frontier_4530", "study": SMOKE_STUDY}),
    "05-no-record": ("05_recipe", {"study": None}),
    "06-no-record": ("06_frontier", {"study": None}),
    "06-smoke-study": ("06_frontier", {"study": SMOKE_STUDY}),
}


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_a_notebook_runs_with_the_knobs_a_user_turns(knob, tmp_path, monkeypatch):
    stem, params = KNOBS[knob]
    params = dict(params)
    if "study" in params and params["study"] is None:
        params["study"] = empty_study(tmp_path)
    trains = "train_limit" in (REPO / "notebooks" / f"{stem}.py").read_text()
    if trains:
        params = {**SMOKE, **params}
    monkeypatch.setenv("CHECK_TARGETS_ON_ANY_RUN", "1")  # the full run's paths, on smoke data
    for name in ("REPORT_STAGING_DIR", "TQDM_DISABLE"):  # execute() sets them for its kernel:
        monkeypatch.setenv(name, "")                      # gone again after this test
    execute(REPO / "notebooks" / f"{stem}.py", tmp_path, params, render=False, log_output=False)
    nb = nbformat.read(tmp_path / f"{stem}.ipynb", 4)
    for cell in nb.cells:
        if "run.info()" in cell.source:  # the parameters as given: None there means all (images, epochs)
            continue
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{knob}: {out.get('ename')}: {out.get('evalue')}"
            texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items()
                                             if k == "text/plain" and isinstance(v, str)]
            for text in texts:
                hit = NO_FIGURE.search(text)
                assert not hit, f"{knob}: a missing figure in cell\n{cell.source[:300]}\n...: " \
                                f"{text[max(0, hit.start() - 200):hit.end() + 100]}"
