"""Running a study (`python -m lib.study run|work|export`, lib/study.py): its trials in
Optuna's storage, the workers that pull them, and `run`, which starts them here.

Each (variant, seed) is one trial, enqueued with its parameters as user attributes. A worker
marks a trial it takes as its own (`take`); a trial whose worker died is failed and enqueued
again once its heartbeat is stale, or while it is still unmarked (`fail_orphans`), all
through Optuna's public API. Should the storage go away, each worker stops (exit status
LOST) once its run has ended, whose row then goes to the results file; the same command
resumes once the storage is back.
"""
import datetime
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings

from lib.paths import REPO, shown
from lib.pipeline import Interrupted, PipelineError, execute
from lib.study import (StudyError, inputs_hash, keep_in_results, key, needed, of_today, read_results,
                       results_lock, stopped, write_results)

LOST = 75  # the exit status of a worker, and of `run`, whose storage went away
RACES = ("already exists", "UNIQUE constraint failed", "duplicate key value")  # see on_schema_race


class StorageUnusable(StudyError):
    """The storage cannot be opened: `reason`, the driver's first line."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


class StorageLost(StudyError):
    """The storage stopped answering in the middle of a study."""


# --- the storage --------------------------------------------------------------------------
def open_storage(url, heartbeat=30):
    """Optuna's RDB storage at `url` (sqlite:///file, postgresql://...), with heartbeats:
    a trial whose worker sends none for 5 x `heartbeat` s is failed and enqueued again."""
    import optuna
    import sqlalchemy

    given = url
    if url.startswith("postgresql://"):  # SQLAlchemy's default driver is psycopg2: use psycopg 3
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    sqlite = url.startswith("sqlite")
    # SQLite: the driver's own BEGIN (isolation_level None) is replaced by BEGIN IMMEDIATE below
    kwargs = {"connect_args": {"timeout": 60, "isolation_level": None}} if sqlite else \
        {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        storage = on_schema_race(lambda: optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=5 * heartbeat,
            heartbeat_stale_trial_callback=requeue))
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
        reason = first_line(getattr(e, "orig", None) or e)
        hint = "; is the server running and reachable from here?" \
            if isinstance(e, sqlalchemy.exc.OperationalError) and not sqlite else ""
        raise StorageUnusable(f"storage {safe(given)!r} cannot be used: {reason}{hint}", reason) from None
    if sqlite:  # SQLite has no row locks (Optuna's "for update" is a no-op there), and Python's
        # driver begins a transaction only at the first write: two workers could both read a
        # trial as waiting and both take it. A transaction that holds the write lock from its
        # start makes the read and the write one step.
        sqlalchemy.event.listen(storage.engine, "begin",
                                lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return storage


def fail_orphans(storage_study, grace):
    """Fail the running trials whose worker died (or lost the storage) between taking them
    and marking them (`take`), and enqueue again those of the grid: Optuna counts a trial
    stale only once it has had a heartbeat, and such a trial may have none. Their sign: no
    "worker" attribute `grace` s after they began. Returns how many."""
    import optuna
    from optuna.trial import TrialState

    now = datetime.datetime.now()  # datetime_start is the taking worker's local time
    failed = 0
    for t in storage_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "worker" in t.user_attrs or t.datetime_start is None \
                or (now - t.datetime_start).total_seconds() <= grace:
            continue
        try:
            storage_study.tell(t.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # ended meanwhile (another worker failed it first): not ours to enqueue
        requeue(storage_study, t)
        failed += 1
    return failed


def requeue(storage_study, trial):
    """Enqueue again a trial of the grid that failed with its run unfinished (Optuna calls this
    for a stale trial; `fail_orphans` for an unmarked one): its variant, seed and parameters,
    not the dead worker's mark, which would hide the new trial from `fail_orphans`. One taken
    past the end of the queue has no variant: not a run of the grid."""
    if "variant" in trial.user_attrs:
        storage_study.enqueue_trial({}, user_attrs={k: trial.user_attrs[k] for k in ("variant", "seed", "params")})


def take(trial, storage):
    """Mark `trial` as this worker's: a heartbeat, then the "worker" attribute. A marked trial
    has a heartbeat, so Optuna fails it once its worker dies; an unmarked one `fail_orphans`
    fails. (Optuna's own first beat comes from a thread, which may lose the storage after the
    mark is written: a marked trial with no beat would be waited for forever.)"""
    study_id = storage.get_study_id_from_name(trial.study.study_name)
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")


def on_schema_race(make):
    """make(), tried again after a short random pause while it fails because another process
    is creating the same tables, schema stamp or study at that moment (several `run`s started
    at once on a new study: RACES), 5 tries in all; any other error at once."""
    import sqlalchemy

    for attempt in range(1, 6):
        try:
            return make()
        except sqlalchemy.exc.DBAPIError as e:
            if attempt == 5 or not any(s in str(e.orig) for s in RACES):
                raise
        time.sleep(random.uniform(0.1, 0.5) * attempt)


def first_line(error):
    """An error's message, its first line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def storage_failure(error):
    """Why the storage stopped answering, as one line, if that is what `error` (or an error
    that led to it) is: a connection lost or refused, a server stopped, a file locked or gone.
    None for any other error."""
    import sqlalchemy

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StorageUnusable):
            return error.reason
        if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                              sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.TimeoutError)) or \
                isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return first_line(getattr(error, "orig", None) or error)
        error = error.__cause__ or error.__context__
    return None


def went_away(study, url, reason=None):
    """The line `run` ends with when its storage went away."""
    return (f"storage {safe(url)} went away" + (f" ({reason})" if reason else "")
            + f": completed runs are recorded in {shown(study.results)}; run the same command "
            "again to resume")


def stored_study(study, url, storage=None):
    """The study in the storage at `url` (or in `storage`, opened there); a StudyError if that
    storage holds none of its name."""
    import optuna

    storage = storage or open_storage(url)
    try:
        return optuna.load_study(study_name=study.name, storage=storage)
    except KeyError:
        raise StudyError(f"storage {safe(url)!r} holds no study {study.name!r}: "
                         f"`python -m lib.study run {shown(study.path)}` creates it") from None


def recorded(study, storage_study):
    """{(variant, seed): row} of the runs recorded in the results file and in the storage
    (the storage wins): complete runs, and runs whose notebook failed."""
    from optuna.trial import TrialState

    rows = read_results(study.results)
    best = {}

    def rank(t):  # the current parameters first, then a complete run, then the later trial
        return (t.user_attrs["row"]["params"] == study.variants.get(key(t)[0]),
                t.state == TrialState.COMPLETE, t.number)

    for t in storage_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if "row" not in t.user_attrs:  # stopped from outside, or its worker died: no result
            continue
        if key(t) not in best or rank(t) > rank(best[key(t)]):
            best[key(t)] = t
    for k, t in best.items():
        old = rows.get(k)
        if old is None or old["params"] != study.variants.get(k[0]) or rank(t)[0]:
            rows[k] = t.user_attrs["row"]
    return rows


def export(study, storage_study):
    """Rewrite the results file (atomically): one run a row, sorted by variant and seed."""
    with results_lock(study):
        return write_results(study, recorded(study, storage_study))


def carry_back(study, storage_study):
    """End in the storage the trials whose run ended while it was unreachable: a trial still
    running whose row the results file holds (the row names its trial) ends as the row says.
    Returns how many."""
    import optuna
    from optuna.trial import TrialState

    rows = {r.get("trial"): r for r in read_results(study.results).values()}
    ended = 0
    for t in storage_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        row = rows.get(t.number)
        if row is None or key(row) != key(t) or row["params"] != t.user_attrs.get("params"):
            continue
        try:  # the row stays in the results file, which `recorded` reads beside the storage
            if row["status"] == "complete":
                storage_study.tell(t.number, [row["min_last5"]], state=TrialState.COMPLETE)
            else:
                storage_study.tell(t.number, state=TrialState.FAIL)
            ended += 1
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            pass  # failed as stale meanwhile: its row in the results file still counts
    return ended


def enqueue_missing(study, storage_study, retry_failed=False, rerun_stale=False):
    """Enqueue every (variant, seed) with no result for its current parameters (and, with
    `rerun_stale`, for today's code), no trial running and none waiting, in grid order (seed
    by seed; workers take the oldest waiting trial, so a run stopped and enqueued again comes
    after the others). A variant stopped early (`stopped`) gets no more runs. Returns (done,
    failed, enqueued, stopped) counts; stopped: runs not needed."""
    from optuna.trial import TrialState

    rows = recorded(study, storage_study)
    stop = stopped(study, rows)
    if rerun_stale:
        rows = {key(r): r for r in of_today(study, rows.values())}
    # running or waiting with its current parameters (a retry another machine's
    # `run --retry-failed` queued included)
    active = {key(t) for t in storage_study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
              if t.user_attrs.get("params") == study.variants.get(key(t)[0])}
    done = failed = skipped = enqueued = 0
    for variant, seed in study.grid():
        params, row = study.variants[variant], rows.get((variant, seed))
        if row and row["params"] == params and (row["status"] == "complete" or not retry_failed):
            done += row["status"] == "complete"
            failed += row["status"] == "failed"
        elif variant in stop:
            skipped += 1
        elif (variant, seed) not in active:
            storage_study.enqueue_trial({}, user_attrs={"variant": variant, "seed": seed, "params": params},
                                        skip_if_exists=False)
            enqueued += 1
    return done, failed, enqueued, skipped


# --- one worker ---------------------------------------------------------------------------
def provenance(device):
    """Where a run on `device` (a notebook's device parameter) ran: host, CPU/GPU model, threads,
    versions, commit (and dirty flag), read as the run starts (a worker lives through many runs,
    and the tree may change meanwhile)."""
    import torch
    from lib.run import cpu_kind, device_name, git_commit
    from lib.train import pick_device

    commit, dirty = git_commit()
    device = pick_device(device)
    return {"host": socket.gethostname(), "device": f"{device} ({device_name(device)})",
            "cpu": cpu_kind(),
            "cpu_threads": int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()),
            "torch": torch.__version__, "git_commit": commit, "git_dirty": dirty}


def objective(study, trial, storage, finished):
    """Run one (variant, seed): the notebook under papermill; record its row on the trial,
    and in `finished` (for the results file, should the storage not take it)."""
    import optuna
    from lib.run import value
    from optuna.trial import TrialState

    take(trial, storage)
    if "variant" not in trial.user_attrs:  # the queue emptied under us: not one of ours
        raise optuna.TrialPruned()
    k, params = key(trial), trial.user_attrs["params"]
    if study.variants.get(k[0]) != params or k[1] not in study.seeds:
        trial.set_user_attr("outdated", True)  # enqueued before the study's definition changed
        raise optuna.TrialPruned()
    rows = recorded(study, trial.study)
    held = rows.get(k) or {}
    earlier = [t.number for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if key(t) == k and t.number < trial.number and t.user_attrs.get("params") == params]
    if earlier or held.get("status") == "complete" and of_today(study, [held]):  # enqueued twice, or done already
        trial.set_user_attr("duplicate_of", earlier[0] if earlier else held.get("trial"))
        raise optuna.TrialPruned()
    why = stopped(study, rows).get(k[0])
    if why:  # enqueued before its variant was stopped
        trial.set_user_attr("stopped_early", why)
        raise optuna.TrialPruned()
    variant, seed = k
    row = {"study": study.name, "variant": variant, "seed": seed, "params": params,
           "notebook": shown(study.notebook), "trial": trial.number, "inputs_sha256": inputs_hash(study, params),
           **provenance(params.get("device", "auto")),
           **({"environment": study.environment} if study.environment else {})}
    start = time.perf_counter()
    try:
        record = execute(study.notebook, study.runs_dir, {**params, "seed": seed},
                         name=f"{variant}-seed{seed}", render=False, log_output=False)
    except Interrupted:
        raise KeyboardInterrupt from None
    except PipelineError as e:
        row.update(status="failed", error=str(e), seconds=round(time.perf_counter() - start, 1),
                   finished=now())
        finished["row"] = row
        trial.set_user_attr("row", row)
        raise  # the trial is recorded as failed (`pull` catches it), the worker goes on
    history = record["history"]
    acc = [h["test_acc"] for h in history]
    row.update(status="complete", min_last5=value(history), final_test_acc=acc[-1],
               test_acc=acc, test_loss=[round(h["test_loss"], 5) for h in history],
               epoch_seconds=[h["seconds"] for h in history], model=record.get("model"),
               n_params=record.get("params"), macs=record.get("macs"), device=record["device"],
               cpu=record.get("cpu_kind", row.get("cpu")),  # as the run's kernel saw it (its float path)
               cpu_threads=record["cpu_threads"], torch_compile=record["torch_compile"],
               seconds=round(time.perf_counter() - start, 1), finished=now())
    finished["row"] = row
    trial.set_user_attr("row", row)
    return row["min_last5"]


def now():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def work(study, url, jobs, heartbeat, max_runs=None):
    """One worker (`pull`). Should the storage go away, the run it finished meanwhile goes to
    the results file and the worker stops: StorageLost, with the one line it prints."""
    finished = {}  # the row of its last run, until the results file holds it
    os.environ.update(study.environment)  # the float path, for the kernels it starts
    default_hook = threading.excepthook

    def quiet(args):  # a thread dying of the storage going away (Optuna's heartbeat) says nothing:
        if storage_failure(args.exc_value) is None:  # the main thread meets the same, says it once
            default_hook(args)

    threading.excepthook = quiet
    try:
        pull(study, url, jobs, heartbeat, max_runs, finished)
    except Exception as e:
        reason = storage_failure(e)
        if reason is None:
            raise
        kept = keep_in_results(study, finished.values())
        raise StorageLost(f"[{study.name}] a worker stopped: storage went away ({reason})" + (
            f"; {kept[0]} ended meanwhile and is recorded in {shown(study.results)}" if kept else "")) from None


def pull(study, url, jobs, heartbeat, max_runs, finished):
    """Pull waiting trials until none is waiting or running anywhere (or until `max_runs`
    have run); `finished`: the row of the last run until the results file holds it."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures: in the row, and at the end
    storage = open_storage(url, heartbeat)
    storage_study = stored_study(study, url, storage)
    started = time.perf_counter()
    ran = []
    while max_runs is None or len(ran) < max_runs:
        optuna.storages.fail_stale_trials(storage_study)  # a dead worker's trial: enqueued again
        fail_orphans(storage_study, grace=5 * heartbeat)  # ... also one that died before its first beat
        states = [t.state for t in storage_study.get_trials(deepcopy=False)]
        if TrialState.WAITING not in states:
            if TrialState.RUNNING not in states:
                return
            time.sleep(min(heartbeat, 5))  # another worker's run: wait for it, or for its heartbeat to stop
            continue
        try:
            storage_study.optimize(lambda t: ran.append(t.number) or objective(study, t, storage, finished),
                                   n_trials=1, catch=(PipelineError,))
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as e:
            # our trial was failed as stale (a suspended machine?) and is enqueued again; a
            # run it finished is kept in the results file (the retry finds it there)
            print(f"[{study.name}] trial {ran[-1] if ran else '?'} was taken from this worker "
                  f"({type(e).__name__}); going on", flush=True)
            keep_in_results(study, finished.values())
            finished.clear()
            continue
        trial = next((t for t in storage_study.get_trials(deepcopy=False) if t.number == ran[-1]), None)
        rows = export(study, storage_study)
        finished.clear()
        if trial is not None and trial.state != TrialState.PRUNED:
            to_go = sum(t.state in (TrialState.WAITING, TrialState.RUNNING)
                        for t in storage_study.get_trials(deepcopy=False))
            report_progress(study, rows, to_go, jobs, started, trial)


def tally(study, rows):
    """Of {(variant, seed): row}: (complete rows, failed rows, the runs needed, {variant stopped
    early: why}); a stopped variant's remaining seeds are not needed."""
    grid = needed(study, rows)
    held = [rows[k] for k in grid if k in rows]
    return ([r for r in held if r["status"] == "complete"], [r for r in held if r["status"] == "failed"],
            grid, stopped(study, rows))


def report_progress(study, rows, to_go, jobs, started, trial):
    """One line per finished run: runs of today's code done / needed, runs still queued or
    running, failed, that run, an ETA."""
    ok, failed, grid, _ = tally(study, {key(r): r for r in of_today(study, rows)})
    failed = len(failed)
    row = trial.user_attrs.get("row") or {}
    what = (f"{row['variant']} seed {row['seed']}: " + (f"{row['min_last5']:.2f} %" if row["status"] == "complete"
            else "FAILED") + f" in {row['seconds']:.0f} s") if row else "a run ended without a result"
    recent = [r["seconds"] for r in sorted(ok, key=lambda r: r.get("finished", ""))[-20:]] \
        or [time.perf_counter() - started]
    eta = to_go * statistics.mean(recent) / max(jobs, 1)
    print(f"[{study.name}] {len(ok)}/{len(grid)} done, {to_go} to go" + (f", {failed} failed" if failed else "")
          + f" · {what} · ETA {eta / 60:.0f} min", flush=True)


# --- running it here ---------------------------------------------------------------------
def run(study, url, jobs, heartbeat, retry_failed, max_runs=None, rerun_stale=False):
    """Enqueue what is missing, run `jobs` workers here (the storage URL in their environment,
    STUDY_STORAGE, not on their command line), export. Exit status 1 if a run failed; LOST
    (StorageLost) if the storage went away. No worker starts where no run waits or runs."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url, heartbeat)
    storage_study = on_schema_race(lambda: optuna.create_study(
        study_name=study.name, storage=storage, direction="maximize", load_if_exists=True))
    carry_back(study, storage_study)
    done, failed, enqueued, skipped = enqueue_missing(study, storage_study, retry_failed, rerun_stale)
    pending = {TrialState.WAITING, TrialState.RUNNING} & {t.state for t in storage_study.get_trials(deepcopy=False)}
    cores = os.cpu_count() or 1
    threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, cores // jobs))  # yours, if set
    print(f"[{study.name}] {len(study.variants)} variants x {len(study.seeds)} seeds = "
          f"{len(study.grid())} runs of {shown(study.notebook)}: {done} recorded, "
          f"{failed} failed, {enqueued} enqueued now" + (f", {skipped} not needed (stopped early)"
                                                        if skipped else "")
          + (f"; {jobs} worker(s) x {threads} thread(s); " if pending else "; nothing to run; ")
          + "".join(f"{k}={v}; " for k, v in study.environment.items())
          + f"storage {safe(url)}", flush=True)
    env = {**os.environ, **study.environment, "OMP_NUM_THREADS": str(threads), "STUDY_STORAGE": url}
    cmd = [sys.executable, "-m", "lib.study", "work", str(study.path),
           "--jobs", str(jobs), "--heartbeat", str(heartbeat)] + (
               ["--max-runs", str(max_runs)] if max_runs else [])
    workers = [subprocess.Popen(cmd, cwd=REPO, env=env) for _ in range(jobs if pending else 0)]
    try:
        codes = [w.wait() for w in workers]
    except KeyboardInterrupt:
        for w in workers:  # Ctrl-C reached them too; a job started with & ignores SIGINT
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait()
        try:
            export(study, storage_study)
        except Exception as e:  # what the workers finished is in the results file already
            if storage_failure(e) is None:
                raise
        raise
    if LOST in codes:
        export(study, storage_study)  # should the storage be back already
        raise StorageLost(went_away(study, url))
    ok, bad, grid, stop = tally(study, {key(r): r for r in export(study, storage_study)})
    print(f"[{study.name}] {len(ok)}/{len(grid)} runs complete, {len(bad)} failed"
          + (f", {len(stop)} variant(s) stopped early" if stop else "")
          + f" -> {shown(study.results)}", flush=True)
    for variant, why in stop.items():
        print(f"[{study.name}] {variant}: {why}", flush=True)
    if any(codes):
        raise StudyError(f"{sum(map(bool, codes))} worker(s) exited with an error (see above)")
    if bad:
        raise StudyError(f"{len(bad)} run(s) failed: " + ", ".join(
            f"{r['variant']} seed {r['seed']}" for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
            + f"; errors in {study.results.name}, notebooks in {study.runs_dir}; "
            "rerun them with --retry-failed")
    if len(ok) < len(grid) and not max_runs:
        raise StudyError(f"{len(grid) - len(ok)} run(s) not done: run the command again")


def safe(url):
    """A storage URL without its password (in its user part, or a password= parameter)."""
    url = re.sub(r"([?&]password=)[^&]*", r"\1***", url)
    return re.sub(r"^([^:/]+://[^:@/]*):.*@", r"\1@", url)  # user:password@host -> user@host


def password_warning(url):
    """The warning line for a storage URL that carries a password, else None."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if not (parts.password or "password" in parse_qs(parts.query)):
        return None
    return ("warning: the storage URL carries a password, which other users of this machine can "
            "read (ps shows command lines, the shell keeps its history); leave it out: libpq reads "
            "~/.pgpass or PGPASSWORD (psycopg honours both)")
