"""What a run depends on: one sha256 for a report's freshness and a study row's alike.

It reads code, not prose: a docstring or a comment reworded makes no report and no recorded
run stale; a change of code always does."""
import ast
import functools
import hashlib
import io
import json
import re
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


def imports(tree):
    """{local name: (lib module, its name, or None for the module itself)} of every
    `from lib import x`, `from lib.x import y` and `import lib.x` in a syntax tree, inside
    functions too."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "lib":
            found.update({a.asname or a.name: (a.name, None) for a in node.names})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lib."):
            found.update({a.asname or a.name: (node.module.split(".")[1], a.name) for a in node.names})
        elif isinstance(node, ast.Import):
            found.update({a.asname or "lib": (a.name.split(".")[1], None) if a.asname else ("", None)
                          for a in node.names if a.name.startswith("lib.")})
    return found


class Module:
    """A piece of source read as code: its top-level functions and classes by name (each
    with its decorators), its other top-level statements, and its lib imports."""

    def __init__(self, name, source):
        self.name, tree, lines = name, ast.parse(source), source.splitlines()
        self.defs, self.rest = {}, []
        for node in tree.body:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            text = code_of("\n".join(lines[first - 1:node.end_lineno]))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs[node.name] = (node, text)
            elif not (isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)):  # runs as a script only
                self.rest.append((node, text))
        self.imports = imports(tree)

    def names(self, node):
        """The (lib module, name) pairs a piece of this module's code names: its own functions
        and classes, what it imports from lib, `module.name` of a lib module it imports; and
        (lib module, None) for each module it imports (which runs its top-level code)."""
        for n in ast.walk(node):
            if isinstance(n, (ast.Import, ast.ImportFrom)):  # importing runs the module's top-level code
                yield from {(module, None) for module, _ in imports(n).values() if module}
            if isinstance(n, ast.Name) and n.id in self.defs:
                yield self.name, n.id
            elif isinstance(n, ast.Name) and n.id in self.imports and self.imports[n.id][0]:
                yield self.imports[n.id]
            elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
                module, name = self.imports.get(n.value.id, (None, "?"))
                if module and name is None:
                    yield module, n.attr
            elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) \
                    and isinstance(n.value.value, ast.Name) and self.imports.get(n.value.value.id) == ("", None):
                yield n.value.attr, n.attr  # lib.x.name after `import lib.x`


@functools.cache
def lib_module(name, source):
    return Module(name, source)


def lib_code(source, model=None):
    """What of lib a piece of source (a notebook's code cells) runs: {module: [code]}, the
    top-level code of every lib module it imports, the functions and classes it names, and
    those that these name in turn, across modules. Of lib/models.py, where `model` names one
    of its classes, that class and what it names (its base classes, its layers' classes, the
    helpers they call), not the module's registry of every model: a model added stales nothing."""
    todo, used = list(Module("", source).names(ast.parse(source))), {}
    while todo:
        module, name = todo.pop()
        path = REPO / "lib" / f"{module}.py"
        if not path.exists():
            continue
        m = lib_module(module, path.read_text())
        if module not in used:
            used[module], rest = {}, m.rest
            if module == "models" and model in m.defs:  # not the registries that name every model
                todo.append((module, model))
                rest = [(node, text) for node, text in rest if not any(r[0] == module for r in m.names(node))]
            used[module][""] = "\n".join(text for _, text in rest)
            todo += [ref for node, _ in rest for ref in m.names(node)]
        if name in m.imports and name not in m.defs:  # a name it imports from another lib module
            todo.append(m.imports[name])
        elif name in m.defs and name not in used[module]:
            node, used[module][name] = m.defs[name]
            todo += m.names(node)
    return {module: [parts[n] for n in sorted(parts)] for module, parts in sorted(used.items())}


# the packages a run computes with: their pins shape its figures; a pin of the tooling around
# a run (Jupyter, papermill, pytest, Optuna, ...) does not
COMPUTES_WITH = ("numpy", "torch", "torchvision")


def computes_with(requirements):
    """The pins of COMPUTES_WITH in `requirements` (requirements.txt's text), one a line, sorted."""
    return "\n".join(sorted(line.split("#")[0].strip() for line in requirements.splitlines()
                            if re.split(r"[\s=<>!~;\[]", line.strip(), maxsplit=1)[0].lower() in COMPUTES_WITH))


def inputs_key(notebook, params, keyed=("out_dir",), data=(), device=None, environment=None,
               writer=()):
    """sha256 over what a run of `notebook` with `params` depends on:
    - the notebook's code cells (not its parameters cell) and the lib code they run
      (`lib_code`: a function added, or one only another notebook calls, stales nothing; of
      lib/models.py only what the run's model runs), as code without prose (`code_of`);
    - the parameters it runs with: the notebook's defaults, then `params`, except those in
      `keyed` (a study's row is keyed by its seed; out_dir only says where to write);
    - the pins of the packages it computes with (`computes_with`); the bytes of the `data`
      files it reads (a missing one as such);
      the `device` it runs on and the float-path `environment`, where given;
    - `writer`: the files that write its report.
    """
    import jupytext

    from lib.pipeline import notebook_parameters

    nb = jupytext.read(notebook)
    ran = {n: v for n, v in {**notebook_parameters(nb), **params}.items() if n not in keyed}
    cells = [c.source for c in nb.cells
             if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    h = hashlib.sha256()
    for cell in cells:
        h.update(code_of(cell).encode() + b"\0")
    python = [re.sub(r"(?m)^\s*[%!].*$", "", code_of(c)) for c in cells]  # IPython's magics and shell lines
    for module, parts in lib_code("\n".join(python), ran.get("model_name")).items():
        h.update(f"{module}.py".encode() + b"\0" + "\n".join(parts).encode())
    h.update(b"requirements.txt\0" + computes_with((REPO / "requirements.txt").read_text()).encode())
    h.update(json.dumps(ran, sort_keys=True).encode())
    for path in map(Path, [*data, *writer]):
        text = path.read_bytes() if path.exists() else b"(missing)"
        h.update(path.name.encode() + b"\0" + (code_of(text.decode()).encode() if path.suffix == ".py" else text))
    if device:
        h.update(b"device\0" + device.encode())
    if environment:
        h.update(b"environment\0" + json.dumps(environment, sort_keys=True).encode())
    return h.hexdigest()
