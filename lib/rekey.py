"""Carry a study's recorded runs across a change of code that computes the same thing.

    python -m lib.rekey recipe --from f986d6a [--rename Model_3=Model_3_maxpool ...] [--dry-run]

Variant by variant, the code at FROM and today's code run the study's notebook on the same
smoke run, here; where the two histories are equal to the last bit, the variant's rows made by
the code at FROM get today's name, parameters, model and inputs hash, keeping what they had
under "rekeyed". Anything else stays stale. The rules and an example: docs/studies.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from lib.paths import REPO, shown
from lib.pipeline import SMOKE_RUN as SMOKE
from lib.study import BUILD, StudyError, load, read_results, write_results

SEED = 1

# run inside a source tree (cwd): each variant's inputs hash and smoke history, as JSON
PROBE = """
import json, sys, tempfile
from lib.pipeline import execute
from lib.study import inputs_hash, load

study, smoke, seed = load(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
out = {}
for variant in json.loads(sys.argv[4]):
    if variant not in study.variants:  # rows of a variant the study no longer had then
        continue
    params = study.variants[variant]
    with tempfile.TemporaryDirectory() as tmp:
        record = execute(study.notebook, tmp, {**params, **smoke, "seed": seed},
                         name=variant, render=False, log_output=False)
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in record["history"]]
    out[variant] = {"params": params, "inputs_sha256": inputs_hash(study, params),
                    "model": record.get("model"), "history": history}
print(json.dumps(out))
"""


def probe(tree, study, variants, smoke):
    """{variant: {params, inputs_sha256, history}} as the code in `tree` computes them."""
    from lib.data import data_root

    env = {**os.environ, "PYTHONPATH": str(tree), "TQDM_DISABLE": "1", "MNIST_DATA_DIR": str(data_root())}
    done = subprocess.run([sys.executable, "-c", PROBE, study, json.dumps(smoke), str(SEED),
                           json.dumps(variants)], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise StudyError(f"the smoke runs in {tree} failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rekey(name, commit, renames, dry_run=False, log=print, smoke=SMOKE):
    """Rekey study `name`'s rows made by the code at `commit` (see the module's docstring),
    each variant compared on the run `smoke`. Returns {today's variant: number of rows rekeyed}."""
    study = load(name)
    rows = read_results(study.results)
    full = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=REPO,
                          capture_output=True, text=True)
    if full.returncode:
        raise StudyError(f"--from {commit!r}: not a commit of this repository")
    commit = full.stdout.strip()
    olds = sorted({r["variant"] for r in rows.values()})
    mapping = {old: renames.get(old, old) for old in olds}
    bad = [f"{old}={new}" for old, new in mapping.items() if old in renames and new not in study.variants]
    if bad:
        raise StudyError(f"--rename {bad[0]}: not a variant of {study.path.name}; allowed: "
                         + ", ".join(study.variants))
    mapping = {old: new for old, new in mapping.items() if new in study.variants}
    log(f"[{name}] smoke runs of {len(mapping)} variants at {commit[:10]} and today, on this machine ...")
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)  # its files, no .git
        then = probe(tmp, str(study.path.resolve().relative_to(REPO)), sorted(mapping), smoke)
    today = probe(REPO, str(study.path.resolve()), sorted(set(mapping.values())), smoke)
    counts, moved = {}, {}
    for old, new in mapping.items():
        if old not in then:
            log(f"  {old:>22}: not a variant of the study at that commit: its rows are left stale")
            continue
        same = then[old]["history"] == today[new]["history"]
        mine = [k for k, r in rows.items() if r["variant"] == old and r["status"] == "complete"
                and r.get("inputs_sha256") == then[old]["inputs_sha256"]
                and r["params"] == then[old]["params"]]
        log(f"  {old:>22} -> {new:<22} smoke runs {'equal' if same else 'DIFFER'}; "
            f"{len(mine)} rows made by that code{'' if same else ': left stale'}")
        if not same:
            continue
        counts[new] = len(mine)
        for k in mine:
            row = rows[k]
            moved[k] = {**row, "variant": new, "params": today[new]["params"],
                        "inputs_sha256": today[new]["inputs_sha256"], "model": today[new]["model"],
                        "rekeyed": {"from_commit": commit, "variant": old, "params": row["params"],
                                    "model": row.get("model"), "inputs_sha256": row["inputs_sha256"],
                                    "smoke": {**smoke, "seed": SEED}}}
    rows = {k: r for k, r in rows.items() if k not in moved}
    for row in moved.values():
        k = (row["variant"], row["seed"])
        if k in rows:
            raise StudyError(f"{k[0]} seed {k[1]}: a row that stays (stale) is where a rekeyed one "
                             "would go; nothing written")
        rows[k] = row
    if dry_run:
        log(f"[{name}] dry run: nothing written")
        return counts
    write_results(study, rows)
    log(f"[{name}] {sum(counts.values())} rows rekeyed; written {shown(study.results)}")
    if study.runs_dir.with_suffix(".db").exists():
        log(f"[{name}] note: {shown(study.runs_dir.with_suffix('.db'))} still holds the old "
            "trials; delete it before the next `make study` (a fresh storage starts from the results file)")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lib.rekey", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="a study name (studies/<name>.toml) or a .toml path")
    parser.add_argument("--from", dest="commit", required=True, help="the commit whose code made the rows")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                        help="the variant OLD of then is today's NEW")
    parser.add_argument("--dry-run", action="store_true", help="compare and report, write nothing")
    args = parser.parse_args(argv)
    try:
        renames = dict(r.split("=", 1) for r in args.rename if "=" in r)
        if len(renames) != len(args.rename):
            raise StudyError(f"--rename {args.rename[0]!r}: allowed: OLD=NEW, two variant names")
        rekey(args.study, args.commit, renames, args.dry_run)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
