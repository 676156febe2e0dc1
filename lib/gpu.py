"""A GPU machine with its own torch and no package registry: pack here, check there.

    python -m lib.gpu bundle [--out build/gpu-bundle] [--python-version 3.12]     # make gpu-bundle
    python3 -m lib.gpu check [--bundle build/gpu-bundle] [--device cuda] [--smoke-only]  # make gpu-check

`bundle` (on a machine that reaches PyPI) downloads into one folder the wheels that the GPU
image lacks, for CPython `--python-version` on manylinux x86-64: papermill, jupytext, nbformat,
nbclient, nbconvert, ipykernel, ipywidgets and torchinfo at requirements.txt's pins, and what
they need, resolved by pip; the wheels of what the image already has (`IMAGE`: torch, numpy, pandas, ...)
are left out, so that no second version of them travels. It packs MNIST beside them, the four
raw IDX files gzipped, with their md5 sums, and prints the bundle's size.

`check` (on the GPU machine, run by the Python that has the machine's torch):
  1. makes a venv over that Python's packages (build/gpu-check/venv) and installs the bundle's
     wheels into it offline (`pip install --no-index --find-links`);
  2. unpacks MNIST where lib.data reads it (MNIST_DATA_DIR, default data/) and checks the md5s;
  3. runs every notebook on smoke parameters on the device (build/gpu-check/smoke), stopping at
     the first that fails with one line naming it and its error;
  4. `python -m lib.bench` on the device (bench.txt; its `ratio:` line);
  5. one block-3 training epoch alone, then one under torch.profiler (gpu-profile.json);
  6. every notebook with its own parameters on the device into reports/gpu (the CPU reports in
     reports/ stay as they are), a report already up to date skipped; then their index;
  7. a record of it all: gpu-record.md and gpu-record.json.
With `--smoke-only` everything runs on smoke parameters and writes into build/gpu-check/smoke,
not reports/gpu: a dry run, e.g. `--device cpu` on a machine without a GPU.

This module imports only the standard library at the top: `check` must start, and fail
clearly, in any Python.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lib.paths import REPO

BUNDLE = REPO / "build/gpu-bundle"
WORK = REPO / "build/gpu-check"
GPU_REPORTS = REPO / "reports/gpu"
LIMIT_MIB = 64  # what the device tool carries: the bundle and the working tree together
BUDGET_S = 480  # the whole check on an H200

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


def last_line(text, prefix=""):
    """The last non-empty line of `text` (the last starting with `prefix`, where one does)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marked = [line for line in lines if prefix and line.startswith(prefix)]
    return (marked or lines or ["(no output)"])[-1]


def error_line(text):
    """The line of a failed command's output that says what went wrong: its `error: ...` line,
    else the exception line of its traceback, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pattern in (r"error: ", r"[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b"):
        found = [line for line in lines if re.match(pattern, line)]
        if found:
            return found[-1].removeprefix("error: ")[:500]
    return lines[-1] if lines else "(no output)"


def mib(n):
    return n / 2 ** 20


def folder_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --- the bundle ---------------------------------------------------------------------------
def pins(path=REPO / "requirements.txt"):
    """{normalized name: version} of requirements.txt's `name==version` lines."""
    found = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9._-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            found[normalize(m[1])] = m[2]
    return found


def requirements():
    pinned = pins()
    return [f"{name}=={pinned[name]}" if name in pinned else name for name in PACKAGES]


def md5_of(data):
    return hashlib.md5(data).hexdigest()


def pack_mnist(raw, dest, md5s):
    """Gzip each MNIST file of `raw` that matches its md5 into `dest`, and write `dest/MD5SUMS`
    (md5sum's format, of the unpacked files). Returns {name: gzipped bytes}."""
    dest.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, want in md5s.items():
        data = (raw / name).read_bytes()
        if md5_of(data) != want:
            raise CheckError(f"{raw / name} fails its md5 check: run `make data` first")
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        (dest / f"{name}.gz").write_bytes(packed)
        sizes[name] = len(packed)
    (dest / "MD5SUMS").write_text("".join(f"{md5s[n]}  {n}\n" for n in md5s))
    return sizes


def unpack_mnist(src, raw, md5s, log=say):
    """Unpack the bundle's MNIST (`src`, as `pack_mnist` left it) into `raw`, file by file
    where `raw` lacks a verified one; every file must match both the bundle's MD5SUMS and
    `md5s` (lib.data's). Returns the names written."""
    try:
        listed = dict(reversed(line.split()) for line in (src / "MD5SUMS").read_text().splitlines()
                      if line.strip())
    except (OSError, ValueError) as e:
        raise CheckError(f"the bundle's MNIST has no readable {src / 'MD5SUMS'} ({e})") from None
    differ = [n for n in md5s if listed.get(n) != md5s[n]]
    if differ:
        raise CheckError(f"{src / 'MD5SUMS'} disagrees with lib/data.py for {', '.join(differ)}: "
                         "make the bundle again")
    written = []
    for name, want in md5s.items():
        target = raw / name
        if target.is_file() and md5_of(target.read_bytes()) == want:
            continue
        try:
            data = gzip.decompress((src / f"{name}.gz").read_bytes())
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise CheckError(f"the bundle's {src / name}.gz cannot be unpacked ({e}): "
                             "carry the bundle again") from None
        if md5_of(data) != want:
            raise CheckError(f"the bundle's {name}.gz unpacks to md5 {md5_of(data)}, not {want}: "
                             "carry the bundle again")
        raw.mkdir(parents=True, exist_ok=True)
        tmp = raw / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, target)
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
    paths = {REPO / p for p in out.decode().split("\0") if p}
    return sum(p.stat().st_size for p in paths if p.is_file())


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
    wheels = staging / "wheels"
    wheels.mkdir(parents=True)
    wanted = requirements()
    say(f"downloading wheels for CPython {python_version} ({', '.join(platforms)}): {' '.join(wanted)}")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
           "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
           *(f"--platform={p}" for p in platforms), "-d", str(wheels), *wanted]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CheckError(f"pip download failed: {last_line(done.stderr, 'ERROR:')}")
    kept, dropped = [], []
    for whl in sorted(wheels.glob("*.whl")):
        if wheel_project(whl.name) in IMAGE:
            whl.unlink()
            dropped.append(whl.name)
        else:
            kept.append(whl.name)
    (staging / "requirements.txt").write_text("\n".join(wanted) + "\n")
    sizes = pack_mnist(raw, staging / "mnist", MD5)
    manifest = {"python_version": python_version, "implementation": "cp", "platforms": platforms,
                "requirements": wanted, "wheels": kept, "left_out_for_the_image": dropped,
                "mnist": {n: {"md5": MD5[n], "gz_bytes": sizes[n]} for n in MD5},
                "made": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)

    total, tree = folder_bytes(out), tree_bytes()
    say(f"{len(kept)} wheels ({mib(folder_bytes(out / 'wheels')):.1f} MiB) and MNIST "
        f"({mib(sum(sizes.values())):.1f} MiB) in {out}; left out, the image has them: "
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
    path = Path(path)
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise CheckError(f"no GPU bundle at {path}: make it with `make gpu-bundle` on a machine "
                         f"that reaches PyPI, then carry that folder (docs/gpu.md)")
    try:
        info = json.loads(manifest.read_text())
    except ValueError as e:
        raise CheckError(f"{manifest} is damaged ({e}): make the bundle again") from None
    missing = [w for w in info["wheels"] if not (path / "wheels" / w).is_file()]
    missing += [f"mnist/{n}.gz" for n in info["mnist"] if not (path / "mnist" / f"{n}.gz").is_file()]
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


def offline_env():
    """The environment for pip installing from the bundle only: no index, no user config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def make_venv(venv, bundle_dir, info):
    """A venv that sees this Python's packages (torch above all) and has the bundle's wheels;
    kept while its stamp (this Python, the bundle's wheels) matches. Returns its python."""
    venv = Path(venv)
    python = venv / "bin" / "python"
    stamp = venv / ".bundle"
    want = json.dumps({"base": sys.executable, "wheels": info["wheels"],
                       "requirements": info["requirements"]}, sort_keys=True)
    if python.exists() and stamp.is_file() and stamp.read_text() == want:
        say(f"venv {venv}: up to date")
        return python
    shutil.rmtree(venv, ignore_errors=True)
    start = time.perf_counter()
    # A venv's --system-site-packages sees its base interpreter's packages, not those of the venv
    # we may be running in (the GPU image's torch is in one): those come in by a .pth file.
    in_venv = sys.prefix != sys.base_prefix
    create = [sys.executable, "-m", "venv", *([] if in_venv else ["--system-site-packages"]), str(venv)]
    pip = [str(python), "-m", "pip"]
    done = subprocess.run(create, capture_output=True, text=True)
    if done.returncode != 0:  # no ensurepip here (Debian without python3-venv): our own pip
        shutil.rmtree(venv, ignore_errors=True)
        done = subprocess.run(create + ["--without-pip"], capture_output=True, text=True)
        pip = [sys.executable, "-m", "pip", "--python", str(python)]
    if done.returncode != 0:
        raise CheckError(f"could not create the venv {venv}: {last_line(done.stderr + done.stdout)}")
    import site
    dirs = site.getsitepackages() if in_venv else []
    user = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user):  # a venv never sees the user's packages
        dirs.append(user)
    if dirs:
        site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        lines = [f"import site; site.addsitedir({d!r})" for d in dirs]
        (Path(site_dir) / "_gpu_check_base.pth").write_text("\n".join(lines) + "\n")
    cmd = pip + ["install", "--no-index", "--find-links", str(Path(bundle_dir).resolve() / "wheels"),
                 "-q", "-r", str(Path(bundle_dir).resolve() / "requirements.txt")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=offline_env())
    if done.returncode != 0:
        raise CheckError(f"installing the bundle's wheels into {venv} failed: "
                         f"{last_line(done.stderr + done.stdout, 'ERROR:')}")
    stamp.write_text(want)
    say(f"venv {venv}: the bundle's {len(info['wheels'])} wheels installed offline "
        f"in {time.perf_counter() - start:.0f} s")
    return python


PROBE = r"""
import json, sys
import torch
info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
        "muon": hasattr(torch.optim, "Muon")}
if not info["muon"]:  # lib.train subclasses it: importing it would fail
    sys.exit(print(json.dumps(info)))
from lib.train import pick_device
try:
    device = pick_device(sys.argv[1])
except ValueError as e:
    info["error"] = str(e)
    sys.exit(print(json.dumps(info)))
else:
    info["device"] = str(device)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
import papermill, jupytext, nbconvert, ipykernel, torchinfo
info.update(papermill=papermill.__version__, jupytext=jupytext.__version__)
from lib.run import cpu_name
info["cpu"] = cpu_name()
print(json.dumps(info))
"""


def probe(python, device, env):
    """What the venv has: python, torch, CUDA, the device; a clear error where it falls short."""
    done = subprocess.run([str(python), "-c", PROBE, device], capture_output=True, text=True,
                          cwd=REPO, env=env)
    if done.returncode != 0:
        raise CheckError(f"the venv cannot run the project: {error_line(done.stderr)}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    if not info["muon"]:
        raise CheckError(f"torch {info['torch']} has no torch.optim.Muon (torch 2.9 and later), "
                         "which lib/train.py uses for block 3")
    if "error" in info:
        raise CheckError(info["error"])
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        if smi.returncode == 0 and smi.stdout.strip():
            info["nvidia_smi"] = smi.stdout.strip().splitlines()[0]
            info["driver"] = info["nvidia_smi"].split(",")[1].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return info


# --- running notebooks --------------------------------------------------------------------
def notebooks():
    return sorted((REPO / "notebooks").glob("[0-9]*.py"))


def longest_first(paths):
    """The seeds study (a `seeds` list) first: in parallel runs it is the longest by far."""
    return sorted(paths, key=lambda p: (not re.search(r"^seeds\s*=", p.read_text(), re.M), p.name))


def run_notebooks(python, paths, out, common, env, logs, jobs=1, force=False, stop_on_failure=True,
                  smoke=False):
    """`python -m lib.pipeline run [--smoke]` for each notebook into `out`, `jobs` at a time; each one's
    output in `logs/<stem>.log`. Returns ({stem: seconds or "up to date"}, {stem: error line})."""
    logs.mkdir(parents=True, exist_ok=True)
    args = [a for name, value in common.items() for a in ("-c", name, value)]
    todo, running, seconds, failed, stopping = list(paths), {}, {}, {}, False
    while todo or running:
        while todo and len(running) < jobs and not (failed and stop_on_failure):
            nb = todo.pop(0)
            log = open(logs / f"{nb.stem}.log", "w")
            cmd = [str(python), "-m", "lib.pipeline", "run", str(nb), "--out", str(out), *args]
            cmd += ["--force"] * force + ["--smoke"] * smoke
            running[nb.stem] = (subprocess.Popen(cmd, cwd=REPO, env=env,
                                                 stdout=log, stderr=subprocess.STDOUT), log,
                                time.perf_counter())
        if failed and stop_on_failure and not stopping:
            todo.clear()
            stopping = True
            for proc, _, _ in running.values():
                proc.terminate()  # the pipeline stops cleanly on SIGTERM: no report is changed
        for stem, (proc, log, start) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[stem]
            text = (logs / f"{stem}.log").read_text()
            if proc.returncode == 0:
                seconds[stem] = "up to date" if f"[{stem}] up to date" in text else round(time.perf_counter() - start, 1)
                say(f"  {stem}: {seconds[stem] if isinstance(seconds[stem], str) else f'{seconds[stem]:.0f} s'}")
            elif not (failed and stop_on_failure):
                failed[stem] = error_line(text)
        time.sleep(0.2)
    return seconds, failed


def child_env(venv, work, jobs):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    # Jupyter's data (the kernel, nbconvert's templates): the venv's, then that of the Pythons
    # whose packages it sees; not the user's
    shares = [str(Path(p) / "share" / "jupyter") for p in dict.fromkeys([venv, sys.prefix, sys.base_prefix])]
    env.update(TQDM_DISABLE="1", PYTHONUNBUFFERED="1", JUPYTER_DATA_DIR=shares[0],
               JUPYTER_PATH=os.pathsep.join(shares), IPYTHONDIR=str(Path(work) / "ipython"))
    env.pop("MPLBACKEND", None)  # the kernel's inline backend: another one shows no figures
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


# --- the profile (run inside the venv) ----------------------------------------------------
KERNEL_CLASSES = [  # (class, name fragments), first match wins
    ("memcpy/memset", ("memcpy", "memset")),
    ("batch norm", ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "bn_")),
    ("convolution", ("conv", "cudnn", "implicit_gemm", "fprop", "dgrad", "wgrad", "winograd")),
    ("matmul (Muon's Newton-Schulz)", ("gemm", "cutlass", "cublas", "matmul", "gemv", "splitk")),
    ("rotation (grid_sample)", ("grid_sampler", "grid_sample")),
    ("optimizer and EMA (foreach)", ("multi_tensor", "foreach")),
    ("reduction", ("reduce", "norm_kernel", "softmax", "nll_loss", "sum_kernel")),
    ("index/gather/scatter", ("index", "gather", "scatter", "randperm", "sort", "radix")),
    ("random numbers", ("distribution", "philox", "curand", "uniform", "normal_")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "copy", "fill", "cat", "pad")),
]


def kernel_class(name):
    low = name.lower()
    return next((cls for cls, parts in KERNEL_CLASSES if any(p in low for p in parts)), "other")


def profile_block3(device_name, out_json, train_limit=None, top=15):
    """Block 3 as notebooks/03_final.py builds it (its default parameters): one training
    epoch to warm up, one alone (timed), one under torch.profiler; writes `out_json`."""
    import jupytext
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    from lib.pipeline import notebook_parameters, parse_value
    from lib.train import mnist_batches, pick_device, recipe, seed_everything, train_epoch

    p = {k: parse_value(v) for k, v in notebook_parameters(jupytext.read(REPO / "notebooks/03_final.py")).items()}
    device = pick_device(device_name)
    cuda = device.type == "cuda"
    seed_everything(p["seed"])
    train, _ = mnist_batches(p["batch_size"], device, train_limit, 1000, p["rotation"], p["seed"])
    model, optimizer, scheduler, ema = recipe(p, len(train), device)

    def epoch():
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train_epoch(model, train, optimizer, scheduler, per_batch=True, ema=ema)
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    warm, alone = epoch(), epoch()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        profiled = epoch()
    start = time.perf_counter()
    steps = len(train)
    averages = prof.key_averages()
    kind = "device" if cuda else "cpu"
    sorts = ["self_device_time_total", "self_cuda_time_total"] if cuda else ["self_cpu_time_total"]
    sort = next(s for s in sorts if hasattr(averages[0], s)) if len(averages) else sorts[0]
    table = averages.table(sort_by=sort, row_limit=top)
    ops = sorted(averages, key=lambda a: getattr(a, sort), reverse=True)[:top]
    record = {
        "device": str(device), "torch": torch.__version__, "model": p["model_name"],
        "batch_size": p["batch_size"], "steps": steps, "images": len(train.y),
        "warmup_epoch_seconds": round(warm, 3), "epoch_seconds_alone": round(alone, 3),
        "profiled_epoch_seconds": round(profiled, 3), "sorted_by": sort, "table": table,
        "top_ops": [{"name": a.key, "calls": a.count, f"self_{kind}_us": round(getattr(a, sort), 1)}
                    for a in ops],
    }
    if cuda:
        kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        classes = {}
        for e in kernels:
            c = classes.setdefault(kernel_class(e.name), {"kernels": 0, "us": 0.0})
            c["kernels"] += 1
            c["us"] += e.time_range.elapsed_us()
        busy = sum(c["us"] for c in classes.values())
        record.update(
            kernels_per_step=round(sum(c["kernels"] for n, c in classes.items() if n != "memcpy/memset") / steps, 1),
            gpu_busy_seconds=round(busy / 1e6, 3),
            gpu_busy_share=round(busy / 1e6 / profiled, 3) if profiled else None,
            kernel_classes={n: {"kernels_per_step": round(c["kernels"] / steps, 1),
                                "us_per_step": round(c["us"] / steps, 1),
                                "share": round(c["us"] / busy, 3) if busy else 0.0}
                            for n, c in sorted(classes.items(), key=lambda kv: -kv[1]["us"])})
    record["analysis_seconds"] = round(time.perf_counter() - start, 1)
    Path(out_json).write_text(json.dumps(record, indent=1) + "\n")


# --- the record ---------------------------------------------------------------------------
def runs_of(m):
    return [r["history"] for r in m["runs"]] if "runs" in m else ([m["history"]] if "history" in m else [])


def notebook_rows(folder, seconds):
    """Per notebook: its pipeline time here, its own wall time, epochs and median epoch."""
    rows = []
    for path in sorted(Path(folder).glob("*.metrics.json")):
        stem, m = path.name.removesuffix(".metrics.json"), json.loads(path.read_text())
        epochs = [row["seconds"] for h in runs_of(m) for row in h]
        rows.append({"notebook": stem, "pipeline_seconds": seconds.get(stem), "wall_seconds": m.get("wall_seconds"),
                     "runs": len(runs_of(m)), "epochs": len(epochs),
                     "median_epoch_seconds": statistics.median(epochs) if epochs else None,
                     "device": m.get("device"), "target_met": m.get("target_met"),
                     "full_run": m.get("full_run")})
    return rows


def block3_epochs(folder):
    path = Path(folder) / "03_final.metrics.json"
    if not path.exists():
        return None
    seconds = [row["seconds"] for row in json.loads(path.read_text())["history"]]
    after = seconds[1:]
    return {"first": seconds[0] if seconds else None, "after_the_first": after,
            "median_after_the_first": statistics.median(after) if after else None}


def bench_summary(path):
    text = Path(path).read_text() if Path(path).exists() else ""
    ratio = re.search(r"^ratio: ([0-9.]+)", text, re.M)
    keep = [line for line in text.splitlines()
            if line.startswith(("device ", "train (median)", "eval:", "model:", "ours, ", "ratio"))]
    return {"ratio": float(ratio[1]) if ratio else None, "lines": keep}


def fmt(v, unit=" s", digits=1):
    return "–" if v is None else (v if isinstance(v, str) else f"{v:.{digits}f}{unit}")


def record_markdown(r):
    env, prof = r["environment"], r.get("profile") or {}
    lines = [f"# GPU check: {env.get('gpu') or env.get('device')}" + (" (a dry run)" if r["smoke_only"] else ""), "",
             "Written by `make gpu-check` (lib/gpu.py); do not edit by hand."
             + (" A dry run: every notebook on smoke parameters." if r["smoke_only"] else ""), "",
             "| | |", "|---|---|"]
    for label, key in [("device", "device"), ("GPU", "nvidia_smi"), ("NVIDIA driver", "driver"),
                       ("CUDA (torch's build)", "cuda"), ("torch", "torch"),
                       ("python", "python"), ("CPU", "cpu"), ("CPU cores", "cores"), ("git commit", "commit")]:
        if env.get(key) is not None:
            lines.append(f"| {label} | {env[key]} |")
    lines.append(f"| notebooks at once | {r['jobs']} |")
    lines.append(f"| the whole check | {r['seconds']:.0f} s"
                 + (f" (budget {BUDGET_S} s)" if not r["smoke_only"] else "") + " |")
    lines += ["", "## Stages", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in r["stages"].items()]
    lines += ["", "## Notebooks", "", f"Reports in `{r['reports']}`; their index: "
              f"[README.md](README.md). `pipeline` is the run here (kernel start, rendering); "
              f"`wall` is the notebook's own."
              + (f" {r['jobs']} notebooks ran at once: their epoch times include sharing the GPU."
                 if r["jobs"] > 1 else ""), "",
              "| notebook | pipeline | wall | runs | epochs | epoch (median) | target met |",
              "|---|---|---|---|---|---|---|"]
    for row in r["notebooks"]:
        met = "not checked" if not row["full_run"] else {True: "yes", False: "MISSED", None: "–"}[row["target_met"]]
        lines.append(f"| {row['notebook']} | {fmt(row['pipeline_seconds'])} | {fmt(row['wall_seconds'])} | "
                     f"{row['runs']} | {row['epochs']} | {fmt(row['median_epoch_seconds'], digits=2)} | {met} |")
    b3 = r.get("block3_epochs")
    if b3:
        after = b3["after_the_first"]
        lines += ["", "## Block 3's epochs", "", f"First epoch (warm-up) {fmt(b3['first'], digits=2)}; "
                  + (f"the {len(after)} after it: median {fmt(b3['median_after_the_first'], digits=2)} "
                     f"({', '.join(f'{s:.2f}' for s in after)} s)." if after else "no other epoch ran.")]
    if prof:
        lines += ["", "## One block-3 training epoch under torch.profiler", "",
                  f"{prof['model']}, batch {prof['batch_size']}, {prof['steps']} steps ({prof['images']:,} images), "
                  f"eager. Alone: warm-up epoch {prof['warmup_epoch_seconds']:.2f} s, then "
                  f"{prof['epoch_seconds_alone']:.2f} s ({1000 * prof['epoch_seconds_alone'] / prof['steps']:.2f} ms "
                  f"a step); under the profiler {prof['profiled_epoch_seconds']:.2f} s."]
        if "kernels_per_step" in prof:
            lines += ["", f"{prof['kernels_per_step']} kernels a step; the GPU busy "
                      f"{prof['gpu_busy_seconds']:.2f} s of the profiled epoch "
                      f"({100 * prof['gpu_busy_share']:.0f} %): the rest is launching.", "",
                      "| kernel class | kernels a step | µs a step | share of GPU time |", "|---|---|---|---|"]
            lines += [f"| {n} | {c['kernels_per_step']} | {c['us_per_step']} | {100 * c['share']:.0f} % |"
                      for n, c in prof["kernel_classes"].items()]
        lines += ["", f"Top ops by {prof['sorted_by']}:", "", "```", prof["table"].rstrip(), "```"]
    bench = r.get("bench") or {}
    if bench:
        lines += ["", "## make bench", "", f"ratio (ours / standard): **{fmt(bench['ratio'], '', 2)}** "
                  "(full output: [bench.txt](bench.txt))", "", "```", *bench["lines"], "```"]
    if r.get("failures"):
        lines += ["", "## Failures", ""] + [f"- {stem}: {err}" for stem, err in r["failures"].items()]
    if r.get("index_status"):
        lines += ["", f"Index: {r['index_status']}"]
    return "\n".join(lines) + "\n"


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# --- check ----------------------------------------------------------------------------------
def check(bundle_dir=BUNDLE, device="cuda", smoke_only=False, jobs=None, out=None, work=WORK,
          resume=False):
    started = time.perf_counter()
    stages = {}

    def stage(name, since):
        stages[name] = round(time.perf_counter() - since, 1)

    work = Path(work).resolve()
    out = Path(out).resolve() if out else (work / "smoke" if smoke_only else GPU_REPORTS)
    gpu = not device.startswith("cpu")
    jobs = jobs or (2 if gpu else 1)
    smoke_jobs = min(6, max(1, (os.cpu_count() or 1) // 2)) if gpu else 1

    t = time.perf_counter()
    info = read_bundle(bundle_dir)
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        raise CheckError(f"this Python ({sys.executable}) has no torch: run the check with the Python "
                         "that has the machine's torch (make gpu-check PY=...)")
    venv = work / "venv"
    python = make_venv(venv, bundle_dir, info)
    env = child_env(venv, work, jobs)
    environment = probe(python, device, env)
    environment.update(cores=os.cpu_count(), commit=commit())
    say(f"{environment['device']} ({environment.get('gpu') or environment['cpu']}), torch {environment['torch']}"
        + (f", CUDA {environment['cuda']}" if environment.get("cuda") else "")
        + (f", driver {environment['driver']}" if environment.get("driver") else ""))
    stage("venv and wheels", t)

    t = time.perf_counter()
    sys.path.insert(0, str(REPO))
    from lib.data import MD5, raw_dir
    unpack_mnist(Path(bundle_dir) / "mnist", raw_dir(), MD5)
    stage("MNIST", t)

    smoke_dir = work / "smoke"
    marker = smoke_dir / f".passed-{device}"
    smoke_seconds = {}
    if resume and marker.exists() and not smoke_only:
        say(f"smoke pass: kept from an earlier run ({marker})")
    else:
        t = time.perf_counter()
        marker.unlink(missing_ok=True)
        say(f"smoke pass: {len(notebooks())} notebooks on {device}, {smoke_jobs} at a time, into {smoke_dir}")
        smoke_seconds, failed = run_notebooks(python, longest_first(notebooks()), smoke_dir,
                                              {"device": device}, child_env(venv, work, smoke_jobs),
                                              work / "logs/smoke", jobs=smoke_jobs, force=True, smoke=True)
        if failed:
            stem, err = next(iter(failed.items()))
            raise CheckError(f"smoke run of {stem} on {device} failed: {err} "
                             f"(log: {work / 'logs/smoke' / stem}.log)")
        marker.touch()
        stage("smoke pass", t)
    out.mkdir(parents=True, exist_ok=True)

    bench_txt = out / "bench.txt"
    if resume and bench_txt.exists() and not smoke_only:
        say(f"bench: kept from an earlier run ({bench_txt})")
    else:
        t = time.perf_counter()
        args = ["--device", device] + (["--steps", "5", "--repeats", "1"] if smoke_only else [])
        say(f"bench: python -m lib.bench {' '.join(args)}")
        done = subprocess.run([str(python), "-m", "lib.bench", *args], cwd=REPO, env=env,
                              capture_output=True, text=True)
        bench_txt.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise CheckError(f"python -m lib.bench failed: {error_line(done.stderr)} (output: {bench_txt})")
        say(f"  {last_line(done.stdout, 'ratio:')}")
        stage("bench", t)

    profile_json = out / "gpu-profile.json"
    if resume and profile_json.exists() and not smoke_only:
        say(f"profile: kept from an earlier run ({profile_json})")
    else:
        t = time.perf_counter()
        say("profile: one block-3 training epoch alone, then one under torch.profiler")
        cmd = [str(python), "-m", "lib.gpu", "profile", "--device", device, "--json", str(profile_json)]
        done = subprocess.run(cmd + (["--train-limit", "2000"] if smoke_only else []),
                              cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise CheckError(f"profiling block 3 failed: {error_line(done.stderr)}")
        stage("profile", t)

    failed = {}
    if smoke_only:
        seconds = smoke_seconds
    else:
        t = time.perf_counter()
        say(f"every notebook on {device}, {jobs} at a time, into {out} (up-to-date reports are kept)")
        seconds, failed = run_notebooks(python, longest_first(notebooks()), out, {"device": device},
                                        env, work / "logs/reports", jobs=jobs, stop_on_failure=False)
        for stem, err in failed.items():
            print(f"error: {stem} on {device} failed: {err} (log: {work / 'logs/reports' / stem}.log)",
                  file=sys.stderr, flush=True)
        stage("notebooks", t)

    t = time.perf_counter()
    done = subprocess.run([str(python), "-m", "lib.pipeline", "index", "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    index_status = last_line(done.stdout + done.stderr)
    if done.returncode != 0 and "targets missed" not in done.stderr:
        raise CheckError(f"the index of {out} failed: {error_line(done.stderr)}")
    stage("index", t)

    shown = os.path.relpath(out, REPO) if out.is_relative_to(REPO) else str(out)
    record = {"smoke_only": smoke_only, "device": device, "jobs": jobs, "reports": shown,
              "environment": environment, "seconds": round(time.perf_counter() - started, 1),
              "stages": stages, "smoke_pass_seconds": smoke_seconds,
              "notebooks": notebook_rows(out, seconds), "block3_epochs": block3_epochs(out),
              "profile": json.loads(profile_json.read_text()), "bench": bench_summary(bench_txt),
              "failures": failed, "index_status": index_status,
              "when": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    (out / "gpu-record.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "gpu-record.md").write_text(record_markdown(record))
    say(f"record: {out / 'gpu-record.md'}; the whole check took {record['seconds']:.0f} s"
        + (f", over the {BUDGET_S} s budget" if gpu and not smoke_only and record["seconds"] > BUDGET_S else ""))
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
    c.add_argument("--work", default=str(WORK), help="venv, smoke runs and logs (default build/gpu-check)")
    c.add_argument("--resume", action="store_true",
                   help="keep the smoke pass, bench and profile of an earlier, stopped check")
    p = sub.add_parser("profile", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", required=True)
    p.add_argument("--train-limit", type=int)
    args = ap.parse_args(argv)
    try:
        if args.command == "bundle":
            bundle(Path(args.out), args.python_version)
        elif args.command == "check":
            check(Path(args.bundle), args.device, args.smoke_only, args.jobs, args.out, Path(args.work),
                  args.resume)
        else:
            os.environ.setdefault("TQDM_DISABLE", "1")
            profile_block3(args.device, args.json, args.train_limit)
    except CheckError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted")


if __name__ == "__main__":
    main()
