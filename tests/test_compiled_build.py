"""The optional compiled build's module list (setup.py, doc/compiled.md), checked without compiling.

The list is only read by a build nobody runs by default, so a module renamed,
moved or given a Twisted import would otherwise break it silently.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SANS_IO = ("config", "wire", "core", "balancing")


def _setup_value(name: str) -> object:
    """A module-level constant of setup.py, read from its source (running it would build)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py has no {name}")


COMPILED = _setup_value("COMPILED")

_LOADED = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m == "twisted" or m.startswith("twisted."))))
"""


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_the_compiled_modules_exist_in_the_sans_io_layers():
    assert COMPILED and len(set(COMPILED)) == len(COMPILED)
    for path in COMPILED:
        assert (ROOT / path).is_file(), path
        parts = pathlib.PurePosixPath(path).parts
        assert parts[0] == "wstunnel" and parts[1] in SANS_IO and path.endswith(".py"), path


def test_the_compiled_modules_load_no_twisted():
    """All of them in one fresh interpreter, so nothing else has loaded Twisted first."""
    out = subprocess.run(
        [sys.executable, "-c", _LOADED, *map(_module, COMPILED)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert json.loads(out.stdout) == []


def test_the_mypy_version_is_pinned():
    assert re.fullmatch(r"\d+\.\d+\.\d+", _setup_value("MYPY"))
