"""A GPU machine with its own torch and no package registry: pack here, check there.

    python -m lib.gpu bundle [--out build/gpu-bundle] [--python-version 3.12]     # make gpu-bundle
    python3 -m lib.gpu check [--bundle build/gpu-bundle] [--device cuda] [--smoke-only]  # make gpu-check

The bundle's contents and the check's steps: docs/gpu.md. Only the standard library is
imported at the top: `check` starts, and fails clearly, in any Python.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lib.paths import REPO

BUNDLE = REPO / "build/gpu-bundle"
WORK = REPO / "build/gpu-check"
GPU_REPORTS = REPO / "reports/gpu"
LIMIT_MIB = 64  # what the device tool carries: the bundle and the working tree together

# what the notebooks need that the GPU image lacks (their dependencies come along); ipywidgets:
# tqdm.auto in a kernel warns without it
PACKAGES = ["papermill", "jupytext", "nbformat", "nbclient", "nbconvert", "ipykernel", "ipywidgets",
            "torchinfo"]
# what the GPU image has (its torch 2.11 + CUDA 13, Python 3.12): never carried
IMAGE = frozenset("""absl-py accelerate anyio attrs certifi charset-normalizer click cloudpickle
contourpy cycler filelock fonttools fsspec h11 httpcore httpx idna jinja2 joblib kiwisolver markdown
markdown-it-py markupsafe matplotlib mdurl mpmath networkx numpy packaging pandas pillow pip pluggy
psutil pygments pyparsing pytest python-dateutil pyyaml regex requests rich scipy seaborn setuptools
six sympy tabulate torch torchvision tqdm typing-extensions urllib3 wheel zipp pyarrow""".split())
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
    """The line of a command's output that says what went wrong: its last `error: ...` line
    (pip's `ERROR: ...` too), else the exception line of its traceback, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pattern in (r"(?i)error: ", r"[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b"):
        found = [line for line in lines if re.match(pattern, line)]
        if found:
            return re.sub(r"(?i)^error: ", "", found[-1])[:500]
    return lines[-1] if lines else "(no output)"


def md5_of(data):
    return hashlib.md5(data).hexdigest()


def mib(n):
    return n / 2 ** 20


def folder_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --- the bundle ---------------------------------------------------------------------------
def pack_mnist(raw, dest, md5s):
    """Gzip each MNIST file of `raw` into `dest`, each checked against `md5s` first."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, want in md5s.items():
        data = (raw / name).read_bytes()
        if md5_of(data) != want:
            raise CheckError(f"{raw / name} fails its md5 check: run `make data` first")
        (dest / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


def unpack_mnist(src, raw, md5s, log=say):
    """Unpack the bundle's MNIST (`src`, as `pack_mnist` left it) into `raw` where `raw` lacks
    a file matching `md5s` (lib.data's); each file unpacked must match. Returns the names written."""
    written = []
    for name, want in md5s.items():
        target = raw / name
        if target.is_file() and md5_of(target.read_bytes()) == want:
            continue
        try:
            data = gzip.decompress((src / f"{name}.gz").read_bytes())
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise CheckError(f"the bundle's {src / name}.gz cannot be unpacked ({e}): "
                             "carry the bundle again") from None
        if md5_of(data) != want:
            raise CheckError(f"the bundle's {name}.gz unpacks to md5 {md5_of(data)}, not {want}: "
                             "carry the bundle again")
        raw.mkdir(parents=True, exist_ok=True)
        (raw / f".{name}.tmp").write_bytes(data)
        os.replace(raw / f".{name}.tmp", target)
        written.append(name)
    log(f"MNIST in {raw}: {len(written)} file(s) unpacked, all {len(md5s)} match their md5")
    return written


def tree_bytes():
    """Bytes of what the device tool carries besides the bundle: tracked files and untracked
    ones git does not ignore (None outside git)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum(p.stat().st_size for p in {REPO / p for p in out.decode().split("\0") if p} if p.is_file())


def bundle(out=BUNDLE, python_version="3.12", platforms=PLATFORMS):
    """Download the wheels and pack MNIST into `out` (replaced whole, only once complete)."""
    from lib.data import MD5, DataError, ensure_mnist

    out = Path(out).resolve()
    try:
        raw = ensure_mnist()
    except DataError as e:
        raise CheckError(str(e).splitlines()[0]) from None
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    say(f"downloading for CPython {python_version} ({', '.join(platforms)}), "
        f"under requirements.txt's pins: {' '.join(PACKAGES)}")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                           "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
                           *(f"--platform={p}" for p in platforms), "-c", str(REPO / "requirements.txt"),
                           "-d", str(staging / "wheels"), *PACKAGES], capture_output=True, text=True)
    if done.returncode != 0:
        raise CheckError(f"pip download failed: {error_line(done.stderr)}")
    wheels = sorted(staging.glob("wheels/*.whl"))
    dropped = [w for w in wheels if wheel_project(w.name) in IMAGE]
    for w in dropped:
        w.unlink()
    kept, dropped = [w.name for w in wheels if w not in dropped], [w.name for w in dropped]
    pack_mnist(raw, staging / "mnist", MD5)
    manifest = {"python_version": python_version, "platforms": platforms, "packages": PACKAGES,
                "wheels": kept, "left_out_for_the_image": dropped, "mnist": sorted(MD5),
                "made": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)

    total, tree = folder_bytes(out), tree_bytes()
    say(f"{len(kept)} wheels ({mib(folder_bytes(out / 'wheels')):.1f} MiB) and MNIST "
        f"({mib(folder_bytes(out / 'mnist')):.1f} MiB) in {out}; left out, the image has them: "
        f"{', '.join(wheel_project(w) for w in dropped) or 'none'}")
    line = f"bundle: {mib(total):.1f} MiB"
    if tree is not None:
        line += f"; with the working tree ({mib(tree):.1f} MiB): {mib(total + tree):.1f} MiB of {LIMIT_MIB} MiB"
        if total + tree > LIMIT_MIB * 2 ** 20:
            raise CheckError(line + ": too large to carry")
    print(line, flush=True)
    return out


# --- the environment on the GPU machine -------------------------------------------------
def read_bundle(path):
    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        raise CheckError(f"no GPU bundle at {path}: make it with `make gpu-bundle` on a machine "
                         f"that reaches PyPI, then carry that folder (docs/gpu.md)")
    try:
        info = json.loads(manifest.read_text())
    except ValueError as e:
        raise CheckError(f"{manifest} is damaged ({e}): make the bundle again") from None
    missing = [f"wheels/{w}" for w in info["wheels"]] + [f"mnist/{n}.gz" for n in info["mnist"]]
    missing = [m for m in missing if not (Path(path) / m).is_file()]
    if missing:
        raise CheckError(f"the bundle at {path} is incomplete: {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                         + " missing: carry it again")
    here = "%d.%d" % sys.version_info[:2]
    if info["python_version"] != here:
        raise CheckError(f"the bundle at {path} holds wheels for Python {info['python_version']}; "
                         f"this is Python {here} ({sys.executable}): make one for it with "
                         f"`make gpu-bundle GPU_PYTHON={here} BUNDLE=...`")
    return info


def install(site, bundle_dir, info):
    """The bundle's wheels into `site`, a folder that goes on PYTHONPATH before this Python's own
    packages: offline, without resolving (the bundle is the set pip resolved; what it needs
    besides is the image's). Kept while its stamp (the bundle's wheels) matches."""
    stamp, want = site / ".bundle", json.dumps(info["wheels"])
    if stamp.is_file() and stamp.read_text() == want:
        return say(f"{site}: the bundle's wheels, up to date")
    shutil.rmtree(site, ignore_errors=True)
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}  # no index, no user configuration
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    wheels = [str(Path(bundle_dir).resolve() / "wheels" / w) for w in info["wheels"]]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *wheels],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise CheckError(f"installing the bundle's wheels into {site} failed: {error_line(done.stderr + done.stdout)}")
    stamp.write_text(want)
    say(f"{site}: the bundle's {len(wheels)} wheels installed offline in {time.perf_counter() - start:.0f} s")


PROBE = r"""
import json, sys
import torch
info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda}
if not hasattr(torch.optim, "Muon"):  # lib.train subclasses it: importing it would fail
    sys.exit(f"error: torch {torch.__version__} has no torch.optim.Muon (torch 2.9 and later), "
             "which lib/train.py uses for block 3")
from lib.train import pick_device
try:
    device = pick_device(sys.argv[1])
except ValueError as e:
    sys.exit(f"error: {e}")
info["device"] = str(device)
if device.type == "cuda":
    info["gpu"] = torch.cuda.get_device_name(device)
import papermill, jupytext, nbconvert, ipykernel, torchinfo
from lib.run import cpu_name, git_commit
print(json.dumps({**info, "papermill": papermill.__version__, "jupytext": jupytext.__version__, "cpu": cpu_name(),
                  "commit": git_commit()[0][:10]}))
"""


def probe(device, env):
    """What this Python has, with the bundle: python, torch, CUDA, the device; a clear error
    where it falls short."""
    done = subprocess.run([sys.executable, "-c", PROBE, device], capture_output=True, text=True, cwd=REPO, env=env)
    if done.returncode != 0:
        raise CheckError(f"this Python cannot run the project: {error_line(done.stderr)}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout.strip().splitlines()[0]
        info["driver"] = info["nvidia_smi"].split(",")[1].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return info


def child_env(site, work, jobs):
    """The notebooks' environment: the bundle's packages and Jupyter data (the kernel,
    nbconvert's templates) before this Python's; no progress bars."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(site)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(TQDM_DISABLE="1", PYTHONUNBUFFERED="1", JUPYTER_PATH=str(site / "share" / "jupyter"),
               IPYTHONDIR=str(Path(work) / "ipython"))
    env.pop("MPLBACKEND", None)  # the kernel's inline backend: another one shows no figures
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def stop(signum, frame):
    """SIGTERM (`timeout`, a job's end) as Ctrl-C: the check stops and still writes its record."""
    raise KeyboardInterrupt


def run_notebooks(device, out, env, logs, jobs=1, smoke=False, paths=None):
    """`python -m lib.pipeline run [--smoke]` of every notebook (or `paths`) into `out`, `jobs` at
    a time, the seeds study (a `seeds` list, much the longest) first; each one's output in
    `logs/<stem>.log`. Returns ({stem: seconds or "up to date"}, {stem: its error line},
    [stems a stop (Ctrl-C, SIGTERM) left unfinished: those running are ended, none is started])."""
    paths = paths or sorted((REPO / "notebooks").glob("[0-9]*.py"),
                            key=lambda p: (not re.search(r"^seeds\s*=", p.read_text(), re.M), p.name))
    logs.mkdir(parents=True, exist_ok=True)
    seconds, failed, running, stopped = {}, {}, set(), threading.Event()

    def one(nb):
        start, log = time.perf_counter(), logs / f"{nb.stem}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen([sys.executable, "-m", "lib.pipeline", "run", str(nb), "--out", str(out),
                                     "-c", "device", device, *["--force", "--smoke"] * smoke],
                                    cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
            running.add(proc)
            rc = proc.wait()
        if stopped.is_set() and rc:
            return
        if rc:
            failed[nb.stem] = error_line(log.read_text())
            return
        took = "up to date" if f"[{nb.stem}] up to date" in log.read_text() else round(time.perf_counter() - start, 1)
        say(f"  {nb.stem}: {took if isinstance(took, str) else f'{took:.0f} s'}")
        seconds[nb.stem] = took

    pool = ThreadPoolExecutor(jobs)
    try:
        list(pool.map(one, paths))
    except KeyboardInterrupt:
        stopped.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(running):
            proc.terminate()
    pool.shutdown(wait=True)
    return seconds, failed, [p.stem for p in paths if p.stem not in seconds and p.stem not in failed]


# --- check ----------------------------------------------------------------------------------
def check(bundle_dir=BUNDLE, device="cuda", smoke_only=False, jobs=None, out=None, work=WORK, resume=False):
    started, stages = time.perf_counter(), {}
    work = Path(work).resolve()
    out = Path(out).resolve() if out else (work / "smoke" if smoke_only else GPU_REPORTS)
    gpu = not device.startswith("cpu")
    jobs = jobs or (2 if gpu else 1)

    def stage(name, output, run):
        """Run a step and time it; with --resume a step whose `output` exists is kept."""
        if resume and not smoke_only and output.exists():
            return say(f"{name}: kept from an earlier run ({output})")
        t = time.perf_counter()
        run()
        stages[name] = round(time.perf_counter() - t, 1)

    info = read_bundle(bundle_dir)
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        raise CheckError(f"this Python ({sys.executable}) has no torch: run the check with the Python "
                         "that has the machine's torch (make gpu-check PY=...)")
    t = time.perf_counter()
    install(work / "site", bundle_dir, info)
    env = child_env(work / "site", work, jobs)
    environment = probe(device, env)
    environment["cores"] = os.cpu_count()
    say(f"{environment['device']} ({environment.get('gpu') or environment['cpu']}), torch {environment['torch']}"
        + (f", CUDA {environment['cuda']}" if environment.get("cuda") else "")
        + (f", driver {environment['driver']}" if environment.get("driver") else ""))
    stages["wheels"] = round(time.perf_counter() - t, 1)

    sys.path.insert(0, str(REPO))
    from lib.data import MD5, raw_dir
    unpack_mnist(Path(bundle_dir) / "mnist", raw_dir(), MD5)

    smoke = {}

    def smoke_pass():
        n = min(6, max(1, (os.cpu_count() or 1) // 2)) if gpu else 1
        say(f"smoke pass: every notebook on {device}, {n} at a time, into {work / 'smoke'}")
        seconds, failed, unfinished = run_notebooks(device, work / "smoke", child_env(work / "site", work, n),
                                                     work / "logs/smoke", jobs=n, smoke=True)
        if unfinished:
            raise KeyboardInterrupt
        if failed:
            stem, err = next(iter(failed.items()))
            raise CheckError(f"smoke run of {stem} on {device} failed: {err} (log: {work / 'logs/smoke' / stem}.log)")
        smoke.update(seconds)
        (work / "smoke" / f".passed-{device}").touch()
    stage("smoke pass", work / "smoke" / f".passed-{device}", smoke_pass)

    def bench():
        say("bench: python -m lib.bench")
        done = subprocess.run([sys.executable, "-m", "lib.bench", "--device", device,
                               *["--steps", "5", "--repeats", "1"] * smoke_only],
                              cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise CheckError(f"python -m lib.bench failed: {error_line(done.stderr)}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.txt").write_text(done.stdout)
        say("  " + next((line for line in done.stdout.splitlines() if line.startswith("ratio:")), "(no ratio)"))
    stage("bench", out / "bench.txt", bench)

    seconds, failed, unfinished = smoke, {}, []
    if not smoke_only:
        t = time.perf_counter()
        say(f"every notebook on {device}, {jobs} at a time, into {out} (up-to-date reports are kept)")
        seconds, failed, unfinished = run_notebooks(device, out, env, work / "logs/reports", jobs=jobs)
        for stem, err in failed.items():
            print(f"error: {stem} on {device} failed: {err} (log: {work / 'logs/reports' / stem}.log)",
                  file=sys.stderr, flush=True)
        stages["notebooks"] = round(time.perf_counter() - t, 1)
    done = subprocess.run([sys.executable, "-m", "lib.pipeline", "index", "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0 and "targets missed" not in done.stderr:
        raise CheckError(f"the index of {out} failed: {error_line(done.stderr)}")

    ratio = re.search(r"^ratio: ([0-9.]+)", (out / "bench.txt").read_text(), re.M)
    record = {"smoke_only": smoke_only, "device": device, "jobs": jobs, "environment": environment,
              "seconds": round(time.perf_counter() - started, 1),
              "stages": stages, "notebook_seconds": seconds, "failures": failed, "stopped_unfinished": unfinished,
              "bench_ratio": float(ratio[1]) if ratio else None, "when": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    (out / "gpu-record.json").write_text(json.dumps(record, indent=1) + "\n")
    say(f"record: {out / 'gpu-record.json'}; the reports' index: {out / 'README.md'}; "
        f"the whole check took {record['seconds']:.0f} s")
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
    b.add_argument("--out", default=str(BUNDLE))
    b.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    c = sub.add_parser("check", help="on the GPU machine: install offline, smoke, bench, every notebook, record")
    c.add_argument("--bundle", default=str(BUNDLE))
    c.add_argument("--device", default="cuda")
    c.add_argument("--smoke-only", action="store_true",
                   help="every step on smoke parameters, into build/gpu-check/smoke (a dry run)")
    c.add_argument("--jobs", type=int, help="notebooks at once in the full pass (default 2 on a GPU, 1 on a CPU)")
    c.add_argument("--out", help="the reports folder (default reports/gpu; with --smoke-only build/gpu-check/smoke)")
    c.add_argument("--work", default=str(WORK), help="the bundle's packages, smoke runs, logs (default build/gpu-check)")
    c.add_argument("--resume", action="store_true", help="keep the smoke pass and bench of an earlier, stopped check")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, stop)
    try:
        if args.command == "bundle":
            bundle(Path(args.out), args.python_version)
        else:
            check(Path(args.bundle), args.device, args.smoke_only, args.jobs, args.out, Path(args.work), args.resume)
    except CheckError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted")


if __name__ == "__main__":
    main()
