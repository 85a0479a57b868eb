"""
Reading: nginx-syntax files into one tree of statements.

crossplane supplies the grammar; this adds the token-level mistakes nginx
rejects and crossplane lets through, and ``include`` spliced in place
(globs, nginx's two base directories, cycles).  Meaning is given later, by
the directive table (:mod:`wstunnel.config.directives`).
"""

from __future__ import annotations

import glob
import os

import crossplane
from attrs import frozen
from crossplane.errors import NgxParserBaseException
from crossplane.lexer import lex

from wstunnel.config.mimetypes import MIME_TYPES
from wstunnel.config.model import ConfigError, Source

__all__ = ["Stmt", "ignored_notice", "read"]


def read(path: str, errors: list[ConfigError], notices: list[str]) -> list[Stmt]:
    """The statements of ``path`` and of every file it includes; mistakes go to ``errors``."""
    return _Reader(path, errors, notices).read_main()


@frozen
class Stmt:
    """One directive as written: a block's statements are nested, ``include`` already spliced in."""

    name: str
    args: tuple[str, ...]
    source: Source
    block: tuple[Stmt, ...] | None


def flag(stmt: Stmt) -> bool:
    """An ``on | off`` argument, refused at its line otherwise, in nginx's words."""
    value = stmt.args[0]
    if value not in ("on", "off"):
        raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive, it must be "on" or "off"')
    return value == "on"


def _syntax_problem(path: str) -> tuple[int, str] | None:
    """
    The first token-level mistake nginx would reject and crossplane lets
    through (``listen 80 }``, a missing ``;`` at the end of the file).
    """
    after_word = False
    line = 1
    try:
        for token, line, quoted in lex(path):
            if quoted or not (token.startswith("#") or token in ("{", ";", "}")):
                after_word = True
            elif token.startswith("#"):
                continue
            elif after_word == (token == "}"):
                return line, f'unexpected "{token}"'
            else:
                after_word = False
    except NgxParserBaseException as exc:
        return exc.lineno or line, exc.strerror
    if after_word:
        return line, 'unexpected end of file, expecting ";" or "}"'
    return None


def _crossplane_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or "syntax error"


class _Reader:
    """Turns files into one statement tree, with ``include`` spliced in place."""

    def __init__(self, path: str, errors: list[ConfigError], notices: list[str]) -> None:
        self.path = path
        self.main_dir = os.path.dirname(path)
        self.errors = errors
        self.notices = notices

    def read_main(self) -> list[Stmt]:
        return self._file(self.path, None, (os.path.realpath(self.path),))

    def _file(self, path: str, included_at: Source | None, stack: tuple[str, ...]) -> list[Stmt]:
        try:
            open(path, "rb").close()
        except OSError as exc:
            self.errors.append(ConfigError(included_at, f'open() "{path}" failed ({exc.strerror})'))
            return []
        problem = _syntax_problem(path)
        if problem is not None:
            self.errors.append(ConfigError(Source(path, problem[0]), problem[1]))
            return []
        payload = crossplane.parse(
            path,
            onerror=_crossplane_reason,
            single=True,
            comments=False,
            check_ctx=False,
            check_args=False,
        )
        for err in payload["errors"]:
            self.errors.append(ConfigError(Source(path, err["line"] or 0), err["callback"]))
        return self._statements(payload["config"][0]["parsed"], path, stack)

    def _statements(self, raw: list[dict], path: str, stack: tuple[str, ...]) -> list[Stmt]:
        out: list[Stmt] = []
        for item in raw:
            if "comment" in item:
                # crossplane turns a comment between a directive's arguments
                # into a statement named "#"; nginx skips it as any comment.
                continue
            source = Source(path, item["line"])
            args = tuple(item["args"])
            block = item.get("block")
            if item["directive"] == "include":
                out.extend(self._include(args, block is not None, source, stack))
                continue
            inner = None if block is None else tuple(self._statements(block, path, stack))
            out.append(Stmt(item["directive"], args, source, inner))
        return out

    def _include(
        self, args: tuple[str, ...], has_block: bool, source: Source, stack: tuple[str, ...]
    ) -> list[Stmt]:
        if has_block:
            self.errors.append(ConfigError(source, 'directive "include" is not terminated by ";"'))
            return []
        if len(args) != 1:
            self.errors.append(ConfigError(source, 'invalid number of arguments in "include" directive'))
            return []
        pattern = args[0]
        try:
            paths = self._expand(pattern, source)
        except ConfigError as exc:
            if os.path.basename(pattern) == "mime.types":
                return [_builtin_types(source, self.notices)]
            self.errors.append(exc)
            return []
        out: list[Stmt] = []
        for included in paths:
            real = os.path.realpath(included)
            if real in stack:
                self.errors.append(ConfigError(source, f'include cycle: "{included}" includes itself'))
                continue
            out.extend(self._file(included, source, stack + (real,)))
        return out

    def _expand(self, pattern: str, source: Source) -> list[str]:
        """
        Files named by an ``include``: relative to the including file, else
        (nginx's own rule) relative to the main configuration file.  A glob
        that matches nothing is not an error, as in nginx.
        """
        if os.path.isabs(pattern):
            candidates = [pattern]
        else:
            candidates = list(
                dict.fromkeys(
                    [os.path.join(os.path.dirname(source.file), pattern), os.path.join(self.main_dir, pattern)]
                )
            )
        for candidate in candidates:
            if glob.has_magic(candidate):
                found = sorted(p for p in glob.glob(candidate) if os.path.isfile(p))
            else:
                found = [candidate] if os.path.exists(candidate) else []
            if found:
                return found
        if glob.has_magic(pattern):
            return []
        raise ConfigError(source, f'open() "{candidates[0]}" failed (No such file or directory)')


def _builtin_types(source: Source, notices: list[str]) -> Stmt:
    """An absent ``mime.types``: nginx 1.22's, built in, as the ``types`` block it holds."""
    notices.append(f"{source}: mime.types not found, wstunnel's built-in copy of nginx 1.22's is used")
    return Stmt("types", (), source, tuple(Stmt(kind, names, source, None) for kind, names in MIME_TYPES))


def ignored_notice(source: Source, what: str) -> str:
    return f'{source}: directive "{what}" has no effect in wstunnel and is ignored'
