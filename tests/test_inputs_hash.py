"""What a run depends on (one key for reports and study rows) reads code, not prose: docstrings and comments never stale a row,
a change of code always does."""
import shutil
import textwrap

import pytest
from conftest import REPO

from lib.inputs import code_of

SOURCE = textwrap.dedent('''
    class Net:
        """A docstring, over
        two lines."""
        width = 8  # a comment

        def forward(self, x):
            # a comment line
            return x * "# not a comment"
''')


def test_prose_is_left_out_and_code_is_kept():
    code = code_of(SOURCE)
    assert "docstring" not in code and "# a comment" not in code and "comment line" not in code
    assert 'return x * "# not a comment"' in code and "width = 8" in code


def test_a_prose_edit_reads_the_same_and_a_code_edit_does_not():
    reworded = SOURCE.replace("A docstring, over", "Other words, over").replace("# a comment", "# other")
    assert code_of(reworded) == code_of(SOURCE)
    assert code_of(SOURCE.replace("width = 8", "width = 9")) != code_of(SOURCE)


def test_source_that_does_not_parse_is_kept_whole():
    assert code_of("%time x = 1  # magic") == "%time x = 1  # magic"


def test_a_model_hashes_the_classes_and_helpers_it_names():
    import re
    from lib.inputs import lib_code
    names = lambda model: {name for part in lib_code("from lib.models import MODELS", model)["models"]
                           for name in re.findall(r"^(?:class|def) (\w+)", part, re.M)}
    assert {"Frontier", "Frontier_sep_931", "BlurPool", "conv", "dw_separable"} <= names("Frontier_sep_931")
    assert "separable" not in names("Frontier_sep_931")  # named by no class it runs
    assert names("Model_1") == {"Model_1", "conv"}
    assert "Model_1" in names(None) and "Frontier_sep_931" in names(None)  # no model: every one


def test_a_run_depends_on_the_lib_code_it_names_and_what_that_names_in_turn():
    from lib.inputs import lib_code
    used = lambda source: {m: len(parts) for m, parts in lib_code(source).items()}
    assert used("import os\nfrom lib.paths import REPO") == {"paths": 1}  # the module's top-level code
    shown = lib_code("from lib.summary import show\nshow(None, 'x')")["summary"]
    assert any("def show(" in p for p in shown) and any("def layer_table(" in p for p in shown)
    drawn = lib_code("from lib.plots import curves\ncurves([])")["plots"]
    assert any("def curves(" in p for p in drawn) and not any("def frontier(" in p for p in drawn)
    # followed across modules, through a name imported, a module's attribute and `import lib.x`
    assert "train" in lib_code("from lib import plots\nplots.rotation_check(None, 7)")
    assert "plots" not in lib_code("from lib import run")
    assert lib_code("import lib.paths\nlib.paths.REPO") == lib_code("from lib import paths\npaths.REPO")
    block3 = (REPO / "notebooks/03_final.py").read_text()
    assert "study" not in lib_code(block3) and "runner" not in lib_code(block3)
    assert {"study", "compare"} <= set(lib_code((REPO / "notebooks/05_recipe.py").read_text()))
    # the study's command line (run as a script only) puts no runner in a report's key
    assert "runner" not in lib_code((REPO / "notebooks/06_frontier.py").read_text())


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A copy of the lib, the requirements and block 3's notebook, read as the checkout."""
    import lib.inputs
    shutil.copytree(REPO / "lib", tmp_path / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "requirements.txt", tmp_path)
    (tmp_path / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks/03_final.py", tmp_path / "notebooks")
    monkeypatch.setattr(lib.inputs, "REPO", tmp_path)
    return tmp_path


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_one_key_for_reports_and_rows_covers_every_module_the_run_imports(checkout):
    from lib.inputs import inputs_key
    nb = checkout / "notebooks/03_final.py"
    key = lambda **kw: inputs_key(nb, {"seed": 3}, **kw)
    row, report = key(keyed=("seed", "out_dir")), key()
    assert row != report  # a report is of one seed; a row is keyed by its seed
    assert inputs_key(nb, {"seed": 4}, keyed=("seed", "out_dir")) == row
    assert inputs_key(nb, {"lr": 0.2}, keyed=("seed", "out_dir")) != row
    assert inputs_key(nb, {"out_dir": "elsewhere", "seed": 3}) == report
    summary = checkout / "lib/summary.py"  # shapes n_params and macs
    edit(summary, '"""', '"""Reworded. ')
    edit(summary, "def ", "def unused():\n    return 1\n\n\ndef ")  # a function it never calls
    assert (key(keyed=("seed", "out_dir")), key()) == (row, report)
    edit(summary, "def count_params(model):", "def count_params(model):\n    model = model")
    assert key(keyed=("seed", "out_dir")) != row and key() != report


@pytest.mark.parametrize("path, old, new, stales", [
    ("lib/plots.py", "def show(", "def unused():\n    return 1\n\n\ndef show(", False),
    ("lib/plots.py", "def frontier(df, table", "def frontier(df, table, unused=1", False),  # 06's, not 03's
    ("lib/plots.py", "def curves(history, label=None):", "def curves(history, label=None):\n    label = label", True),
    ("lib/study.py", "def load(", "def unused():\n    return 1\n\n\ndef load(", False),
    ("lib/train.py", "import math\n", "import math\nUNUSED = 1\n", True),  # top-level code runs on import
    ("lib/data.py", "MEAN, STD = 0.1307", "MEAN, STD = 0.1308", True),  # a constant it reads
    ("lib/models.py", "import torch\n", "import torch\nWIDTH = 1\n", True),  # the models' top-level code
    ("lib/models.py", "FRONTIER = {cls.__name__: cls for cls in (", "FRONTIER = {cls.__name__: cls for cls in (Model_1, ",
     False),  # a model added to a registry
    ("requirements.txt", "torch==2.14.1", "torch==2.14.2", True),  # a package it computes with
    ("requirements.txt", "\nnumpy==2.4.6", "\nnumpy==2.4.7  # a comment", True),
    ("requirements.txt", "jsonschema==4.23.0", "jsonschema==4.26.0", False),  # the tooling around it
    ("requirements.txt", "pytest==9.2.0", "pytest==9.2.0  # a comment", False),
])
def test_block_3_is_stale_exactly_when_code_it_runs_changes(checkout, path, old, new, stales):
    """Not every line of a module it imports: a function added or changed that the run never
    calls stales no run (another notebook's plot, a study's command line)."""
    from lib.inputs import inputs_key
    nb = checkout / "notebooks/03_final.py"
    before = inputs_key(nb, {})
    edit(checkout / path, old, new)
    assert (inputs_key(nb, {}) != before) == stales


def test_a_new_model_stales_no_run_of_another(checkout):
    from lib.inputs import inputs_key
    nb = checkout / "notebooks/03_final.py"
    before = inputs_key(nb, {})
    (checkout / "lib/models.py").write_text((checkout / "lib/models.py").read_text()
                                            + "\n\nclass Unused:\n    pass\n")
    assert inputs_key(nb, {}) == before
    assert inputs_key(nb, {}, device="cuda") != before
    assert inputs_key(nb, {}, environment={"ATEN_CPU_CAPABILITY": "avx2"}) != before
