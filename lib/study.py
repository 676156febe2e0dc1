"""Studies: a grid of variants x seeds of one notebook, each run the notebook itself under
papermill with injected parameters, recorded in Optuna's storage, exported as JSON lines.

    python -m lib.study run recipe [--jobs 2] [--storage URL] [--retry-failed] [--rerun-stale]
    python -m lib.study export recipe [--storage URL]
    python -m lib.study compare recipe     # its runs of today's code, paired with the baseline

This module: a study's definition (`studies/<name>.toml`, checked by `load`), the rules over
its rows (`stopped`, `needed`, `inputs_hash`), its results file and the command; the storage
and the workers are lib/runner.py. The file's keys, resume, faults: docs/studies.md.
"""
import argparse
import contextlib
import json
import os
import signal
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

from lib.inputs import inputs_key
from lib.paths import REPO, STUDIES, shown, study_path
from lib.pipeline import notebook_parameters

BUILD = REPO / "build" / "studies"
FIXED = ("seed", "out_dir")  # set by the study, not by a variant
KEYS = ("notebook", "seeds", "baseline", "defaults", "variants", "stop_early", "environment")  # of a study file


class StudyError(RuntimeError):
    pass


@dataclass
class Study:
    name: str
    path: Path
    notebook: Path
    seeds: list
    baseline: str
    variants: dict  # name -> the parameters it injects (defaults included)
    stop_early: dict = None  # {after, below, variants} or None
    environment: dict = field(default_factory=dict)  # FLOAT_PATH variable -> value, for every run
    parameters: dict = field(default_factory=dict)  # the notebook's, with their defaults

    @property
    def results(self):
        return self.path.with_suffix(".jsonl")

    @property
    def runs_dir(self):
        return (BUILD if self.path.parent == STUDIES else self.path.parent / "build") / self.name

    def default_storage(self):
        db = self.runs_dir.with_suffix(".db")
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}"

    def grid(self):
        """(variant, seed) pairs, seed by seed: a study stopped halfway has every variant
        on the same seeds, ready to compare paired."""
        return [(v, s) for s in self.seeds for v in self.variants]


def load(name_or_path):
    """The study `studies/<name>.toml` (or a .toml path), checked: a clear StudyError naming
    what is wrong before anything runs."""
    path = study_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in STUDIES.glob("*.toml")))
        raise StudyError(f"study {name_or_path!r} not found ({path}); known studies: {known}")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path}: not valid TOML ({e})") from None
    unknown = set(spec) - set(KEYS)
    if unknown:
        raise StudyError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(KEYS)}")
    seeds = spec.get("seeds")
    if not (isinstance(seeds, list) and seeds and all(type(s) is int and s >= 0 for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise StudyError(f"{path}: seeds={seeds!r} is invalid; allowed: a non-empty list of "
                         "distinct integers >= 0")
    variants = spec.get("variants") or {}
    if not variants:
        raise StudyError(f"{path}: no [variants]; allowed: at least one, e.g. Model_3 = {{}}")
    baseline = spec.get("baseline", next(iter(variants)))
    if baseline not in variants:
        raise StudyError(f"{path}: baseline={baseline!r} is not one of the variants: "
                         + ", ".join(variants))
    notebook = REPO / spec.get("notebook", "notebooks/03_final.py")
    if not notebook.exists():
        raise StudyError(f"{path}: notebook={spec.get('notebook')!r} does not exist")
    defaults = spec.get("defaults", {})
    study = Study(path.stem, path, notebook, seeds, baseline,
                  {v: {**defaults, **p} for v, p in variants.items()},
                  stop_rule(path, spec.get("stop_early"), variants, baseline, len(seeds)),
                  float_path(path, spec.get("environment", {})),
                  notebook_parameters(jupytext.read(notebook)))
    check(study)
    return study


# what moves float rounding on one machine, and the values a study may set (oneDNN's and
# ATen's own names): a second float path to check a result on, without a second machine
FLOAT_PATH = {
    "ATEN_CPU_CAPABILITY": ("default", "avx2", "avx512"),
    "ONEDNN_MAX_CPU_ISA": ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                           "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_FP16",
                           "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "DEFAULT", "ALL"),
}


def float_path(path, environment):
    """The [environment] table, checked: FLOAT_PATH variables and their allowed values."""
    if not isinstance(environment, dict):
        raise StudyError(f"{path}: environment={environment!r} is invalid; allowed: a table of "
                         + ", ".join(FLOAT_PATH))
    for name, value in environment.items():
        if name not in FLOAT_PATH:
            raise StudyError(f"{path}: environment: {name!r} is not a float-path variable; allowed: "
                             + ", ".join(FLOAT_PATH))
        if value not in FLOAT_PATH[name]:
            raise StudyError(f"{path}: environment: {name}={value!r} is invalid; allowed: "
                             + ", ".join(FLOAT_PATH[name]))
    return dict(environment)


def stop_rule(path, rule, variants, baseline, n_seeds):
    """The [stop_early] table, checked: {after, below, variants}, or None."""
    if rule is None:
        return None
    where = f"{path}: stop_early"
    if not isinstance(rule, dict) or set(rule) - {"after", "below", "variants"}:
        raise StudyError(f"{where}={rule!r} is invalid; allowed keys: after, below, variants")
    after, below = rule.get("after"), rule.get("below")
    if not (type(after) is int and 2 <= after < n_seeds):
        raise StudyError(f"{where}.after={after!r} is invalid; allowed: an integer >= 2 and "
                         f"below the number of seeds ({n_seeds})")
    if not (type(below) in (int, float) and below <= 0):
        raise StudyError(f"{where}.below={below!r} is invalid; allowed: a number <= 0 (points)")
    names = rule.get("variants", [v for v in variants if v != baseline])
    bad = [v for v in names if v not in variants or v == baseline] if isinstance(names, list) else [names]
    if bad:
        raise StudyError(f"{where}.variants: {bad[0]!r} is not a variant other than the baseline; "
                         "allowed: " + ", ".join(v for v in variants if v != baseline))
    return {"after": after, "below": float(below), "variants": names}


def stopped(study, rows):
    """{variant: why} for the variants the study's stop_early rule stops: judged on the
    study's first `after` seeds, once it and the baseline both have a complete run of today's
    code on each, it is stopped when its mean paired difference is below `below` points and
    the 95 % t-interval of that difference lies below zero. Its remaining seeds are not run."""
    from lib import compare

    rule = study.stop_early
    if not rule:
        return {}
    value = {key(r): r["min_last5"] for r in of_today(study, rows.values()) if r["status"] == "complete"}
    why = {}
    for variant in rule["variants"]:
        seeds = study.seeds[:rule["after"]]
        if not all((v, s) in value for s in seeds for v in (variant, study.baseline)):
            continue
        _, mean, low, high = compare.paired({s: value[study.baseline, s] for s in seeds},
                                            {s: value[variant, s] for s in seeds})
        if mean < rule["below"] and high < 0:
            why[variant] = (f"stopped after {rule['after']} seeds: {mean:+.3f} points against "
                            f"{study.baseline} (95 % interval {low:+.3f} … {high:+.3f})")
    return why


def needed(study, rows):
    """The grid's (variant, seed) pairs that count: all but the seeds a variant stopped
    early no longer needs (a seed it did run still counts)."""
    stop = stopped(study, rows)
    done = {k for k, r in rows.items() if r["status"] == "complete"}
    return [k for k in study.grid() if k[0] not in stop or k in done]


def check(study):
    """Every variant's parameters are the notebook's, with values it accepts."""
    from lib.params import ParameterError, check_params

    known = study.parameters
    for variant, params in study.variants.items():
        where = f"{study.path.name}: variant {variant!r}"
        bad = [n for n in params if n not in known or n in FIXED]
        if bad:
            allowed = ", ".join(n for n in known if n not in FIXED)
            raise StudyError(f"{where}: unknown parameter {bad[0]!r}; allowed: {allowed}")
        try:
            check_params({**known, **params, "seed": study.seeds[0]})
        except ParameterError as e:
            raise StudyError(f"{where}: {e}") from None


def inputs_hash(study, params):
    """What a run of `params` (a variant's) computes (`lib.inputs.inputs_key`), its seed aside:
    a row whose hash differs from today's ran other code, and is stale. A default changed in
    the notebook stales only the variants that use it; the study's [environment] counts."""
    return inputs_key(study.notebook, params, keyed=FIXED, environment=study.environment)


def of_today(study, rows):
    """The rows (of an iterable) of today's code and parameters: of a variant the study has, run
    with its parameters, by code whose inputs hash is today's. Any other row is stale."""
    today = {v: inputs_hash(study, p) for v, p in study.variants.items()}
    return [r for r in rows if r["variant"] in today and r["params"] == study.variants[r["variant"]]
            and r.get("inputs_sha256") == today[r["variant"]]]



# --- its record: the results file, one run a row -------------------------------------------
def key(trial_or_row):
    attrs = getattr(trial_or_row, "user_attrs", trial_or_row)
    return attrs.get("variant"), attrs.get("seed")


def read_results(path):
    """The committed rows, {(variant, seed): row}. A line that is not a row is a StudyError
    naming the file and the line; nothing is written."""
    if not path.exists():
        return {}
    rows = {}
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if line.strip():
            row = parse_row(path, number, line)
            rows[key(row)] = row
    return rows


def parse_row(path, number, line):
    """Line `number` of a results file as a row, or a StudyError saying what to do."""
    where = f"{shown(path)} line {number}"
    fix = "fix or remove that line" + (f" (git checkout -- {shown(path)} restores the committed record)"
                                       if Path(path).resolve().is_relative_to(REPO) else "")
    try:
        row = json.loads(line)
    except UnicodeDecodeError:
        raise StudyError(f"{where}: not UTF-8 text; {fix}") from None
    except json.JSONDecodeError as e:
        raise StudyError(f"{where}: not a JSON row ({e.msg}: column {e.colno}); {fix}") from None
    missing = [k for k in ("variant", "seed", "status", "params") if not isinstance(row, dict) or k not in row]
    if missing:
        raise StudyError(f"{where}: not a row of a study (no {missing[0]!r}); {fix}")
    return row


@contextlib.contextmanager
def results_lock(study):
    """The study's results file to one writer at a time on this machine (a lock file beside
    its storage), so that a row only the file holds is never written over."""
    import fcntl

    lock = study.runs_dir.with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def keep_in_results(study, rows):
    """Put rows the storage may not hold (runs that ended while it was unreachable) into the
    results file; the runs they are, as text."""
    rows = list(rows)
    if rows:
        with results_lock(study):
            held = read_results(study.results)
            held.update({key(r): r for r in rows})
            write_results(study, held)
    return [f"{r['variant']} seed {r['seed']}" for r in rows]


def write_results(study, rows):
    """Write {(variant, seed): row} to the results file (atomically), sorted by variant (in
    the study's order) and seed; returns the rows as written."""
    from lib.data import write_atomic

    order = {v: i for i, v in enumerate(study.variants)}
    rows = sorted(rows.values(), key=lambda r: (order.get(r["variant"], len(order)), r["variant"], r["seed"]))
    write_atomic(study.results, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    return rows



# --- the command ------------------------------------------------------------------------------
def main(argv=None):
    from lib.runner import LOST, StorageLost, password_warning, storage_failure, went_away

    parser = argparse.ArgumentParser(prog="python -m lib.study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name, help=text) for name, text in [
        ("run", "run what is missing of a study, with --jobs workers here"),
        ("work", "one worker (what `run` starts --jobs times)"),
        ("export", "rewrite the study's results file from its storage")]}
    compare = sub.add_parser("compare", help="print the study's runs of today's code, paired with its baseline")
    compare.add_argument("study", help="a name in studies/ (recipe) or a path to a .toml")
    compare.add_argument("--baseline", help="pair with this variant instead of the study's baseline")
    for p in commands.values():
        p.add_argument("study", help="a name in studies/ (recipe) or a path to a .toml")
        p.add_argument("--storage", default=os.environ.get("STUDY_STORAGE") or None,
                       help="an SQLAlchemy URL (default: $STUDY_STORAGE, else "
                       "sqlite:///build/studies/<name>.db)")
        p.add_argument("--heartbeat", type=int, default=30, help="seconds between a trial's heartbeats")
        p.add_argument("--jobs", type=int, default=2, help="worker processes here (default 2)")
        p.add_argument("--max-runs", type=int, help="each worker stops after this many runs")
    commands["run"].add_argument("--retry-failed", action="store_true",
                                 help="run again the runs whose notebook failed")
    commands["run"].add_argument("--rerun-stale", action="store_true",
                                 help="run again the runs whose code changed since (inputs hash)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
    try:
        if args.command == "compare":
            from lib.evidence import summary
            return print(summary(args.study, args.baseline))
        for name, value, unit in (("max-runs", args.max_runs, ""), ("jobs", args.jobs, ""),
                                  ("heartbeat", args.heartbeat, " (seconds)")):
            if value is not None and value < 1:
                raise StudyError(f"--{name}={value} is invalid; allowed: an integer >= 1{unit}")
        study = load(args.study)
        url = args.storage or study.default_storage()
        if args.command != "work" and password_warning(url):
            print(password_warning(url), file=sys.stderr, flush=True)
        try:
            command(args, study, url)
        except Exception as e:
            reason = storage_failure(e)
            if reason is None or isinstance(e, StudyError):
                raise
            raise StorageLost(went_away(study, url, reason)) from None
    except StorageLost as e:
        print(e if args.command == "work" else f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(LOST)
    except StudyError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        if args.command == "work":
            sys.exit(130)  # `run` says it, once
        sys.exit("interrupted: completed runs are recorded; run the command again to resume")


def command(args, study, url):
    """`run`, `work` or `export` of the study on the storage at `url`."""
    from lib.runner import export, run, stored_study, work

    if args.command == "run":
        run(study, url, args.jobs, args.heartbeat, args.retry_failed, args.max_runs, args.rerun_stale)
    elif args.command == "work":
        work(study, url, args.jobs, args.heartbeat, args.max_runs)
    else:
        rows = export(study, stored_study(study, url))
        print(f"{study.results}: {len(rows)} rows")


if __name__ == "__main__":  # run the package's copy: its errors are the classes other modules raise
    import lib.study

    lib.study.main()
