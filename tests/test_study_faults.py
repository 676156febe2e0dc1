"""`python -m lib.study` when things go wrong around it: a corrupt results file, the storage
going away mid-study (a real PostgreSQL server stopped and started again), several `run`s
started at once on a new study, and a storage password kept off every command line."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lib.runner
import lib.study
from lib.study import read_results
from test_study import ENV, REPO, study_cmd, tiny_study

def fresh_database(url, name):
    """A new, empty database on the server of `url`; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"create database {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"


def complete_trials(url, name):
    """(variant, seed) of every COMPLETE trial of study `name` in the storage at `url`."""
    import optuna
    from optuna.trial import TrialState
    from lib.runner import open_storage
    from lib.study import key

    study = optuna.load_study(study_name=name, storage=open_storage(url))
    return sorted(key(t) for t in study.get_trials(states=(TrialState.COMPLETE,)))


def result_keys(results):
    """(variant, seed) of every line of a results file, as written (duplicates kept)."""
    return sorted((r["variant"], r["seed"]) for r in map(json.loads, results.read_text().splitlines()))


def wait_for(condition, seconds, what):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, what
        time.sleep(0.2)


# --- a corrupt results file ------------------------------------------------------------------
@pytest.mark.parametrize("bad, says", [('{"study": "tiny", "variant": "a", "se', "not a JSON row"),
                                        ("merged by hand", "not a JSON row"),
                                        ('["a", 1]', "not a row of a study")])
def test_a_corrupt_results_line_is_a_one_line_error_naming_it_and_the_file_is_kept(tmp_path, bad, says):
    toml = tiny_study(tmp_path, {"a": "{}", "b": "{value = 98.0}"}, seeds=[1])
    row = lambda v: json.dumps({"variant": v, "seed": 1, "status": "complete", "params": {},  # noqa: E731
                                "min_last5": 99.0, "inputs_sha256": "old"})
    results = toml.with_suffix(".jsonl")
    results.write_text("\n".join([row("a"), "", bad, row("b")]) + "\n")
    before = results.read_bytes()
    for command in ("run", "compare"):
        done = study_cmd(command, toml)
        assert done.returncode != 0, done.stdout
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert re.match(rf"error: {re.escape(str(results))} line 3: {says}\b.*; fix or remove that line",
                        done.stderr), done.stderr
        assert results.read_bytes() == before


# --- the storage going away ------------------------------------------------------------------
def test_the_storage_going_away_mid_study_is_one_line_and_the_same_command_resumes(tmp_path, postgres_server):
    """PostgreSQL stopped while one run holds and one is recorded: the workers stop, `run`
    says so in one line, nothing recorded is lost and the held run, finished while the
    server was down, is recorded too; with the server down `run` refuses in one line; once
    it is up again the same command completes the study, each run once."""
    hold, log = tmp_path / "release", tmp_path / "runs.log"
    toml = tiny_study(tmp_path, {"slow": f'{{hold = "{hold}", log = "{log}"}}',
                                 "fast": f'{{value = 98.0, log = "{log}"}}'})
    results, url = toml.with_suffix(".jsonl"), postgres_server.url
    cmd = ["run", toml, "--jobs", "2", "--heartbeat", "1", "--storage", url]
    proc = subprocess.Popen([sys.executable, "-m", "lib.study", *map(str, cmd)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: Path(f"{hold}.started").exists() and results.exists(), 120,
             "no run was recorded while the slow one held")
    recorded = read_results(results)
    postgres_server.stop()
    time.sleep(3)  # the held run's heartbeats (1 s) meet the server down
    hold.touch()  # then it ends, the server still down
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == lib.runner.LOST, out + err
    said = err.strip().splitlines()  # the kernels' own logs are in files, not here
    assert "Traceback" not in err and len(said) <= 3, err  # 2 workers, then `run`
    assert all(line.startswith("[tiny] a worker stopped: storage went away (") for line in said[:-1]), err
    assert re.fullmatch(rf"error: storage {re.escape(url)} went away \(.+\): completed runs are recorded "
                        rf"in {re.escape(str(results))}; run the same command again to resume", said[-1]), err
    rows = read_results(results)
    assert all(rows[k] == r for k, r in recorded.items())  # nothing recorded is lost
    assert rows[("slow", 1)]["status"] == "complete"  # finished with the server down: kept
    held_trial = rows[("slow", 1)]["trial"]

    before = results.read_bytes()
    down = study_cmd(*cmd, timeout=120)
    assert down.returncode != 0 and len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert down.stderr.startswith(f"error: storage '{url}' cannot be used: connection failed"), down.stderr
    assert "is the server running" in down.stderr and results.read_bytes() == before

    postgres_server.start()
    done = study_cmd(*cmd, timeout=240)  # what is left is a run or two of seconds: a wait past this is a hang
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    grid = [("fast", 1), ("fast", 2), ("slow", 1), ("slow", 2)]
    assert result_keys(results) == grid
    rows = read_results(results)
    assert all(r["status"] == "complete" for r in rows.values())
    assert rows[("slow", 1)]["trial"] == held_trial  # not run again
    assert sorted(log.read_text().splitlines()) == ["98.0 1", "98.0 2", "99.0 1", "99.0 2"]  # each ran once
    assert complete_trials(url, "tiny") == grid  # the held run is complete in the storage too


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_trials_left_running_by_a_worker_that_lost_the_storage_at_once_are_run_again(tmp_path, request, where):
    """A worker that dies (or loses the storage) as it takes a trial leaves it running with
    no heartbeat from Optuna's thread, which Optuna never counts as stale: taken and no more,
    taken and marked as the worker's (`take`), taken past the end of the queue (no run of
    the grid), or taken as the retry of a stale trial. The next `run` must fail them and run
    the grid's again, not wait forever."""
    import optuna

    toml = tiny_study(tmp_path, {"a": "{}"}, seeds=[1, 2], name=f"orphan_{where}")
    url = fresh_database(request.getfixturevalue("postgres"), f"orphan_{os.getpid()}") \
        if where == "postgresql" else f"sqlite:///{tmp_path / 'orphan.db'}"
    study = lib.study.load(toml)
    storage = lib.runner.open_storage(url, heartbeat=1)
    taken = optuna.create_study(study_name=study.name, storage=storage, direction="maximize")
    lib.runner.enqueue_missing(study, taken)
    without_heartbeats = optuna.storages.RDBStorage(storage.url)  # as a worker whose beats never came
    died = optuna.load_study(study_name=study.name, storage=without_heartbeats)
    asked, marked, beyond = died.ask(), died.ask(), died.ask()
    lib.runner.take(marked, storage)
    assert (asked.user_attrs["seed"], marked.user_attrs["seed"], "variant" in beyond.user_attrs) == (1, 2, False)
    time.sleep(6)  # past the grace period, 5 heartbeats of 1 s
    optuna.storages.fail_stale_trials(taken)  # the marked one, whose beat is stale: enqueued again
    retried = died.ask()
    assert retried.user_attrs == {k: marked.user_attrs[k] for k in ("variant", "seed", "params")}  # no mark
    done = study_cmd("run", toml, "--jobs", 1, "--heartbeat", 1, "--storage", url, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_results(toml.with_suffix(".jsonl"))
    assert sorted(rows) == [("a", 1), ("a", 2)] and all(r["status"] == "complete" for r in rows.values())
    states = {t.number: t.state for t in taken.get_trials(deepcopy=False)}
    assert [states[t.number] for t in (asked, marked, beyond, retried)] == [optuna.trial.TrialState.FAIL] * 4


# --- several first starts at once ------------------------------------------------------------
AT_ONCE = "import sys, time; import lib.study; time.sleep(max(0, float(sys.argv[1]) - time.time())); " \
          "lib.study.main(sys.argv[2:])"


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_runs_started_at_the_same_moment_on_a_new_study_all_proceed(tmp_path, request, where):
    """Three `run`s of a new study at once (imports done, then released at one instant): none
    dies of another creating the same tables; each run of the grid is recorded once."""
    toml = tiny_study(tmp_path, {"a": "{}", "b": "{value = 98.0}"}, seeds=[1], name=f"at_once_{where}")
    url = fresh_database(request.getfixturevalue("postgres"), f"at_once_{os.getpid()}") \
        if where == "postgresql" else f"sqlite:///{tmp_path / 'at_once.db'}"
    at = str(time.time() + 8)
    procs = [subprocess.Popen([sys.executable, "-c", AT_ONCE, at, "run", str(toml), "--jobs", "1",
                               "--storage", url], cwd=REPO, env=ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    grid = [("a", 1), ("b", 1)]
    assert result_keys(toml.with_suffix(".jsonl")) == grid
    assert complete_trials(url, toml.stem) == grid


# --- a password in the storage URL -----------------------------------------------------------
def descendants(pid):
    """{pid: command line} of the processes below `pid` now."""
    parent, cmdline = {}, {}
    for proc in Path("/proc").iterdir():
        try:
            parent[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (ValueError, OSError, IndexError):
            continue
    below, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for child, up in parent.items():
            if up == p and child not in below:
                below[child] = cmdline.get(child, "")
                todo.append(child)
    return below


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:p@h/db", "postgresql://u@h/db"),
    ("postgresql://u:p@ss@h:5432/db", "postgresql://u@h:5432/db"),  # an @ in the password
    ("postgresql://u:@h/db", "postgresql://u@h/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql+psycopg://u:p@h/db?password=x&y=1", "postgresql+psycopg://u@h/db?password=***&y=1"),
    ("sqlite:///a@b/c.db", "sqlite:///a@b/c.db"),  # a path, not credentials
])
def test_a_storage_url_is_shown_without_its_password(url, shown):
    assert lib.runner.safe(url) == shown


def test_a_storage_password_is_on_no_command_line_and_in_no_printed_line(tmp_path, postgres):
    """make study STORAGE=postgresql://user:password@...: the recipe line make echoes, `run`
    and every worker carry no password (the URL reaches them through STUDY_STORAGE); what is
    printed hides it, and one line warns that ~/.pgpass or PGPASSWORD need none in the URL."""
    secret = f"pw{os.getpid()}secret"
    url = fresh_database(postgres, f"pw_{os.getpid()}").replace("postgres@", f"postgres:{secret}@", 1)
    toml = tiny_study(tmp_path, {"a": "{}", "b": "{value = 98.0}"}, seeds=[1])
    proc = subprocess.Popen(["make", "--no-print-directory", "study", f"PY={sys.executable}",
                             f"STUDY={toml}", "JOBS=1", f"STORAGE={url}"], cwd=REPO, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = set()  # every command line below make while it runs
    while proc.poll() is None:
        seen |= {c for c in descendants(proc.pid).values() if c}
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert any("lib.study work" in c for c in seen), seen  # a worker was seen
    assert [c for c in seen if secret in c] == []
    assert secret not in out + err
    warning = [line for line in err.splitlines() if "password" in line]
    assert len(warning) == 1 and "~/.pgpass" in warning[0] and "PGPASSWORD" in warning[0], err
    assert url.replace(f":{secret}", "") in out  # the plan line names the storage, without it
    assert result_keys(toml.with_suffix(".jsonl")) == [("a", 1), ("b", 1)]
