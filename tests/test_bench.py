"""lib.bench's import cost: what it measures is what it says (no timing is checked)."""
import pytest

from lib.bench import import_cost


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """`user_mod` imports `slow_dep` where it can, as jsonschema does rfc3987_syntax."""
    (tmp_path / "slow_dep.py").write_text("x = sum(range(10 ** 6))\n")
    (tmp_path / "user_mod.py").write_text("try:\n    import slow_dep\nexcept ImportError:\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


def test_import_cost_runs_the_statement_as_installed_and_with_the_module_blocked(modules):
    cost = import_cost("import user_mod", "slow_dep", repeats=1)
    assert set(cost) == {"installed", "blocked"} and all(s > 0 for s in cost.values())


def test_import_cost_refuses_a_statement_that_does_not_import_the_module(modules):
    with pytest.raises(RuntimeError, match="`import json` does not import slow_dep installed"):
        import_cost("import json", "slow_dep", repeats=1)


def test_import_cost_refuses_a_module_it_cannot_block(modules, tmp_path):
    (tmp_path / "hard_user.py").write_text("import sys\nsys.modules['slow_dep'] = object()\n")
    with pytest.raises(RuntimeError, match="still imports slow_dep blocked"):
        import_cost("import hard_user", "slow_dep", repeats=1)
