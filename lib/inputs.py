"""What a run depends on: one sha256 for a report's freshness and a study row's alike.

It reads code, not prose: a docstring or a comment reworded makes no report and no recorded
run stale; a change of code always does."""
import ast
import hashlib
import inspect
import io
import json
import tokenize
from pathlib import Path

from lib.paths import REPO


def code_of(source):
    """Python source without its prose: docstrings and comments removed, trailing blanks and
    empty lines dropped. Text, not a syntax tree: it reads the same on every Python version.
    Source that does not parse (a cell with IPython syntax) is kept as it is."""
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError):
        return source
    cut = {t.start[0] - 1: t.start[1] for t in tokens if t.type == tokenize.COMMENT}
    drop = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            drop.update(range(body[0].lineno - 1, body[0].end_lineno))
    kept = [line[:cut.get(i, len(line))].rstrip() for i, line in enumerate(source.splitlines())
            if i not in drop]
    return "\n".join(line for line in kept if line)


def lib_modules(source, seen=None):
    """The lib modules a piece of Python source imports, and the ones they import, by name
    (`from lib import plots`, `from lib.run import Run`, `import lib.x`, inside functions too)."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module == "lib":
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lib."):
            names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("lib.")]
        for name in names:
            path = REPO / "lib" / f"{name}.py"
            if name not in seen and path.exists():
                seen.add(name)
                lib_modules(path.read_text(), seen)
    return seen


def model_code(model):
    """What of lib/models.py a model class runs, sorted by name: the class, its base classes,
    the classes of its layers, and the module's functions any of them names (`conv`, ...),
    and those that these name in turn. A new model in the module stales nothing else."""
    from lib import models

    ours = lambda obj: getattr(obj, "__module__", None) == models.__name__
    used = {*filter(ours, model.__mro__), *(type(m) for m in model().modules() if ours(type(m)))}
    functions = {n: f for n, f in vars(models).items() if inspect.isfunction(f) and ours(f)}
    todo = list(used)
    while todo:
        names = {n.id for n in ast.walk(ast.parse(inspect.getsource(todo.pop()))) if isinstance(n, ast.Name)}
        for name in names & set(functions):
            if functions[name] not in used:
                used.add(functions[name])
                todo.append(functions[name])
    return sorted(used, key=lambda o: o.__qualname__)


def inputs_key(notebook, params, keyed=("out_dir",), data=(), device=None, environment=None,
               writer=()):
    """sha256 over what a run of `notebook` with `params` depends on:
    - the notebook's code cells (not its parameters cell) and every lib module they import,
      and theirs, as code without prose (`code_of`); of lib/models.py only what the run's
      model runs (`model_code`), so a model added stales nothing;
    - the parameters it runs with: the notebook's defaults, then `params`, except those in
      `keyed` (a study's row is keyed by its seed; out_dir only says where to write);
    - the pinned requirements; the bytes of the `data` files it reads (a missing one as such);
      the `device` it runs on and the float-path `environment`, where given;
    - `writer`: the files that write its report.
    """
    import jupytext

    from lib.pipeline import notebook_parameters, parse_value

    nb = jupytext.read(notebook)
    ran = {n: parse_value(s) for n, s in notebook_parameters(nb).items()}
    ran = {n: v for n, v in {**ran, **params}.items() if n not in keyed}
    cells = [c.source for c in nb.cells
             if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    h = hashlib.sha256()
    for cell in cells:
        h.update(code_of(cell).encode() + b"\0")
    for name in sorted(lib_modules("\n".join(code_of(c) for c in cells))):
        if name == "models" and "model_name" in ran:
            from lib.models import MODELS
            if ran["model_name"] in MODELS:
                for obj in model_code(MODELS[ran["model_name"]]):
                    h.update(code_of(inspect.getsource(obj)).encode())
                continue
        path = REPO / "lib" / f"{name}.py"
        h.update(path.name.encode() + b"\0" + code_of(path.read_text()).encode())
    h.update(b"requirements.txt\0" + (REPO / "requirements.txt").read_bytes())
    h.update(json.dumps(ran, sort_keys=True).encode())
    for path in map(Path, [*data, *writer]):
        text = path.read_bytes() if path.exists() else b"(missing)"
        h.update(path.name.encode() + b"\0" + (code_of(text.decode()).encode() if path.suffix == ".py" else text))
    if device:
        h.update(b"device\0" + device.encode())
    if environment:
        h.update(b"environment\0" + json.dumps(environment, sort_keys=True).encode())
    return h.hexdigest()
