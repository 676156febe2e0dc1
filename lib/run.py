"""A notebook's run: parameters checked, seed set, device chosen, provenance, results, metrics."""
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import pandas as pd
import torch
import torchvision

from lib.paths import REPO, STAGING_ENV
from lib.params import ParameterError, check_params, pick_params
from lib.targets import EPOCHS, LINE
from lib.train import compiled_steps_fell_back, pick_device, resolve_compile, seed_everything


def git_commit():
    """(commit, dirty) of the repo, or ("unknown", None) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks"],
                                cwd=REPO, capture_output=True, text=True, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None


def cpu_name():
    """The CPU's model name ("AMD EPYC 7B13 64-Core Processor"): /proc/cpuinfo on Linux,
    else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_kind():
    """What sets the CPU's float path beyond its model name, which a virtual machine often gives
    as just "AMD EPYC": the vendor's family and model numbers, and the kernels ATen dispatches
    to ("family 25 model 17, ATen AVX512"; ATEN_CPU_CAPABILITY moves the second)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    family = f"family {fields['cpu family']} model {fields['model']}, " if "cpu family" in fields else ""
    return family + f"ATen {torch.backends.cpu.get_cpu_capability()}"


def device_name(device):
    """The model name of the GPU (CUDA) or else of the CPU: the last digits depend on it."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


class RunInfo(dict):
    """What `Run.info()` returns: a dict, shown in a notebook as two small tables (where and
    how it ran; the parameters)."""

    def table(self):
        p = self["parameters"]
        dirty = {True: "yes (in lib/ or notebooks/)", False: "no"}.get(self["git_dirty"], "unknown")
        rows = {"notebook": self["notebook"], "device": self["device"], "CPU kind": self["cpu_kind"],
                "CPU threads": self["cpu_threads"], "torch": self["torch"],
                "torchvision": self["torchvision"], "python": self["python"],
                "torch.compile": "on" if self["torch_compile"] else "off",
                "git commit": self["git_commit"], "uncommitted changes": dirty,
                **({k: p[k] for k in ("seeds", "seed") if k in p}),  # none in a notebook that trains nothing
                "report folder": p.get("out_dir", "reports")}
        return pd.DataFrame({"this run": list(rows.values())}, index=list(rows))

    def parameters_table(self):
        shown = {k: v for k, v in self["parameters"].items() if k != "out_dir"}
        return pd.DataFrame([shown], index=["parameters"])

    def _ipython_display_(self):  # IPython calls this instead of showing the dict
        from IPython.display import display
        params = self.parameters_table()
        display(self.table(), *([params] if len(params.columns) else []))


class Run:
    """Created by the first code cell of a notebook; knows everything the report records."""

    def __init__(self, notebook, namespace):
        params = check_params(pick_params(namespace))
        self.notebook, self.params = notebook, params
        out_dir = Path(params.get("out_dir", "reports"))
        self.out_dir = out_dir if out_dir.is_absolute() else REPO / out_dir
        # the report's files go to out_dir; a headless run writes them to the pipeline's
        # staging folder first, and the pipeline moves them there once all are written
        self.write_dir = Path(os.environ.get(STAGING_ENV) or self.out_dir)
        self.device = pick_device(params.get("device", "auto"))
        try:  # True/False: compile the model in `fit` (see lib.train.compile_support)
            self.compile_chosen = resolve_compile(params.get("torch_compile", False), self.device)
        except ValueError as e:
            raise ParameterError(f"parameter {e}") from None
        self.commit, self.dirty = git_commit()
        self.started = time.perf_counter()
        if "seed" in params:
            seed_everything(params["seed"])

    @property
    def compile(self):
        """Whether this run compiles: as chosen, until a failing compile made it go eager."""
        return self.compile_chosen and not compiled_steps_fell_back()

    @property
    def full(self):
        """True for a run on all the data for EPOCHS epochs: only such runs check targets.
        A test sets CHECK_TARGETS_ON_ANY_RUN=1 to send a tiny run down the missed-target path."""
        p = self.params
        return os.environ.get("CHECK_TARGETS_ON_ANY_RUN") == "1" or (
            p.get("train_limit") is None and p.get("test_limit") is None
            and p.get("epochs") == EPOCHS)

    def info(self):
        """Where and how this runs: a dict, shown as tables when it ends a notebook cell."""
        name = device_name(self.device)
        return RunInfo(notebook=self.notebook, device=f"{self.device} ({name})", device_name=name,
                       cpu_kind=cpu_kind(),
                       torch=torch.__version__, torchvision=torchvision.__version__,
                       python=platform.python_version(), cpu_threads=torch.get_num_threads(),
                       torch_compile=self.compile, git_commit=self.commit, git_dirty=self.dirty,
                       parameters=self.params)

    def wall_seconds(self):
        return round(time.perf_counter() - self.started, 1)

    def save_metrics(self, **metrics):
        """Write `<notebook>.metrics.json` (atomically) into out_dir (or the pipeline's
        staging folder) and return its path."""
        info = self.info()
        record = {"notebook": self.notebook, **metrics, "full_run": self.full,
                  "seed": self.params.get("seed"),
                  "device": info["device"], "device_name": info["device_name"],
                  "cpu_kind": info["cpu_kind"],
                  "torch": info["torch"],
                  "torchvision": info["torchvision"], "torch_compile": self.compile,
                  **({"compile_fell_back": compiled_steps_fell_back()}
                     if self.compile_chosen and not self.compile else {}),
                  "cpu_threads": info["cpu_threads"], "git_commit": self.commit,
                  "git_dirty": self.dirty, "wall_seconds": self.wall_seconds(),
                  "parameters": self.params}
        self.write_dir.mkdir(parents=True, exist_ok=True)
        path = self.write_dir / f"{self.notebook}.metrics.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)
        return path


def value(history):
    """A run's value, the assignment's rule: its worst test accuracy over the last 5 epochs."""
    return min(row["test_acc"] for row in history[-5:])


def summarize(history):
    """The Result figures of one training history (accuracies in percent)."""
    acc = [row["test_acc"] for row in history]
    best = max(range(len(acc)), key=acc.__getitem__)
    first = next((i + 1 for i, a in enumerate(acc) if a >= LINE), None)
    return {"epochs": len(acc), "best_test_acc": acc[best], "best_epoch": best + 1,
            "min_last3": min(acc[-3:]), "min_last5": value(history),
            "spread_last5": round(max(acc[-5:]) - min(acc[-5:]), 2),
            "first_epoch_ge_99_40": first, "final_test_acc": acc[-1],
            "final_train_acc": history[-1]["train_acc"],
            "median_epoch_seconds": statistics.median(row["seconds"] for row in history)}


def result_table(run, model_name, params, result, test_size):
    """The Result of a block as a two-column table, from the run's own figures."""
    first = result["first_epoch_ge_99_40"]
    rows = [
        ("model", model_name), ("parameters", f"{params:,}"), ("epochs", result["epochs"]),
        ("best test accuracy", f"{result['best_test_acc']:.2f} % (epoch {result['best_epoch']})"),
        ("min of last 3 epochs", f"{result['min_last3']:.2f} %"),
        ("min of last 5 epochs", f"{result['min_last5']:.2f} %"),
        (f"first epoch >= {LINE:.2f} %", first if first else "never"),
        ("test images", f"{test_size:,}"), ("wall time", f"{run.wall_seconds():.0f} s"),
        ("epoch time (median)", f"{result['median_epoch_seconds']:.1f} s"),
        ("device", run.info()["device"]), ("torch.compile", "on" if run.compile else "off"),
        ("seed", run.params.get("seed")),
    ]
    return pd.DataFrame(rows, columns=["figure", "value"]).set_index("figure")


def check_targets(run, checks):
    """Print each (description, ok) target as PASS or MISS, then the verdict.

    On a full run the verdict is "All targets met." or "TARGETS MISSED: ..." (the notebook
    goes on: a miss is a result, recorded as `target_met: false` in the metrics); on a smoke
    run the targets are shown but not checked.
    """
    for description, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {description}")
    if not run.full:
        print(f"NOT A FULL RUN (limits set or epochs != {EPOCHS}): "
              "targets are shown above but NOT checked.")
        return
    missed = [d for d, ok in checks if not ok]
    print("TARGETS MISSED: " + "; ".join(missed) if missed else "All targets met.")
