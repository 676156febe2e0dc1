"""What a run depends on (one key for reports and study rows) reads code, not prose: docstrings and comments never stale a row,
a change of code always does."""
import shutil
import textwrap

import pytest
from conftest import REPO

from lib import models
from lib.inputs import code_of, model_code

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


def test_a_model_hashes_the_helpers_it_calls():
    names = [o.__qualname__ for o in model_code(models.Frontier_sep_931)]
    assert {"Frontier", "Frontier_sep_931", "BlurPool", "conv", "dw_separable"} <= set(names)
    assert "separable" not in names  # named by no class it runs
    assert [o.__qualname__ for o in model_code(models.Model_1)] == ["Model_1", "conv"]


def test_a_run_depends_on_the_lib_modules_its_notebook_imports_and_theirs():
    from lib.inputs import lib_modules
    assert lib_modules("from lib import plots") == {"plots", "data", "train", "models", "paths"}
    assert lib_modules("import os\nfrom lib.summary import show") == {"summary"}
    assert "study" not in lib_modules((REPO / "notebooks/03_final.py").read_text())
    assert {"study", "compare"} <= lib_modules((REPO / "notebooks/05_recipe.py").read_text())


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
    assert (key(keyed=("seed", "out_dir")), key()) == (row, report)
    edit(summary, "def ", "def unused():\n    return 1\n\n\ndef ")
    assert key(keyed=("seed", "out_dir")) != row and key() != report


def test_a_new_model_stales_no_run_of_another(checkout):
    from lib.inputs import inputs_key
    nb = checkout / "notebooks/03_final.py"
    before = inputs_key(nb, {})
    (checkout / "lib/models.py").write_text((checkout / "lib/models.py").read_text()
                                            + "\n\nclass Unused:\n    pass\n")
    assert inputs_key(nb, {}) == before
    assert inputs_key(nb, {}, device="cuda") != before
    assert inputs_key(nb, {}, environment={"ATEN_CPU_CAPABILITY": "avx2"}) != before
