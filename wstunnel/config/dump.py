"""
``--dump`` (like ``nginx -T``): the configuration as wstunnel read it, every
``include`` expanded in place, for people moving a configuration over from
nginx.  Each run of statements from one file is headed by nginx's own
``# configuration file PATH:`` line; the text is nginx syntax that loads as
the same configuration.
"""

from __future__ import annotations

from typing import Iterable

import crossplane

from wstunnel.config.read import Stmt, read

__all__ = ["dump"]

# A line number no statement has, so that crossplane's builder never puts a
# header at the end of the line before it.
_OWN_LINE = -1


def dump(path: str) -> str:
    """
    The statements of ``path`` and its includes, with a header wherever the
    file changes.  Meant for a file that passed the check, which reported
    its mistakes: reading it again here finds none to add.
    """
    statements = read(path, [], [])
    headed = _Headers(path)
    payload = [headed.comment(path), *headed.payload(statements)]
    return crossplane.build(payload, indent=4) + "\n"


class _Headers:
    """Turns statements into crossplane's payload, adding a header each time the file changes."""

    def __init__(self, path: str) -> None:
        self.file = path

    def payload(self, statements: Iterable[Stmt]) -> list[dict]:
        out: list[dict] = []
        for stmt in statements:
            if stmt.source.file != self.file:
                self.file = stmt.source.file
                out.append(self.comment(self.file))
            item: dict = {"directive": stmt.name, "args": list(stmt.args), "line": stmt.source.line}
            if stmt.block is not None:
                item["block"] = self.payload(stmt.block)
            out.append(item)
        return out

    @staticmethod
    def comment(file: str) -> dict:
        return {"directive": "#", "args": [], "comment": f" configuration file {file}:", "line": _OWN_LINE}
