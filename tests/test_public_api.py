"""lib uses its dependencies through their public API only: a private name (a module, class,
function or attribute whose name starts with "_") of Optuna, torch or SQLAlchemy breaks
silently on their next release."""
import re

from conftest import REPO

# a dotted name of a dependency with a private part, or a private attribute of what one returns
PRIVATE = re.compile(r"\b(?:optuna|torch|sqlalchemy)(?:\.\w+)*\._(?!_)\w+|\.(?:_storage|_trial_id|_backend|_rdb)\b"
                     r"|\bdef _get_\w+\(self")


def private_uses(text):
    return [m.group(0) for m in PRIVATE.finditer(text)]


def test_the_rule_finds_what_was_there():
    was = """from optuna.storages._rdb import models
        storage, ended = storage_study._storage, 0
        storage.set_trial_user_attr(t._trial_id, "row", row)
        info["x"] = getattr(torch._C, "_cuda_getDriverVersion", lambda: None)()
        from torch.utils._triton import has_triton
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        def _get_stale_trial_ids(self, study_id):"""
    assert len(private_uses(was)) == 7
    assert private_uses("torch.compiler.set_stance('force_eager'); study.tell(t.number)") == []


def test_lib_uses_no_private_api_of_a_dependency():
    found = {p.name: private_uses(p.read_text()) for p in sorted((REPO / "lib").glob("*.py"))}
    assert {name: uses for name, uses in found.items() if uses} == {}
