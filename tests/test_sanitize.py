"""The nbval sanitizer (tests/nbval_sanitize.cfg) against other machines' names: a reference
made on one machine must compare equal on every other kind of machine, whatever its device
line and CPU kind say. Fed with the names of every kind of machine we can name, both as
the references store them and as a real `Run` renders them."""
import json
import re

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

import lib.run
from lib.run import Run, result_table
from conftest import REPO

PATTERNS = get_sanitize_patterns((REPO / "tests/nbval_sanitize.cfg").read_text())
REFERENCES = sorted((REPO / "tests/reference").glob("*.ipynb"))

# (device line, CPU kind) as lib.run writes them on each kind of machine. The smoke runs that
# nbval compares run on the CPU everywhere (`make reference`: device cpu), so a GPU machine's
# line there is its CPU's; the GPU lines are checked for their masking alone.
MACHINES = {
    "xeon": ("cpu (Intel(R) Xeon(R) Processor)", "family 6 model 167, ATen AVX512"),
    "xeon-full-name": ("cpu (Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz)", "family 6 model 79, ATen AVX2"),
    "epyc-vm": ("cpu (AMD EPYC)", "family 25 model 1, ATen AVX2"),
    "epyc-zen4": ("cpu (AMD EPYC 9B14 96-Core Processor)", "family 25 model 17, ATen AVX512"),
    "epyc-zen5": ("cpu (AMD EPYC)", "family 26 model 2, ATen AVX512"),
    "laptop": ("cpu (Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz)", "family 6 model 142, ATen AVX2"),
    "ryzen": ("cpu (AMD Ryzen 9 7950X 16-Core Processor)", "family 25 model 97, ATen AVX512"),
    "apple": ("cpu (arm)", "ATen DEFAULT"),
    "arm-linux": ("cpu (aarch64)", "ATen SVE256"),
    "no-model": ("cpu (unknown CPU)", "ATen DEFAULT"),
}
GPU_LINES = ["cuda (NVIDIA H200)", "cuda:1 (NVIDIA GeForce RTX 4090 (Laptop))", "mps (arm)"]


def sanitize(text, patterns=PATTERNS):
    """What nbval does to every output string before comparing (nbval.plugin.sanitize)."""
    for regex, replace in patterns:
        text = re.sub(regex, replace, text)
    return text


def compared_outputs(nb):
    """Every output string nbval compares: stream text and each mime type but images."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                yield out["text"]
            for mime, data in out.get("data", {}).items():
                if not mime.startswith("image/") and isinstance(data, str):
                    yield data


def as_machine(text, made_on, other):
    """A reference's text as another machine would print it: its device line and CPU kind."""
    for old, new in zip(made_on, other):
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("ref", REFERENCES, ids=lambda p: p.stem)
@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_a_reference_compares_equal_with_any_machines_names(ref, machine):
    record = json.loads(ref.with_suffix(".metrics.json").read_text())
    made_on = (record["device"], record["cpu_kind"])
    texts = list(compared_outputs(nbformat.read(ref, 4)))
    assert any(made_on[0] in t for t in texts), f"{ref.name} never shows its device line"
    for text in texts:
        assert sanitize(as_machine(text, made_on, MACHINES[machine])) == sanitize(text)


def rendered(monkeypatch, machine):
    """A real Run's info table and result table (text and HTML), with the CPU's name and
    kind of one machine (`lib.run` reads them from /proc/cpuinfo and ATen)."""
    device, kind = MACHINES[machine]
    monkeypatch.setattr(lib.run, "cpu_name", lambda: device.split(" (", 1)[1][:-1])
    monkeypatch.setattr(lib.run, "cpu_kind", lambda: kind)
    monkeypatch.setattr(lib.run, "git_commit", lambda: ("0" * 40, False))
    run = Run("03_final", {"seed": 1, "epochs": 15, "device": "cpu", "torch_compile": False})
    result = {"epochs": 15, "best_test_acc": 99.5, "best_epoch": 14, "min_last3": 99.41,
              "min_last5": 99.41, "first_epoch_ge_99_40": 11, "median_epoch_seconds": 9.3}
    tables = [run.info().table(), result_table(run, "Model_3", 7912, result, 10000)]
    return [text for t in tables for text in (t.to_string(), t._repr_html_())]


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_a_runs_tables_compare_equal_whatever_the_cpu(monkeypatch, machine):
    xeon, other = rendered(monkeypatch, "xeon"), rendered(monkeypatch, machine)
    assert MACHINES[machine][0] in other[0]
    assert [sanitize(t) for t in other] == [sanitize(t) for t in xeon]


def test_the_device_rule_masks_nested_parentheses_and_nothing_after():
    line = "on cpu (Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz), compiled (seed 3)"
    assert sanitize(line) == sanitize("on cpu (AMD EPYC), compiled (seed 3)")
    assert "compiled" in sanitize(line)


def test_a_rule_that_stops_at_the_first_parenthesis_is_caught():
    """The rule this project shipped once (`\\([^)]*\\)`): a reference made on the Xeon did
    not compare on any machine whose name has no parentheses. The test above must see that."""
    broken = [(r, p) if "device name" not in p else (r"\b(cpu|mps|cuda(:\d+)?) \([^)]*\)", p)
              for r, p in PATTERNS]
    ref = REPO / "tests/reference/03_final.ipynb"
    record = json.loads(ref.with_suffix(".metrics.json").read_text())
    made_on = (record["device"], record["cpu_kind"])
    texts = list(compared_outputs(nbformat.read(ref, 4)))
    on = lambda machine, t: as_machine(t, made_on, MACHINES[machine])
    assert any(sanitize(on("xeon", t), broken) != sanitize(on("epyc-vm", t), broken) for t in texts)
    assert all(sanitize(on("xeon", t)) == sanitize(on("epyc-vm", t)) for t in texts)


@pytest.mark.parametrize("line", GPU_LINES)
def test_a_gpu_device_line_is_masked_whole(line):
    device = line.split(" (", 1)[0]
    assert sanitize(f"| device | {line} |") == sanitize(f"| device | {device} (x) |")
