"""`python -m lib.pipeline`: reports replaced only on success, clear failures, no partial reports."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from lib.index import load_metrics, write_index
from conftest import REPO

TINY = '''# %% tags=["parameters"]
fail = False
pause = 0
value = 1
started = ""  # a file to create when the cell starts (a test waits for it)
out_dir = "reports"

# %%
import json, os, pathlib, time
if started:
    pathlib.Path(started).touch()
time.sleep(pause)
assert not fail, "deliberate failure"
p = pathlib.Path(os.environ.get("REPORT_STAGING_DIR", out_dir))  # as lib.run.Run writes
p.mkdir(parents=True, exist_ok=True)
(p / "tiny.metrics.json").write_text(json.dumps({"value": value, "out_dir": out_dir}))
print("value", value)
'''

# lib.train's progress bar, as the blocks' training loop shows it
BAR = TINY + '''
# %%
from lib.train import progress
for _ in progress(range(3), "epoch 1/1"):
    pass
print("after the bar")
'''


def pipeline(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lib.pipeline", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def tiny_once(tmp_path_factory):
    """One successful run of the tiny notebook (a kernel start costs seconds: share it)."""
    base = tmp_path_factory.mktemp("tiny")
    nb = base / "tiny.py"
    nb.write_text(TINY)
    done = pipeline("run", nb, "--out", base / "out")
    assert done.returncode == 0, done.stderr
    return nb, base / "out"


@pytest.fixture
def tiny(tiny_once, tmp_path):
    """A private copy of that notebook and its report, for a test to change."""
    nb, out = tmp_path / "tiny.py", tmp_path / "out"
    shutil.copy(tiny_once[0], nb)
    shutil.copytree(tiny_once[1], out)
    return nb, out


def report(out):
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def test_success_writes_notebook_html_and_metrics(tiny):
    nb, out = tiny
    assert {"tiny.ipynb", "tiny.html", "tiny.metrics.json"} <= set(report(out))
    assert json.loads((out / "tiny.metrics.json").read_text())["value"] == 1
    assert not (out / ".staging").exists()


def test_report_shows_its_folder_never_the_staging_one(tiny_once):
    nb, out = tiny_once
    for name, data in report(out).items():
        assert b".staging" not in data and str(REPO).encode() not in data, name
    assert json.loads((out / "tiny.metrics.json").read_text())["out_dir"] == str(out)
    papermill = json.loads((out / "tiny.ipynb").read_text())["metadata"]["papermill"]
    assert papermill["input_path"] == str(nb) and papermill["output_path"] == str(out / "tiny.ipynb")


def test_headless_run_shows_no_progress_bar(tmp_path):
    nb = tmp_path / "bar.py"
    nb.write_text(BAR.replace("tiny.metrics", "bar.metrics"))
    done = pipeline("run", nb, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    cells = json.loads((tmp_path / "out/bar.ipynb").read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert [o.get("text") for o in outputs] == [["value 1\n"], ["after the bar\n"]], outputs
    assert "it/s" not in done.stdout + done.stderr


def test_unchanged_inputs_are_skipped_changed_parameters_rerun(tiny):
    nb, out = tiny
    assert "up to date" in pipeline("run", nb, "--out", out).stdout
    done = pipeline("run", nb, "--out", out, "-p", "value", "2")
    assert done.returncode == 0 and "running" in done.stdout
    assert json.loads((out / "tiny.metrics.json").read_text())["value"] == 2
    assert "value = 2" in (out / "tiny.ipynb").read_text()  # the injected-parameters cell


def test_failing_notebook_exits_nonzero_and_keeps_the_previous_report(tiny):
    nb, out = tiny
    before = report(out)
    done = pipeline("run", nb, "--out", out, "-p", "fail", "True")
    assert done.returncode != 0
    assert "notebook tiny failed in cell" in done.stderr and "AssertionError: deliberate failure" in done.stderr
    after = report(out)
    assert "tiny.failed.ipynb" in after and b"[IPKernelApp]" in after["tiny.failed.kernel.log"]
    assert "[IPKernelApp]" not in done.stdout + done.stderr  # the kernel's own log: in its file
    del after["tiny.failed.ipynb"], after["tiny.failed.kernel.log"]
    assert after == before


def test_unknown_parameter_is_an_error(tiny):
    nb, out = tiny
    done = pipeline("run", nb, "--out", out, "-p", "valeu", "2")
    assert done.returncode != 0
    assert "unknown parameter 'valeu'; this notebook's parameters are: fail, pause, value, started, out_dir" in done.stderr


def test_out_dir_cannot_be_injected(tiny):
    nb, out = tiny
    before = report(out)
    done = pipeline("run", nb, "--out", out, "-p", "out_dir", str(out / "elsewhere"))
    assert done.returncode != 0
    assert "parameter out_dir is set by the pipeline; choose the folder with --out" in done.stderr
    assert not (out / "elsewhere").exists() and report(out) == before


def test_common_parameters_apply_only_where_they_exist(tiny):
    nb, out = tiny
    done = pipeline("run", nb, "--out", out, "-c", "value", "3", "-c", "epochs", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "tiny.metrics.json").read_text())["value"] == 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_partial_report_and_a_rerun_completes(tiny, sig, tmp_path):
    nb, out = tiny
    before = report(out)
    started = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-m", "lib.pipeline", "run", str(nb), "--out", str(out),
                             "-p", "pause", "60", "-p", "value", "5", "-p", "started", str(started)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a job started with `&` (CI in the background)
                            # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120  # a cold kernel start on a busy machine takes a while
    while not started.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert started.exists(), "the notebook never started"
    time.sleep(1)  # inside the notebook's pause: papermill waits on the kernel
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "interrupted: no report was changed" in err
    assert report(out) == before
    assert not (out / ".staging").exists()
    assert pipeline("run", nb, "--out", out, "-p", "value", "5").returncode == 0
    assert json.loads((out / "tiny.metrics.json").read_text())["value"] == 5


def test_bad_notebook_parameter_fails_the_run_with_a_one_line_error(tmp_path):
    done = pipeline("run", REPO / "notebooks/02_lean.py", "--out", tmp_path, "-p", "epochs", "0")
    assert done.returncode != 0
    assert "ParameterError: parameter epochs=0 is invalid; allowed: an integer >= 1" in done.stderr
    assert not (tmp_path / "02_lean.ipynb").exists()


def test_damaged_metrics_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.metrics.json").write_text('{"broken": ')
    with pytest.raises(ValueError, match=r"x.metrics.json is not valid JSON .*rerun its notebook"):
        load_metrics(tmp_path)
    with pytest.raises(ValueError, match="no \\*.metrics.json"):
        write_index(tmp_path / "empty")


def test_a_report_depends_on_every_study_its_notebook_reads():
    import jupytext
    from lib.pipeline import data_files

    nb = jupytext.read(REPO / "notebooks/06_frontier.py")
    names = [p.name for p in data_files(nb, {})]
    recipes = [f"frontier_{s}.{ext}" for s in ("3k", "stem", "2600", "2k", "1700", "1k") for ext in ("toml", "jsonl")]
    assert names == ["frontier_confirm.toml", "frontier_confirm.jsonl", "frontier_avx2.toml", "frontier_avx2.jsonl",
                     *recipes, "frontier.toml", "frontier.jsonl"]
    names = [p.name for p in data_files(nb, {"study": "tests/studies/smoke.toml", "confirm_study": None,
                                             "float_path_study": "", "recipe_studies": " frontier_2k, ,frontier_1k"})]
    assert names == ["frontier_2k.toml", "frontier_2k.jsonl", "frontier_1k.toml", "frontier_1k.jsonl",
                     "smoke.toml", "smoke.jsonl"]


def test_the_smoke_run_gives_every_parameter_naming_studies_the_smoke_study():
    import jupytext
    from lib.pipeline import SMOKE, SMOKE_STUDY, smoke

    nb = jupytext.read(REPO / "notebooks/06_frontier.py")
    studies = {n: v for n, v in smoke(nb).items() if n not in SMOKE}
    assert studies == dict.fromkeys(["study", "confirm_study", "float_path_study", "recipe_studies"], SMOKE_STUDY)
    assert smoke(jupytext.read(REPO / "notebooks/03_final.py")) == SMOKE  # reads no study


def dying_kernels(monkeypatch, deaths):
    """Jupyter's own kernel manager, whose first `deaths` kernels exit at once (as one does
    that finds its port taken): jupyter_client raises what it raises for such a kernel."""
    from lib import pipeline

    for name in (pipeline.STAGING_ENV, "TQDM_DISABLE"):  # execute sets them here: undone after the test
        monkeypatch.setenv(name, os.environ.get(name, ""))
    made = pipeline.kernel_manager()
    died = []

    class Dying(made):
        def format_kernel_cmd(self, extra_arguments=None):
            if len(died) < deaths:
                died.append(1)
                return [sys.executable, "-c", "import sys; print('address in use', file=sys.stderr); sys.exit(1)"]
            return super().format_kernel_cmd(extra_arguments)

    monkeypatch.setattr(pipeline, "kernel_manager", lambda: Dying)
    return died


def test_a_kernel_that_dies_before_answering_is_started_again(tiny, monkeypatch):
    from lib.pipeline import execute

    nb, out = tiny
    died = dying_kernels(monkeypatch, deaths=1)
    record = execute(nb, out, {"value": 5}, render=False, log_output=False)
    assert died == [1] and record["value"] == 5


def test_a_kernel_that_never_starts_is_a_one_line_failure_with_its_log_kept(tiny, monkeypatch):
    from lib.pipeline import KERNEL_STARTS, PipelineError, execute

    nb, out = tiny
    before = report(out)
    dying_kernels(monkeypatch, deaths=KERNEL_STARTS)
    with pytest.raises(PipelineError, match=f"kernel did not start in {KERNEL_STARTS} tries") as e:
        execute(nb, out, {"value": 5}, render=False, log_output=False)
    assert "\n" not in str(e.value)
    assert "address in use" in (out / "tiny.failed.kernel.log").read_text()
    assert {k: v for k, v in report(out).items() if k != "tiny.failed.kernel.log"} == before
