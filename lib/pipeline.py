"""Headless execution of the notebooks (papermill) and the reports index.

    python -m lib.pipeline run notebooks/03_final.py --out reports -p lr 0.05 -c epochs 3
    python -m lib.pipeline index --out reports

`run` executes one notebook into a staging folder and moves its outputs (executed .ipynb,
rendered .html, .metrics.json) into `--out` only on success, so the last good report stays
intact when a run fails or is interrupted; a failed run is kept as `<stem>.failed.ipynb`.
The notebook gets `out_dir` = the `--out` folder (what its report shows) and, in its kernel's
environment, REPORT_STAGING_DIR = the staging folder, where `lib.run.Run` writes the metrics;
TQDM_DISABLE=1 turns the progress bars off (the per-epoch log line is the log).
It skips a notebook whose report was made from the same notebook, lib and parameters.
`-p NAME VALUE` must name a parameter of the notebook; `-c NAME VALUE` (make's EPOCHS, SEED,
DEVICE) is applied only to notebooks that have that parameter.
"""
import argparse
import ast
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from lib.inputs import inputs_key
from lib.paths import REPO, STAGING_ENV, shown, study_names, study_path

KERNEL = "python3"
# A kernel started beside others may die before it answers: Jupyter picks its ports by binding
# port 0 and letting go, and another kernel can take one first (a known race, still open in
# Jupyter). No cell has run then, so the run is started again, up to KERNEL_STARTS times in all.
KERNEL_STARTS = 3
KERNEL_DIED = ("Kernel died before replying to kernel_info", "Kernel didn't respond")
# SMOKE_RUN: a short run of any notebook that trains, eager (the same outputs with or without a
# C++ compiler; the unit tests check compiled training): what `lib.rekey` compares code on and
# the knob tests run. SMOKE: the smoke run of every notebook (tests/reference, `run --smoke`,
# the GPU check's first pass), applied to the notebooks that have each parameter: SMOKE_RUN,
# two seeds for the seeds notebook, a short moving-average horizon so that one epoch of 32
# steps shows in the test figures, and SMOKE_STUDY for every parameter that names studies
SMOKE_RUN = {"train_limit": 4000, "test_limit": 1000, "epochs": 1, "device": "cpu", "torch_compile": False}
SMOKE = {**SMOKE_RUN, "seeds": [1, 2], "ema_decay": 0.9}
SMOKE_STUDY = "tests/studies/smoke.toml"


class PipelineError(RuntimeError):
    pass


def parse_value(text):
    """A command-line value as papermill reads it: None/True/False, int, float, list, or str."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(nb):
    """{name: default value} of the notebook's `parameters` cell (`parse_value` of its source)."""
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return {}
    tree = ast.parse(cell.source)
    return {t.id: parse_value(ast.get_source_segment(cell.source, node.value))
            for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def resolve_parameters(nb, strict, common):
    """Merge the -c and -p parameters; an unknown -p name is an error listing the known ones."""
    known = notebook_parameters(nb)
    if "out_dir" in strict or "out_dir" in common:
        raise PipelineError("parameter out_dir is set by the pipeline; choose the folder with "
                            "--out (make: REPORTS_DIR=...)")
    unknown = [name for name in strict if name not in known]
    if unknown:
        raise PipelineError(f"unknown parameter {', '.join(map(repr, unknown))}; "
                            f"this notebook's parameters are: {', '.join(known)}")
    return {**{k: v for k, v in common.items() if k in known}, **strict}


def names_studies(parameter):
    """Whether a notebook parameter names studies: `study`, `<what>_study` (a name in studies/
    or a path to a .toml) or `<what>_studies` (several, comma-separated)."""
    return parameter == "study" or parameter.endswith(("_study", "_studies"))


def smoke(nb):
    """The smoke run of notebook `nb`: SMOKE, and SMOKE_STUDY for each parameter naming studies."""
    return {**SMOKE, **{n: SMOKE_STUDY for n in notebook_parameters(nb) if names_studies(n)}}


def data_files(nb, params):
    """The files a notebook reads besides code: each study's definition and results, for each
    parameter that names studies."""
    defaults = notebook_parameters(nb)
    files = []
    for name in sorted(filter(names_studies, defaults)):
        for toml in map(study_path, study_names(params.get(name, defaults[name]))):
            files += [toml, toml.with_suffix(".jsonl")]
    return files


GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def run_device(nb, params):
    """The device a notebook's run resolves to (its `device` parameter as given, else its
    default), "auto" as lib.train.pick_device resolves it: cuda, then mps, then cpu. None for a
    notebook without a `device` parameter. Torch is imported only where a GPU could be (a GPU
    driver's device node, or macOS); elsewhere "auto" is the CPU without that second."""
    defaults = notebook_parameters(nb)
    if "device" not in defaults:
        return None
    device = str(params.get("device", defaults["device"]))
    if device != "auto":
        return device
    if sys.platform != "darwin" and not any(os.path.exists(p) for p in GPU_NODES):
        return "cpu"
    from lib.train import pick_device
    return pick_device("auto").type


def report_key(py_path, params, nb):
    """What a report depends on (`lib.inputs.inputs_key`): its run, the studies it reads, the
    device it runs on (a report made on the CPU is not up to date on a GPU machine), and what
    writes it (this module and the report template)."""
    writer = [REPO / "lib/pipeline.py", *sorted((REPO / "lib/templates").rglob("*.*"))]
    return inputs_key(py_path, params, data=data_files(nb, params), device=run_device(nb, params),
                      writer=writer)


def up_to_date(out, stem, key):
    metrics = out / f"{stem}.metrics.json"
    try:
        return (out / f"{stem}.ipynb").exists() and (out / f"{stem}.html").exists() \
            and json.loads(metrics.read_text()).get("inputs_sha256") == key
    except (OSError, ValueError):
        return False


def record_paths(ipynb, notebook, report):
    """Papermill records the staging paths it ran; record the notebook and the report instead."""
    import nbformat
    nb = nbformat.read(ipynb, 4)
    nb.metadata.papermill.update(input_path=shown(notebook), output_path=shown(report))
    nbformat.write(nb, ipynb)


def render_html(ipynb, html):
    """Code-free HTML of an executed notebook (prose, outputs and plots, each with its alt
    text: lib/templates/report)."""
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(REPO / "lib/templates")],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(ipynb, 4))
    html.write_text(body)


class Interrupted(PipelineError):
    """The run was stopped (Ctrl-C, SIGTERM) from outside: not a result."""


def kernel_manager():
    """Jupyter's kernel manager, its kernel's own log (IPKernelApp's warnings; at an interrupt,
    the replies it can no longer send) written to `<staging folder>.kernel.log` instead of into
    the run's output. What the notebook prints still goes into the notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            with open(f"{os.environ[STAGING_ENV]}.kernel.log", "ab") as log:
                return await super().start_kernel(**kw, stderr=log)

    return LoggedKernelManager


def execute(py_path, out, params, name=None, key=None, render=True, log_output=True):
    """Execute the notebook `py_path` with `params` injected; on success move the executed
    notebook (`<name>.ipynb`), its metrics and (if `render`) its HTML into `out` and return
    the metrics record. `name` defaults to the notebook's stem; `key` is recorded in the
    metrics as `inputs_sha256`. On failure keep `<name>.failed.ipynb` in `out` and raise
    PipelineError (Interrupted where the kernel was interrupted), and the kernel's log, where
    it wrote one, as `<name>.failed.kernel.log`."""
    import jupytext
    import papermill as pm

    py_path, out = Path(py_path).resolve(), Path(out).resolve()
    stem = py_path.stem
    name = name or stem
    staging = out / ".staging" / name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    source, executed = staging / "source.ipynb", staging / f"{name}.ipynb"
    kernel_log = Path(f"{staging}.kernel.log")
    kernel_log.unlink(missing_ok=True)
    jupytext.write(jupytext.read(py_path), source)

    def keep_kernel_log():
        if kernel_log.exists() and kernel_log.read_text().strip():
            os.replace(kernel_log, out / f"{name}.failed.kernel.log")

    # the kernel inherits our environment: no progress bars, and where to write the report
    os.environ.update({"TQDM_DISABLE": "1", STAGING_ENV: str(staging)})
    try:
        for start in range(1, KERNEL_STARTS + 1):
            try:
                pm.execute_notebook(source, executed, parameters={**params, "out_dir": shown(out)},
                                    kernel_name=KERNEL, language="python", log_output=log_output,
                                    progress_bar=False, cwd=py_path.parent, kernel_manager_class=kernel_manager())
                break
            except RuntimeError as e:  # no cell ran: the kernel never answered (see KERNEL_STARTS)
                if not str(e).startswith(KERNEL_DIED):
                    raise
                if start == KERNEL_STARTS:
                    keep_kernel_log()
                    raise PipelineError(f"notebook {name}: its kernel did not start in {KERNEL_STARTS} "
                                        f"tries ({e}); its log: {shown(out / f'{name}.failed.kernel.log')}") from None
                time.sleep(start)
    except pm.PapermillExecutionError as e:
        failed = out / f"{name}.failed.ipynb"
        keep_kernel_log()
        record_paths(executed, py_path, failed)
        shutil.move(executed, failed)
        kind = Interrupted if e.ename == "KeyboardInterrupt" else PipelineError
        raise kind(f"notebook {name} failed in cell {e.exec_count} "
                   f"(cell index {e.cell_index}): {e.ename}: {e.evalue}; "
                   f"executed notebook kept at {failed}") from None
    finally:
        source.unlink(missing_ok=True)
        kernel_log.unlink(missing_ok=True)
    metrics = staging / f"{stem}.metrics.json"
    if not metrics.exists():
        raise PipelineError(f"notebook {name} ran but wrote no {metrics.name}")
    record = json.loads(metrics.read_text())
    if key:
        record["inputs_sha256"] = key
    metrics.unlink()
    (staging / f"{name}.metrics.json").write_text(json.dumps(record, indent=1) + "\n")
    record_paths(executed, py_path, out / executed.name)
    if render:
        render_html(executed, staging / f"{name}.html")
    for path in sorted(staging.iterdir()):  # all written: now replace the old report
        os.replace(path, out / path.name)
    staging.rmdir()
    for stale in (f"{name}.failed.ipynb", f"{name}.failed.kernel.log"):
        (out / stale).unlink(missing_ok=True)
    return record


def run(py_path, out, strict, common, force=False, smoke_run=False):
    """Run one notebook into its report in `out`, unless its report is up to date; with
    `smoke_run`, its `smoke` run (`common` and `strict` override it)."""
    import jupytext

    py_path, out = Path(py_path).resolve(), Path(out).resolve()
    stem = py_path.stem
    nb = jupytext.read(py_path)
    params = resolve_parameters(nb, strict, {**(smoke(nb) if smoke_run else {}), **common})
    key = report_key(py_path, params, nb)
    if not force and up_to_date(out, stem, key):
        print(f"[{stem}] up to date ({out / stem}.ipynb)")
        return
    start = time.perf_counter()
    print(f"[{stem}] running with {params or 'default parameters'} ...", flush=True)
    record = execute(py_path, out, params, key=key)
    verdict = "" if record.get("target_met", True) or not record.get("full_run") else " (TARGETS MISSED)"
    print(f"[{stem}] done in {time.perf_counter() - start:.0f} s -> {out / stem}.ipynb{verdict}",
          flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lib.pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute one notebook into --out")
    r.add_argument("notebook")
    r.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    r.add_argument("-c", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    r.add_argument("--force", action="store_true")
    r.add_argument("--smoke", action="store_true", help="the smoke run (`smoke`; -c and -p override it)")
    i = sub.add_parser("index", help="write the index of the reports in --out")
    for p in (r, i):
        p.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    jobs = re.search(r"(?:^|\s)-j\s*(\d+)", os.environ.get("MAKEFLAGS", ""))
    if jobs and "OMP_NUM_THREADS" not in os.environ:  # `make -jN`: share the cores, don't fight
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(jobs[1])))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
    staging = Path(args.out).resolve() / ".staging"
    try:
        if args.command == "run":
            run(args.notebook, args.out, {k: parse_value(v) for k, v in args.p},
                {k: parse_value(v) for k, v in args.c}, args.force, args.smoke)
        else:
            from lib.index import write_index
            missed = write_index(Path(args.out))
            if missed:  # the reports are written; the exit status says a target was missed
                sys.exit("targets missed: " + ", ".join(
                    f"{stem} (see {Path(args.out) / stem}.html)" for stem in missed))
    except PipelineError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: no report was changed")
    finally:
        if args.command == "run":
            shutil.rmtree(staging / Path(args.notebook).stem, ignore_errors=True)
            try:  # another job (make -j) may be creating its own folder in there right now
                staging.rmdir()
            except OSError:
                pass


if __name__ == "__main__":
    main()
