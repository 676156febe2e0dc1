"""A study row's inputs hash reads code, not prose: docstrings and comments never stale a row,
a change of code always does."""
import textwrap

from lib.study import code_of, model_code
from lib import models

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
