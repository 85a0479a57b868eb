"""The layer rule of doc/architecture.md, checked on the source.

The package's folders are its architecture: a layer imports only from the layers
below it, the sans-IO layers never load Twisted, and no two modules import each
other, however indirectly (imports under ``TYPE_CHECKING`` and inside functions
count too: a cycle there is still a type in the wrong place).
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "wstunnel"

# Bottom to top.  A module may import from its own layer and the ones before it.
LAYERS = ("config", "wire", "core", "balancing", "obs", "net", "app")
SANS_IO = ("config", "wire", "core", "balancing")
MAX_MODULE_LINES = 800
MAX_CLASS_LINES = 500


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """Every wstunnel module that ``name`` imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else None


def test_every_module_belongs_to_a_layer():
    loose = [
        m
        for m in MODULES
        if _layer(m) is None
        and m not in ("wstunnel", "wstunnel.__main__")
        and not m.startswith("wstunnel.demo")
        and m.rpartition(".")[2] not in LAYERS
    ]
    assert loose == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_a_layer_imports_only_from_below(module):
    mine = LAYERS.index(_layer(module))
    above = sorted(m for m in GRAPH[module] if _layer(m) and LAYERS.index(_layer(m)) > mine)
    assert above == [], f"{module} imports from a higher layer"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the whole package."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert cycles == []


_LOADED = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m == "twisted" or m.startswith("twisted."))))
"""


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) in SANS_IO))
def test_sans_io_modules_never_load_twisted(module):
    """Imported in a fresh interpreter, so nothing else has loaded Twisted first."""
    out = subprocess.run(
        [sys.executable, "-c", _LOADED, module],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
        timeout=30,
    )
    assert json.loads(out.stdout) == []


def test_the_sans_io_layers_hold_half_the_code():
    def lines(pred):
        return sum(len(p.read_text().splitlines()) for m, p in MODULES.items() if pred(m))

    sans_io = lines(lambda m: _layer(m) in SANS_IO)
    assert sans_io * 2 >= lines(lambda m: not m.startswith("wstunnel.demo"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_size_limits(module):
    path = MODULES[module]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    big = [
        node.name
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert big == []
