"""The smoke study (tests/studies/smoke.toml: block 3's notebook, two models, two seeds, tiny
runs), run for real: `make study` records every run once, a second run and a fresh storage
run nothing, two workers on a real PostgreSQL server take each trial once, `lib.rekey`
proves a carry-over by smoke runs. Its own file: the study it runs once (the `smoke`
fixture) is the longest setup of the suite, and pytest-xdist (`--dist loadfile`) runs it
beside test_study.py's runs of a pretend notebook, not after them."""
import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from lib.study import read_results
from test_study import ENV, SMOKE, comparable, study_cmd, trials
from conftest import REPO


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`make study` of the smoke study (2 variants x 2 seeds of block 3, tiny runs), file storage."""
    base = tmp_path_factory.mktemp("smoke")
    toml = base / "smoke.toml"
    shutil.copy(SMOKE, toml)
    done = subprocess.run(["make", "--no-print-directory", "study", f"PY={sys.executable}",
                           f"STUDY={toml}", "JOBS=2"], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    return toml, done


def test_make_study_records_every_variant_and_seed_exactly_once(smoke):
    toml, done = smoke
    lines = toml.with_suffix(".jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert sorted((r["variant"], r["seed"]) for r in rows) == [
        ("Model_3", 1), ("Model_3", 2), ("stride2_first_conv", 1), ("stride2_first_conv", 2)]
    for r in rows:
        assert r["status"] == "complete" and len(r["test_acc"]) == 1 == len(r["test_loss"])
        assert r["min_last5"] == r["test_acc"][-1] and 0 <= r["min_last5"] <= 100
        assert r["params"]["train_limit"] == 300 and r["cpu_threads"] == 1
        assert re.fullmatch(r"(family \d+ model \d+, )?ATen [A-Z0-9_]+", r["cpu"]), r["cpu"]
        for key in ("device", "torch", "git_commit", "git_dirty", "inputs_sha256", "seconds",
                    "n_params", "notebook"):
            assert key in r, key
    assert {r["model"] for r in rows} == {"Model_3", "Model_3_stride2"}
    assert "[smoke] 4/4 runs complete, 0 failed" in done.stdout
    # (a worker that finds the queue emptied under it makes a trial it prunes at once)
    assert [t[1] for t in trials(toml.parent / "build/smoke.db") if t[1] != "PRUNED"] == ["COMPLETE"] * 4
    assert len(list((toml.parent / "build/smoke").glob("*-seed*.ipynb"))) == 4  # executed notebooks


def test_a_second_invocation_runs_nothing(smoke):
    toml, _ = smoke
    before = toml.with_suffix(".jsonl").read_bytes()
    done = study_cmd("run", toml, "--jobs", "2")
    assert done.returncode == 0, done.stderr
    assert "4 recorded, 0 failed, 0 enqueued now; nothing to run; storage" in done.stdout  # no worker
    assert toml.with_suffix(".jsonl").read_bytes() == before
    assert len([t for t in trials(toml.parent / "build/smoke.db") if t[1] != "PRUNED"]) == 4


def test_a_fresh_storage_skips_what_the_committed_results_hold(smoke, tmp_path):
    toml, _ = smoke
    copy = tmp_path / "smoke.toml"
    shutil.copy(toml, copy)
    shutil.copy(toml.with_suffix(".jsonl"), copy.with_suffix(".jsonl"))
    done = study_cmd("run", copy)
    assert done.returncode == 0 and "4 recorded, 0 failed, 0 enqueued now" in done.stdout


def test_rekey_carries_only_the_rows_whose_smoke_runs_are_equal():
    """`lib.rekey` from this commit: block 3's smoke run at HEAD and today is the same, so its
    rows carry over; the stride-2 model's smoke run is not block 3's, so nothing is carried
    to block 3 from it (a dry run: the committed record is not touched)."""
    from lib.pipeline import SMOKE_RUN
    from lib.rekey import rekey

    said = []
    smaller = {**SMOKE_RUN, "train_limit": 1000, "test_limit": 200}  # the same proof, in less time
    counts = rekey("tests/studies/smoke.toml", "HEAD", {"stride2_first_conv": "Model_3"},
                   dry_run=True, log=said.append, smoke=smaller)
    assert counts == {"Model_3": 2}, said
    assert any("stride2_first_conv -> Model_3" in line and "DIFFER" in line for line in said), said
    assert any(re.search(r"Model_3 -> Model_3 +smoke runs equal; 2 rows", line) for line in said), said


def test_an_unknown_study_and_an_unreachable_storage_are_one_line_errors(smoke):
    toml, _ = smoke
    before = toml.with_suffix(".jsonl").read_bytes()
    done = study_cmd("run", "no_such_study")
    assert done.returncode != 0 and "study 'no_such_study' not found" in done.stderr
    assert re.search(r"known studies: (\w+, )*recipe\b", done.stderr), done.stderr
    done = study_cmd("run", toml, "--storage", "postgresql://nobody@127.0.0.1:9/none")
    assert done.returncode != 0, done.stdout
    assert done.stderr.startswith("error: storage 'postgresql://nobody@127.0.0.1:9/none' cannot be used:")
    assert len(done.stderr.strip().splitlines()) == 1
    assert toml.with_suffix(".jsonl").read_bytes() == before


def test_two_workers_on_a_real_postgresql_server_run_each_trial_once(smoke, postgres, tmp_path):
    """Two `run` commands (as on two machines), one worker each, on one PostgreSQL database:
    every trial runs once, none is lost, and the results equal the file storage's."""
    toml = tmp_path / "smoke.toml"
    shutil.copy(SMOKE, toml)
    cmd = [sys.executable, "-m", "lib.study", "run", str(toml), "--jobs", "1", "--storage", postgres]
    first = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 120  # the second starts once the first has enqueued the grid
    while time.time() < deadline and len(_trial_states(postgres)) < 4:
        time.sleep(0.5)
    second = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    outs = [p.communicate(timeout=900) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert "0 enqueued now" in outs[1][0]
    finished = [line for out, _ in outs for line in out.splitlines()
                if re.search(r"^\[smoke\] \d+/\d+ done, \d+ to go · ", line)]  # a progress line per run
    assert len(finished) == 4, outs
    states = [t for t in _trial_states(postgres) if t[0] != "PRUNED"]
    assert sorted(states) == sorted([("COMPLETE", v, s) for v in ("Model_3", "stride2_first_conv")
                                     for s in (1, 2)])
    rows = read_results(toml.with_suffix(".jsonl"))
    assert comparable(rows) == comparable(read_results(smoke[0].with_suffix(".jsonl")))


def _trial_states(url):
    import optuna
    from lib.runner import open_storage
    try:
        study = optuna.load_study(study_name="smoke", storage=open_storage(url))
    except KeyError:  # not created yet
        return []
    return [(t.state.name, t.user_attrs.get("variant"), t.user_attrs.get("seed"))
            for t in study.get_trials(deepcopy=False)]
