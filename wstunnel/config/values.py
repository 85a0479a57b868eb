"""
The values every part of the configuration is made of: where a directive was
written, the error that names it, and the compiled variable template.  They
sit below the model so the model's topic modules can share them.
"""

from __future__ import annotations

from attrs import frozen

__all__ = ["ConfigError", "Source", "Template", "VarRef"]


@frozen
class Source:
    """Where a directive was written, for error messages."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class ConfigError(Exception):
    """
    A configuration mistake, always tied to the place it was written so the
    operator can fix it without guessing.
    """

    def __init__(self, source: Source | None, message: str) -> None:
        super().__init__(source, message)
        self.source = source
        self.message = message

    def __str__(self) -> str:
        if self.source is None:
            return self.message
        return f"{self.source}: {self.message}"


@frozen
class VarRef:
    """A reference to a variable inside a template, without the ``$``."""

    name: str


@frozen
class Template:
    """
    A directive value that may contain variables, compiled at load time.

    ``parts`` alternates literal text and :class:`VarRef`; a template without
    variables is a single literal, which lets the hot path skip evaluation.
    Rendering lives in :mod:`wstunnel.core.variables`.
    """

    text: str
    parts: tuple[str | VarRef, ...]

    @property
    def is_literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)
