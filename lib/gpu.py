"""A GPU machine with its own torch and no package registry: pack here, check there (docs/gpu.md).

Only the standard library is imported at the top, so that `check` starts, and fails clearly, in any Python.
"""
import argparse
import gzip
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lib.paths import REPO

BUNDLE = REPO / "build/gpu-bundle"
WORK = REPO / "build/gpu-check"
GPU_REPORTS = REPO / "reports/gpu"
LIMIT_MIB = 64  # what the device tool carries: the bundle and the working tree together

# what the notebooks need that the GPU image lacks, with their dependencies (ipywidgets: tqdm.auto in a kernel warns)
PACKAGES = ["papermill", "jupytext", "nbformat", "nbclient", "nbconvert", "ipykernel", "ipywidgets", "torchinfo"]
# what the GPU image has (its torch 2.11 + CUDA 13, Python 3.12): never carried
IMAGE = frozenset("""absl-py accelerate anyio attrs certifi charset-normalizer click cloudpickle contourpy cycler
filelock fonttools fsspec h11 httpcore httpx idna jinja2 joblib kiwisolver markdown markdown-it-py markupsafe
matplotlib mdurl mpmath networkx numpy packaging pandas pillow pip pluggy psutil pygments pyparsing pytest
python-dateutil pyyaml regex requests rich scipy seaborn setuptools six sympy tabulate torch torchvision tqdm
typing-extensions urllib3 wheel zipp pyarrow""".split())
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]


class CheckError(RuntimeError):
    """A failure with its one-line explanation."""


def say(text):
    print(f"[gpu] {text}", flush=True)


def normalize(name):
    """A project name as PEP 503 compares them ("Typing_Extensions" -> "typing-extensions")."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename):
    return normalize(filename.split("-", 1)[0])


def error_line(text):
    """What went wrong: the last `error: ...` line (pip's `ERROR: ...` too), else the exception line, else the last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()] or ["(no output)"]
    found = ([line for line in lines if re.match(r"(?i)error: ", line)]
             or [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line)])
    return re.sub(r"(?i)^error: ", "", found[-1])[:500] if found else lines[-1]


def run(cmd, failed, unless=None, **kwargs):
    """`cmd` run in the repository; a failure (unless `unless` is in its stderr) is a CheckError with its error line."""
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, **kwargs)
    if done.returncode != 0 and not (unless and unless in done.stderr):
        raise CheckError(f"{failed}: {error_line(done.stderr or done.stdout)}")
    return done


def mib(paths):
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2 ** 20


def pack_mnist(raw, dest, md5s):
    """Gzip each MNIST file of `raw` into `dest`, each checked against `md5s` first."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, want in md5s.items():
        data = (raw / name).read_bytes() if (raw / name).is_file() else b""
        if hashlib.md5(data).hexdigest() != want:
            raise CheckError(f"{raw / name} fails its md5 check: run `make data` first")
        (dest / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


def unpack_mnist(src, raw, md5s, log=say):
    """Unpack `src` (from `pack_mnist`) where `raw` lacks a file matching `md5s`, each checked; returns their names."""
    written = []
    for name, want in md5s.items():
        if (raw / name).is_file() and hashlib.md5((raw / name).read_bytes()).hexdigest() == want:
            continue
        try:
            data = gzip.decompress((src / f"{name}.gz").read_bytes())
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise CheckError(f"the bundle's {src / name}.gz cannot be unpacked ({e}): carry the bundle again") from None
        got = hashlib.md5(data).hexdigest()
        if got != want:
            raise CheckError(f"the bundle's {name}.gz unpacks to md5 {got}, not {want}: carry the bundle again")
        raw.mkdir(parents=True, exist_ok=True)
        (raw / name).write_bytes(data)  # cut short, it fails its md5 here and in lib.data: no temporary file
        written.append(name)
    log(f"MNIST in {raw}: {len(written)} file(s) unpacked, all {len(md5s)} match their md5")
    return written


def bundle(out=BUNDLE, python_version="3.12"):
    """Download the wheels and pack MNIST into `out` (replaced whole, only once complete)."""
    from lib.data import MD5, raw_dir
    out = Path(out).resolve()
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    pack_mnist(raw_dir(), staging / "mnist", MD5)
    say(f"downloading for CPython {python_version} under requirements.txt's pins: {' '.join(PACKAGES)}")
    run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--only-binary=:all:",
         "--python-version", python_version, "--implementation", "cp", *(f"--platform={p}" for p in PLATFORMS),
         "-c", str(REPO / "requirements.txt"), "-d", str(staging / "wheels"), *PACKAGES], "pip download failed")
    dropped = sorted(w.name for w in staging.glob("wheels/*.whl") if wheel_project(w.name) in IMAGE)
    for name in dropped:
        (staging / "wheels" / name).unlink()
    kept = sorted(w.name for w in staging.glob("wheels/*.whl"))
    manifest = {"python_version": python_version, "platforms": PLATFORMS, "packages": PACKAGES,
                "wheels": kept, "left_out_for_the_image": dropped, "mnist": sorted(MD5),
                "made": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    say(f"{len(kept)} wheels ({mib(out.glob('wheels/*')):.1f} MiB) and MNIST ({mib(out.glob('mnist/*')):.1f} MiB) in "
        f"{out}; left out, the image has them: {', '.join(wheel_project(w) for w in dropped) or 'none'}")
    try:  # the device tool carries the bundle with the tracked files and the untracked ones git does not ignore
        files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], "git ls-files").stdout
    except (OSError, CheckError):  # not a git checkout: the bundle alone
        files = ""
    total, tree = mib(out.rglob("*")), mib({REPO / p for p in files.split("\0") if p})
    line = f"bundle: {total:.1f} MiB; with the working tree ({tree:.1f} MiB): {total + tree:.1f} MiB of {LIMIT_MIB} MiB"
    if total + tree > LIMIT_MIB:
        raise CheckError(line + ": too large to carry")
    print(line, flush=True)
    return out


def read_bundle(path):
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise CheckError(f"no GPU bundle at {path}: make it with `make gpu-bundle` on a machine "
                         f"that reaches PyPI, then carry that folder (docs/gpu.md)")
    try:
        info = json.loads(manifest.read_text())
    except ValueError as e:
        raise CheckError(f"{manifest} is damaged ({e}): make the bundle again") from None
    missing = [m for m in [f"wheels/{w}" for w in info["wheels"]] + [f"mnist/{n}.gz" for n in info["mnist"]]
               if not (path / m).is_file()]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckError(f"the bundle at {path} is incomplete: {', '.join(missing[:5])}{more} missing: carry it again")
    here = "%d.%d" % sys.version_info[:2]
    if info["python_version"] != here:
        raise CheckError(f"the bundle at {path} holds wheels for Python {info['python_version']}; "
                         f"this is Python {here} ({sys.executable}): make one for it with "
                         f"`make gpu-bundle GPU_PYTHON={here} BUNDLE=...`")
    return info


def install(work, wheels):
    """`wheels` into `work`/site, offline and unresolved (pip resolved the bundle; the rest is the image's), kept
    while they match. Returns the notebooks' environment: that site and its Jupyter data first, no progress bars."""
    site, want = work / "site", json.dumps([w.name for w in wheels])
    if (site / ".bundle").is_file() and (site / ".bundle").read_text() == want:
        say(f"{site}: the bundle's wheels, up to date")
    else:
        shutil.rmtree(site, ignore_errors=True)
        pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}  # no index, no user configuration
        pip_env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *map(str, wheels)],
            f"installing the bundle's wheels into {site} failed", env=pip_env)
        (site / ".bundle").write_text(want)
        say(f"{site}: the bundle's {len(wheels)} wheels installed offline")
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONUNBUFFERED="1", JUPYTER_PATH=str(site / "share" / "jupyter"),
               IPYTHONDIR=str(work / "ipython"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(site), env.get("PYTHONPATH")]))
    env.pop("MPLBACKEND", None)  # the kernel's inline backend: another one shows no figures
    return env


# run with the bundle on the path: what this Python has, or an `error:` line where it falls short
PROBE = r"""
import json, os, subprocess, sys, torch
if not hasattr(torch.optim, "Muon"):  # lib.train subclasses it: importing it would fail
    sys.exit(f"error: torch {torch.__version__} has no torch.optim.Muon (torch 2.9 and later), "
             "which lib/train.py uses for block 3")
from lib.train import pick_device
try:
    device = pick_device(sys.argv[1])
except ValueError as e:
    sys.exit(f"error: {e}")
import papermill, jupytext, nbconvert, ipykernel, torchinfo
from lib.run import cpu_name, git_commit
info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
        "device": str(device), "papermill": papermill.__version__, "jupytext": jupytext.__version__,
        "cpu": cpu_name(), "commit": git_commit()[0][:10], "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    info.update(nvidia_smi=smi, driver=smi.split(",")[1].strip())
except (OSError, subprocess.TimeoutExpired, IndexError):
    pass
print(json.dumps(info))
"""


def run_notebooks(device, out, env, logs, jobs=1, smoke=False, paths=None):
    """Every notebook (or `paths`; the seeds study, much the longest, first) into `out`, `jobs` at a time, logs in
    `logs`. Returns ({stem: seconds or "up to date"}, {stem: error line}, [stems a stop left unfinished])."""
    paths = paths or sorted((REPO / "notebooks").glob("[0-9]*.py"),
                            key=lambda p: (not re.search(r"^seeds\s*=", p.read_text(), re.M), p.name))
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env = {**env, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}
    logs.mkdir(parents=True, exist_ok=True)
    seconds, failed, todo, running = {}, {}, list(paths), {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                nb = todo.pop(0)
                with open(logs / f"{nb.stem}.log", "w") as log:
                    running[nb] = time.perf_counter(), subprocess.Popen(
                        [sys.executable, "-m", "lib.pipeline", "run", str(nb), "--out", str(out), "-c", "device",
                         device, *["--force", "--smoke"] * smoke], cwd=REPO, env=env, stdout=log, stderr=log)
            for nb in [nb for nb, (_, proc) in running.items() if proc.poll() is not None]:
                start, proc = running.pop(nb)
                text = (logs / f"{nb.stem}.log").read_text()
                if proc.returncode:
                    failed[nb.stem] = error_line(text)
                    continue
                took = "up to date" if f"[{nb.stem}] up to date" in text else round(time.perf_counter() - start, 1)
                say(f"  {nb.stem}: {took if isinstance(took, str) else f'{took:.0f} s'}")
                seconds[nb.stem] = took
            time.sleep(0.2)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through `stop`: those running are ended, no other is started
        for _, proc in running.values():
            proc.terminate()
        for _, proc in running.values():
            proc.wait()
    return seconds, failed, [p.stem for p in paths if p.stem not in seconds and p.stem not in failed]


def check(bundle_dir=BUNDLE, device="cuda", smoke_only=False, jobs=None, out=None, work=WORK, resume=False):
    started, stages, bundle_dir, work = time.perf_counter(), {}, Path(bundle_dir), Path(work).resolve()
    out = Path(out).resolve() if out else (work / "smoke" if smoke_only else GPU_REPORTS)
    jobs = jobs or (1 if device.startswith("cpu") else 2)

    def stage(name, step, output=None):
        """Run a step, timed; with --resume a step whose `output` exists is kept."""
        if resume and not smoke_only and output and output.exists():
            return say(f"{name}: kept from an earlier run ({output})")
        t = time.perf_counter()
        result = step()
        stages[name] = round(time.perf_counter() - t, 1)
        return result

    info = read_bundle(bundle_dir)
    if importlib.util.find_spec("torch") is None:
        raise CheckError(f"this Python ({sys.executable}) has no torch: run the check with the Python "
                         "that has the machine's torch (make gpu-check PY=...)")

    def wheels():
        env = install(work, [bundle_dir.resolve() / "wheels" / w for w in info["wheels"]])
        done = run([sys.executable, "-c", PROBE, device], "this Python cannot run the project", env=env)
        return env, json.loads(done.stdout.strip().splitlines()[-1])
    env, environment = stage("wheels", wheels)
    say(f"{environment['device']} ({environment.get('gpu') or environment['cpu']}), torch {environment['torch']}, "
        f"CUDA {environment['cuda'] or '-'}, driver {environment.get('driver', '-')}")
    from lib.data import MD5, raw_dir
    unpack_mnist(bundle_dir / "mnist", raw_dir(), MD5)

    def smoke_pass():
        n = 1 if device.startswith("cpu") else min(6, max(1, (os.cpu_count() or 1) // 2))
        say(f"smoke pass: every notebook on {device}, {n} at a time, into {work / 'smoke'}")
        seconds, failed, unfinished = run_notebooks(device, work / "smoke", env, work / "logs/smoke", n, smoke=True)
        if unfinished:
            raise KeyboardInterrupt
        if failed:
            stem, err = next(iter(failed.items()))
            raise CheckError(f"smoke run of {stem} on {device} failed: {err} (log: {work / 'logs/smoke' / stem}.log)")
        (work / "smoke" / f".passed-{device}").touch()
        return seconds
    smoke = stage("smoke pass", smoke_pass, work / "smoke" / f".passed-{device}") or {}

    def bench():
        say("bench: python -m lib.bench")
        cmd = [sys.executable, "-m", "lib.bench", "--device", device, *["--steps", "5", "--repeats", "1"] * smoke_only]
        done = run(cmd, "python -m lib.bench failed", env=env)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.txt").write_text(done.stdout)
        say("  " + next((line for line in done.stdout.splitlines() if line.startswith("ratio:")), "(no ratio)"))
    stage("bench", bench, out / "bench.txt")

    seconds, failed, unfinished = smoke, {}, []
    if not smoke_only:
        say(f"every notebook on {device}, {jobs} at a time, into {out} (up-to-date reports are kept)")
        logs = work / "logs/reports"
        seconds, failed, unfinished = stage("notebooks", lambda: run_notebooks(device, out, env, logs, jobs))
        for stem, err in failed.items():
            print(f"error: {stem} on {device} failed: {err} (log: {logs / stem}.log)", file=sys.stderr, flush=True)
    run([sys.executable, "-m", "lib.pipeline", "index", "--out", str(out)], f"the index of {out} failed",
        unless="targets missed", env=env)

    ratio = re.search(r"^ratio: ([0-9.]+)", (out / "bench.txt").read_text(), re.M)
    record = {"smoke_only": smoke_only, "device": device, "jobs": jobs, "environment": environment,
              "seconds": round(time.perf_counter() - started, 1), "stages": stages, "notebook_seconds": seconds,
              "failures": failed, "stopped_unfinished": unfinished, "bench_ratio": float(ratio[1]) if ratio else None,
              "when": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    (out / "gpu-record.json").write_text(json.dumps(record, indent=1) + "\n")
    say(f"record: {out / 'gpu-record.json'}; index: {out / 'README.md'}; the check took {record['seconds']:.0f} s")
    if unfinished:
        raise CheckError(f"stopped before {', '.join(unfinished)} finished; the record and the reports that "
                         "finished are kept: run the check again with --resume to go on")
    if failed:
        raise CheckError(f"{len(failed)} notebook(s) failed on {device}: {', '.join(failed)}")
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lib.gpu", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="download the wheels and pack MNIST (needs PyPI)")
    b.add_argument("--out", type=Path, default=BUNDLE)
    b.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    c = sub.add_parser("check", help="on the GPU machine: install offline, smoke, bench, every notebook, record")
    c.add_argument("--bundle", dest="bundle_dir", type=Path, default=BUNDLE, metavar="BUNDLE")
    c.add_argument("--device", default="cuda")
    c.add_argument("--smoke-only", action="store_true", help="a dry run: smoke parameters, into build/gpu-check/smoke")
    c.add_argument("--jobs", type=int, help="notebooks at once in the full pass (default 2 on a GPU, 1 on a CPU)")
    c.add_argument("--out", help="the reports folder (default reports/gpu; with --smoke-only build/gpu-check/smoke)")
    c.add_argument("--work", default=WORK, help="the bundle's packages, smoke runs, logs (default build/gpu-check)")
    c.add_argument("--resume", action="store_true", help="keep the smoke pass and bench of an earlier, stopped check")
    args = vars(ap.parse_args(argv))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: the record is still written
    try:
        (bundle if args.pop("command") == "bundle" else check)(**args)
    except CheckError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted")


if __name__ == "__main__":
    main()
