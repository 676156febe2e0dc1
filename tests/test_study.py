"""`python -m lib.study` on a pretend notebook (TINY: seconds a run): the queue, a killed or
interrupted worker's run done again, failed runs recorded, stop-early, stale runs, bad input
refused, workers on one SQLite file. The smoke study of block 3 itself, and many workers on
one real PostgreSQL server: tests/test_study_smoke.py; storage faults: test_study_faults.py."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from lib.study import read_results
from conftest import REPO

SMOKE = REPO / "tests/studies/smoke.toml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same float path in every test run
VOLATILE = {"trial", "seconds", "epoch_seconds", "finished", "host"}

# a notebook that pretends to train: a test of the runner, not of training (seconds per run);
# it can fail, pause, be held until a file exists, and count its runs
TINY = '''# %% tags=["parameters"]
seed = 0
value = 99.0
fail = False
pause = 0
started = ""  # a file: the first run that finds it missing creates it and pauses
hold = ""  # a file: the run creates <hold>.started, then waits until <hold> exists
log = ""  # a file: every run appends "<value> <seed>" to it as it starts
out_dir = "reports"

# %%
import json, os, pathlib, time
if log:
    with open(log, "a") as f:
        f.write(f"{value} {seed}\\n")
if started and not pathlib.Path(started).exists():
    pathlib.Path(started).touch()
    time.sleep(pause)
if hold:
    pathlib.Path(hold + ".started").touch()
    deadline = time.time() + 120
    while not pathlib.Path(hold).exists() and time.time() < deadline:
        time.sleep(0.1)
assert not fail, "deliberate failure"
history = [dict(epoch=e, test_acc=value + seed / 100 + e / 1000, test_loss=0.02, seconds=0.1)
           for e in range(1, 7)]
p = pathlib.Path(os.environ.get("REPORT_STAGING_DIR", out_dir))
p.mkdir(parents=True, exist_ok=True)
(p / "tiny.metrics.json").write_text(json.dumps(dict(
    history=history, model="tiny", params=1, macs=1, device="cpu (test)", cpu_threads=1,
    torch_compile=False)))
'''


def study_cmd(*args, timeout=600, env=ENV):
    return subprocess.run([sys.executable, "-m", "lib.study", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def tiny_study(tmp_path, variants, seeds=(1, 2), name="tiny"):
    """A study `name` of the TINY notebook: {variant: its parameters as TOML}."""
    (tmp_path / "tiny.py").write_text(TINY)
    toml = tmp_path / f"{name}.toml"
    lines = [f'notebook = "{tmp_path / "tiny.py"}"', f"seeds = {list(seeds)}", "[variants]"]
    toml.write_text("\n".join(lines + [f"{k} = {v}" for k, v in variants.items()]) + "\n")
    return toml


def trials(db):
    """(number, state, variant, seed) of every trial in an Optuna SQLite storage."""
    with sqlite3.connect(db) as con:
        rows = con.execute("""select t.number, t.state, a.key, a.value_json from trials t
                              left join trial_user_attributes a on a.trial_id = t.trial_id
                              and a.key in ('variant', 'seed')""").fetchall()
    out = {}
    for number, state, k, v in rows:
        out.setdefault(number, {"state": state})[k] = json.loads(v) if v else None
    return [(n, t["state"], t.get("variant"), t.get("seed")) for n, t in sorted(out.items())]


def comparable(rows):
    return {k: {f: v for f, v in r.items() if f not in VOLATILE} for k, r in rows.items()}


def test_a_row_names_the_kernels_aten_ran():
    """ATEN_CPU_CAPABILITY moves the float path on one machine: the row says which it was."""
    code = "from lib.run import cpu_kind; print(cpu_kind())"
    said = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": "default"}).stdout.strip()
    assert said.endswith("ATen DEFAULT"), said


def test_a_study_with_an_environment_runs_every_notebook_on_that_float_path(tmp_path):
    """[environment] reaches every run's kernel (the row's cpu is what the kernel saw), is in
    the row, and is part of the inputs hash: the same study without it is another run."""
    toml = tiny_study(tmp_path, {"v": "{}"}, seeds=[1])
    (tmp_path / "tiny.py").write_text(TINY.replace(
        "torch_compile=False)))", "torch_compile=False, cpu_kind='kernel saw ' + "
        "os.environ.get('ATEN_CPU_CAPABILITY', '-') + ' ' + os.environ.get('ONEDNN_MAX_CPU_ISA', '-'))))"))
    plain = toml.read_text()
    toml.write_text(plain.replace("[variants]", '[environment]\nATEN_CPU_CAPABILITY = "default"\n'
                                  'ONEDNN_MAX_CPU_ISA = "AVX2"\n[variants]'))
    env = {k: v for k, v in ENV.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    done = study_cmd("run", toml, "--jobs", 1, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ATEN_CPU_CAPABILITY=default; ONEDNN_MAX_CPU_ISA=AVX2; storage" in done.stdout
    [row] = read_results(toml.with_suffix(".jsonl")).values()
    assert row["status"] == "complete" and row["cpu"] == "kernel saw default AVX2", row
    assert row["environment"] == {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    from lib.study import inputs_hash, load
    with_env = load(toml)
    toml.write_text(plain)
    without = load(toml)
    assert row["inputs_sha256"] == inputs_hash(with_env, with_env.variants["v"])
    assert inputs_hash(without, without.variants["v"]) != row["inputs_sha256"]


def test_a_failing_variant_is_recorded_as_failed_while_the_others_complete(tmp_path):
    toml = tiny_study(tmp_path, {"ok": "{}", "bad": "{fail = true}"})
    done = study_cmd("run", toml, "--jobs", "2")
    assert done.returncode != 0
    assert "error: 2 run(s) failed: bad seed 1, bad seed 2" in done.stderr
    rows = read_results(toml.with_suffix(".jsonl"))
    assert {k: r["status"] for k, r in rows.items()} == {
        ("ok", 1): "complete", ("ok", 2): "complete", ("bad", 1): "failed", ("bad", 2): "failed"}
    assert "AssertionError: deliberate failure" in rows[("bad", 1)]["error"]
    assert rows[("ok", 2)]["min_last5"] == pytest.approx(99.0 + 0.02 + 0.002)
    again = study_cmd("run", toml)  # a failure is a result: not rerun unless asked
    assert "2 recorded, 2 failed, 0 enqueued now" in again.stdout
    retry = study_cmd("run", toml, "--retry-failed")
    assert "2 recorded, 0 failed, 2 enqueued now" in retry.stdout and retry.returncode != 0


def test_a_clear_loser_is_stopped_early_and_its_remaining_seeds_are_not_needed(tmp_path):
    toml = tiny_study(tmp_path, {"base": "{}", "loser": "{value = 98.8}", "close": "{value = 98.98}"},
                      seeds=(1, 2, 3, 4))
    toml.write_text(toml.read_text() + "[stop_early]\nafter = 2\nbelow = -0.05\n")
    done = study_cmd("run", toml, "--jobs", "1")
    assert done.returncode == 0, done.stderr
    rows = read_results(toml.with_suffix(".jsonl"))
    assert sorted(k for k in rows if k[0] == "loser") == [("loser", 1), ("loser", 2)]
    assert {s for v, s in rows if v != "loser"} == {1, 2, 3, 4}  # close (-0.02) is not stopped
    assert "10/10 runs complete, 0 failed, 1 variant(s) stopped early" in done.stdout
    assert "loser: stopped after 2 seeds: -0.200 points against base" in done.stdout
    again = study_cmd("run", toml)
    assert "10 recorded, 0 failed, 0 enqueued now, 2 not needed (stopped early)" in again.stdout
    assert again.returncode == 0, again.stderr


def test_stop_early_judges_the_first_seeds_and_needs_an_interval_below_zero(tmp_path):
    from lib.study import inputs_hash, load, stopped

    toml = tiny_study(tmp_path, {"base": "{}", "noisy": "{value = 98.9}", "clear": "{value = 98.8}"},
                      seeds=(1, 2, 3, 4))
    toml.write_text(toml.read_text() + "[stop_early]\nafter = 3\nbelow = -0.05\n")
    study = load(toml)

    def rows(values, stale=()):
        return {(v, s): {"variant": v, "seed": s, "status": "complete", "min_last5": x,
                         "params": study.variants[v],
                         "inputs_sha256": "old" if (v, s) in stale else inputs_hash(study, study.variants[v])}
                for (v, s), x in values.items()}

    base = {("base", s): 99.5 for s in (1, 2, 3, 4)}
    noisy = {("noisy", 1): 99.3, ("noisy", 2): 99.6, ("noisy", 3): 99.3}  # mean -0.1, interval crosses 0
    clear = {("clear", 1): 99.4, ("clear", 2): 99.42, ("clear", 3): 99.41}  # -0.09 +- 0.025
    assert set(stopped(study, rows({**base, **noisy, **clear}))) == {"clear"}
    assert stopped(study, rows({**base, **clear}, stale={("clear", 2)})) == {}  # stale: not counted
    late = {**base, **clear, ("clear", 4): 99.4}
    del late[("clear", 1)]  # seeds 2-4 are not the study's first three
    assert stopped(study, rows(late)) == {}


def test_compare_prints_current_runs_paired_with_the_baseline(tmp_path):
    """`python -m lib.study compare`: only runs of today's code count; the difference is per seed."""
    from lib.study import inputs_hash, load

    toml = tiny_study(tmp_path, {"base": "{}", "other": "{value = 98.0}"}, seeds=(1, 2, 3))
    study = load(toml)
    row = lambda v, s, acc, **kw: {"variant": v, "seed": s, "status": "complete", "min_last5": acc,
                                   "params": study.variants[v], "cpu_threads": 1, "device": "cpu (x)",
                                   "inputs_sha256": inputs_hash(study, study.variants[v]), **kw}
    rows = [row("base", 1, 99.50), row("base", 2, 99.30), row("base", 3, 99.60),
            row("other", 1, 99.40), row("other", 2, 99.25), row("other", 3, 99.0, inputs_sha256="old")]
    toml.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = study_cmd("compare", toml)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "5 complete runs of today's code, of 6 in the grid (1 other rows recorded" in out
    assert re.search(r"other +2 +99\.325 .* -0\.075 \(2 seeds\)", out), out  # seeds 1 and 2 only
    assert "held 99.40 % in each of the last 5 epochs: base 2 of 3, other 1 of 2" in out
    assert "ran on: cpu (x), 1 thread(s), eager" in out
    done = study_cmd("compare", toml, "--baseline", "other")  # the other way round
    assert done.returncode == 0, done.stderr
    assert re.search(r"base +3 +99\.467 .* \+0\.075 \(2 seeds\)", done.stdout), done.stdout
    done = study_cmd("compare", toml, "--baseline", "nope")
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: --baseline 'nope': not a variant of {toml.name}; allowed: base, other"], done.stderr


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_the_queue_follows_the_grid_and_a_stopped_run_is_queued_again_once(tmp_path, request, where):
    """The grid is queued seed by seed (pairs fill first); what waits or runs is not queued
    twice; a run stopped from outside is queued again, behind what waits."""
    import optuna
    from optuna.trial import TrialState

    from lib.runner import enqueue_missing, open_storage
    from lib.study import key, load

    toml = tiny_study(tmp_path, {"a": "{}", "b": "{value = 98.0}"})
    study = load(toml.rename(tmp_path / f"requeue_{where}.toml"))  # a study name of its own
    url = request.getfixturevalue("postgres") if where == "postgresql" else study.default_storage()
    storage = optuna.create_study(study_name=study.name, storage=open_storage(url))
    queue = lambda: [key(t) for t in storage.get_trials(states=(TrialState.WAITING,))]  # noqa: E731
    assert enqueue_missing(study, storage) == (0, 0, 4, 0)
    assert queue() == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert enqueue_missing(study, storage) == (0, 0, 0, 0)
    first = storage.ask()  # a worker takes ("a", 1) and is stopped from outside
    storage.tell(first, state=TrialState.FAIL)
    assert enqueue_missing(study, storage) == (0, 0, 1, 0)
    assert queue() == [("b", 1), ("a", 2), ("b", 2), ("a", 1)]
    storage.ask()  # ("b", 1) running: not queued again
    assert enqueue_missing(study, storage) == (0, 0, 0, 0)
    assert queue() == [("a", 2), ("b", 2), ("a", 1)]


@pytest.mark.parametrize("rule, message", [
    ("after = 1\nbelow = -0.05", "stop_early.after=1 is invalid; allowed: an integer >= 2 and below"),
    ("after = 2\nbelow = 0.1", "stop_early.below=0.1 is invalid; allowed: a number <= 0"),
    ('after = 2\nbelow = -0.1\nvariants = ["nope"]', "stop_early.variants: 'nope' is not a variant"),
])
def test_a_bad_stop_early_rule_is_a_one_line_error(tmp_path, rule, message):
    toml = tiny_study(tmp_path, {"base": "{}", "other": "{value = 98.0}"}, seeds=(1, 2, 3))
    toml.write_text(toml.read_text() + f"[stop_early]\n{rule}\n")
    done = study_cmd("run", toml)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not toml.with_suffix(".jsonl").exists()


def test_changed_parameters_and_changed_code_are_run_again(tmp_path):
    """A variant whose parameters change is a new run; a run whose code changed since (its
    inputs hash) is stale: kept, and run again only with --rerun-stale."""
    toml = tiny_study(tmp_path, {"a": "{value = 98.0}", "b": "{}"}, seeds=[1])
    first = study_cmd("run", toml)
    assert first.returncode == 0, first.stdout + first.stderr  # (failed once in CI: say why)
    toml.write_text(toml.read_text().replace("value = 98.0", "value = 97.0"))
    done = study_cmd("run", toml)
    assert done.returncode == 0 and "1 recorded, 0 failed, 1 enqueued now" in done.stdout, done.stdout
    rows = read_results(toml.with_suffix(".jsonl"))
    assert rows[("a", 1)]["params"] == {"value": 97.0} and rows[("a", 1)]["min_last5"] < 98
    notebook = tmp_path / "tiny.py"
    notebook.write_text(notebook.read_text().replace("assert not fail", "assert not fail  # edited"))
    assert "2 recorded, 0 failed, 0 enqueued now" in study_cmd("run", toml).stdout  # stale, kept
    done = study_cmd("run", toml, "--rerun-stale")
    assert done.returncode == 0 and "0 recorded, 0 failed, 2 enqueued now" in done.stdout, done.stdout
    after = read_results(toml.with_suffix(".jsonl"))
    assert after[("b", 1)]["inputs_sha256"] != rows[("b", 1)]["inputs_sha256"]
    assert after[("b", 1)]["trial"] != rows[("b", 1)]["trial"]
    assert "2/2 runs complete" in done.stdout


def test_a_changed_default_stales_only_the_variants_that_run_with_it(tmp_path):
    """The hash covers what a run computes: the notebook's code and the parameters it runs
    with, not the parameters cell as written, nor the prose."""
    import jupytext
    from lib.study import inputs_hash, load

    toml = tiny_study(tmp_path, {"pinned": "{value = 98.0}", "default": "{}"})
    notebook = tmp_path / "tiny.py"
    before = {v: inputs_hash(load(toml), p) for v, p in load(toml).variants.items()}
    nb = jupytext.read(notebook)
    nb.cells.insert(1, jupytext.reads("# %% [markdown]\n# prose", fmt="py:percent").cells[0])
    jupytext.write(nb, notebook, fmt="py:percent")
    assert {v: inputs_hash(load(toml), p) for v, p in load(toml).variants.items()} == before
    notebook.write_text(notebook.read_text().replace("value = 99.0", "value = 99.5"))
    after = {v: inputs_hash(load(toml), p) for v, p in load(toml).variants.items()}
    assert after["pinned"] == before["pinned"] and after["default"] != before["default"]
    notebook.write_text(notebook.read_text().replace("assert not fail", "assert not fail  # edited"))
    assert inputs_hash(load(toml), {"value": 98.0}) != before["pinned"]


def test_a_row_says_the_tree_as_its_run_started_not_as_its_worker_did(tmp_path):
    """One worker, two runs; the first run leaves an untracked file under lib/ (of a stand-in
    repository: GIT_DIR points git there): the first row is clean, the second dirty."""
    tree = tmp_path / "tree"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib/kept.py").write_text("")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tree)]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "a tree"]):
        subprocess.run(git + args, check=True)
    toml = tiny_study(tmp_path, {"a": f'{{started = "{tree / "lib/new.py"}"}}'})
    env = {**ENV, "GIT_DIR": str(tree / ".git"), "GIT_WORK_TREE": str(tree)}
    done = study_cmd("run", toml, "--jobs", 1, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_results(toml.with_suffix(".jsonl"))
    assert [rows[("a", s)]["git_dirty"] for s in (1, 2)] == [False, True]


@pytest.mark.parametrize("args, message", [
    (["--from", "no-such-commit"], "--from 'no-such-commit': not a commit of this repository"),
    (["--from", "HEAD", "--rename", "Model_3=nope"], "--rename Model_3=nope: not a variant of smoke.toml"),
    (["--from", "HEAD", "--rename", "Model_3"], "--rename 'Model_3': allowed: OLD=NEW"),
])
def test_rekey_refuses_bad_input_in_one_line(args, message):
    before = (REPO / "tests/studies/smoke.jsonl").read_bytes()
    done = subprocess.run([sys.executable, "-m", "lib.rekey", "tests/studies/smoke.toml", *args],
                          cwd=REPO, capture_output=True, text=True, env=ENV)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(f"error: {message}")
    assert (REPO / "tests/studies/smoke.jsonl").read_bytes() == before


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_killed_or_interrupted_run_is_run_again_and_nothing_is_half_written(tmp_path, how):
    """SIGKILL of the whole process group: a lost machine (its trial stays RUNNING until its
    heartbeat is stale); SIGINT: Ctrl-C (its trial ends FAIL without a result)."""
    started = tmp_path / "started"
    toml = tiny_study(tmp_path, {"slow": f'{{pause = 120, started = "{started}"}}', "fast": "{}"},
                      seeds=[1])
    # SIGINT as in a terminal: a test run started in the background (`make test &`) hands
    # its children SIGINT ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "lib.study", "run", str(toml), "--jobs", "1",
                             "--heartbeat", "1"], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while not started.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert started.exists(), "the slow run never started"
    time.sleep(1)
    os.killpg(proc.pid, getattr(signal, how))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    if how == "SIGINT":  # one line: the interrupted kernel's complaints are in its log file
        assert err.strip().splitlines() == [
            "interrupted: completed runs are recorded; run the command again to resume"], err
    results = toml.with_suffix(".jsonl")
    if results.exists():  # only whole rows, and none for the stopped run
        assert ("slow", 1) not in read_results(results)
    assert not list(tmp_path.glob("build/tiny/*.ipynb"))  # no executed notebook of it either
    done = study_cmd("run", toml, "--jobs", "1", "--heartbeat", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_results(results)
    assert sorted(rows) == [("fast", 1), ("slow", 1)]
    assert all(r["status"] == "complete" for r in rows.values())
    states = [(state, variant) for _, state, variant, _ in trials(tmp_path / "build/tiny.db")]
    assert states.count(("COMPLETE", "slow")) == 1 and ("FAIL", "slow") in states


@pytest.mark.parametrize("change, message", [
    ('{valeu = 2}', "variant 'v': unknown parameter 'valeu'; allowed: value, fail, pause, started, hold, log"),
    ('{seed = 2}', "variant 'v': unknown parameter 'seed'"),
])
def test_bad_variant_parameters_are_refused_before_anything_runs(tmp_path, change, message):
    toml = tiny_study(tmp_path, {"v": change})
    done = study_cmd("run", toml)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not toml.with_suffix(".jsonl").exists() and not (tmp_path / "build").exists()


@pytest.mark.parametrize("edit, message", [
    (("[variants]", '[variants]\nnope = {model_name = "Model_9"}'),
     "variant 'nope': parameter model_name='Model_9' is unknown; allowed: Model_1, Model_2, Model_3"),
    (("seeds = [1, 2]", "seeds = []"), "seeds=[] is invalid; allowed: a non-empty list"),
    (("seeds = [1, 2]", "seeds = [1, 2]\nsedes = [3]"), "unknown key(s) sedes"),
    (("[variants]", '[environment]\nOMP_NUM_THREADS = "1"\n[variants]'),
     "environment: 'OMP_NUM_THREADS' is not a float-path variable; allowed: ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA"),
    (("[variants]", '[environment]\nATEN_CPU_CAPABILITY = "AVX2"\n[variants]'),
     "environment: ATEN_CPU_CAPABILITY='AVX2' is invalid; allowed: default, avx2, avx512"),
    (("seeds = [1, 2]", 'seeds = [1, 2]\nenvironment = "avx2"'), "environment='avx2' is invalid; allowed: a table"),
])
def test_bad_study_definitions_are_one_line_errors(tmp_path, edit, message):
    toml = tmp_path / "smoke.toml"
    toml.write_text(SMOKE.read_text().replace(*edit))
    done = study_cmd("run", toml)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not toml.with_suffix(".jsonl").exists()


TAKE = '''import sys, optuna
from optuna.trial import TrialState
from lib.runner import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="race", storage=open_storage(sys.argv[1]))
while TrialState.WAITING in [t.state for t in study.get_trials(deepcopy=False)]:
    study.optimize(lambda t: print(t.user_attrs.get("n"), flush=True) or 0.0, n_trials=1)
'''


def test_workers_on_one_sqlite_file_never_take_the_same_trial(tmp_path):
    """SQLite has no row locks: without a transaction that holds the write lock from its start,
    two workers both read a trial as waiting and both run it (it happened: one run deleted
    the other's staging folder). Four processes empty a queue of 120 trials: each once."""
    import optuna
    from lib.runner import open_storage

    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(study_name="race", storage=open_storage(url))
    for n in range(120):
        study.enqueue_trial({}, user_attrs={"n": n}, skip_if_exists=False)
    workers = [subprocess.Popen([sys.executable, "-c", TAKE, url], cwd=REPO, env=ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outs
    taken = [line for out, _ in outs for line in out.split() if line != "None"]  # None: queue empty
    assert sorted(taken, key=int) == [str(n) for n in range(120)]
