"""
Walking the statement tree: each directive checked against its entry in the
directive table (context, argument count, block or not, given once) and
handed to its handler, which records it on the level it belongs to.

:class:`Load` is one load in progress: what the walk gathered, and the
errors and notices found so far.  The load keeps going after a mistake so
that ``--check`` can list every one of them.  The table itself is in
:mod:`wstunnel.config.directives`; the handlers are in the topic modules
(servers, locations, proxy, upstream, logs...), each taking
``(load, stmt, level)``.
"""

from __future__ import annotations

import datetime
import os
from typing import Callable, Iterable

from attrs import frozen

from wstunnel.config.addresses import Resolver
from wstunnel.config.levels import Level, RawMap, ServerLevel, UpstreamLevel
from wstunnel.config.model import ConfigError, Source, Template
from wstunnel.config.read import Stmt
from wstunnel.config.templates import NUMBERED_CAPTURES, compile_template
from wstunnel.config.tls import Materials

__all__ = [
    "ALL_CONTEXTS",
    "EVENTS",
    "HTTP",
    "HTTP_LEVELS",
    "Handler",
    "LOCATION",
    "Load",
    "Lookup",
    "MAIN",
    "SERVER",
    "SERVER_LEVELS",
    "Spec",
    "UPSTREAM",
    "spec",
]

# The contexts a directive may appear in, named as nginx names them.
MAIN, EVENTS, HTTP, SERVER, LOCATION, UPSTREAM = (
    "main",
    "events",
    "http",
    "server",
    "location",
    "upstream",
)
SERVER_LEVELS = frozenset({HTTP, SERVER})
HTTP_LEVELS = frozenset({HTTP, SERVER, LOCATION})
ALL_CONTEXTS = frozenset({MAIN, HTTP, SERVER, LOCATION})

Handler = Callable[["Load", Stmt, Level], None]


@frozen
class Spec:
    """One directive's entry in the table."""

    contexts: frozenset[str]
    min_args: int
    max_args: int | None
    handler: Handler
    block: bool = False
    once: bool = False  # nginx: '"X" directive is duplicate'


def spec(
    contexts: Iterable[str], min_args: int, max_args: int | None, handler: Handler, *, block: bool = False, once: bool = False
) -> Spec:
    return Spec(frozenset(contexts), min_args, max_args, handler, block, once)


# The entry for a statement in a context; raises ConfigError for an unknown directive.
Lookup = Callable[[Stmt, str], Spec]


class Load:
    """One load of a configuration file: what the walk gathered, what building reads, every mistake found."""

    def __init__(self, path: str, resolve: Resolver, lookup: Lookup) -> None:
        self.path = path
        self.main_dir = os.path.dirname(path)
        self.resolve = resolve
        self.lookup = lookup
        self.errors: list[ConfigError] = []
        self.notices: list[str] = []
        self.snippet = False  # a conf.d file: http directives stand at the top
        self.main = Level(Source(path, 0))
        self.http = Level(Source(path, 0))
        self.workers: dict[str, object] = {}
        self.maps: dict[str, RawMap] = {}
        self.captures: set[str] = set(NUMBERED_CAPTURES)  # and the named groups of regexes
        self.upstreams: dict[str, UpstreamLevel] = {}
        self.servers: list[ServerLevel] = []
        self.materials = Materials(self.main_dir, datetime.datetime.now(datetime.timezone.utc))
        self.tls_failed: set[int] = set()
        self.log_formats: dict[str, tuple[str, str, Source]] = {}  # name -> escape, text

    def walk(self, statements: Iterable[Stmt], ctx: str, level: Level) -> None:
        for stmt in statements:
            try:
                self._dispatch(stmt, ctx, level)
            except ConfigError as exc:
                self.errors.append(exc)

    def _dispatch(self, stmt: Stmt, ctx: str, level: Level) -> None:
        entry = self.lookup(stmt, ctx)
        if ctx not in entry.contexts:
            if not (ctx == MAIN and self.snippet and HTTP in entry.contexts):
                raise ConfigError(stmt.source, f'"{stmt.name}" directive is not allowed here')
            level = self.http
        nargs = len(stmt.args)
        if nargs < entry.min_args or (entry.max_args is not None and nargs > entry.max_args):
            raise ConfigError(stmt.source, f'invalid number of arguments in "{stmt.name}" directive')
        if entry.block and stmt.block is None:
            raise ConfigError(stmt.source, f'directive "{stmt.name}" has no opening "{{"')
        if not entry.block and stmt.block is not None:
            raise ConfigError(stmt.source, f'directive "{stmt.name}" is not terminated by ";"')
        if entry.once:
            if stmt.name in level.seen:
                raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
            level.seen.add(stmt.name)
        entry.handler(self, stmt, level)

    def template(self, text: str, source: Source) -> Template | None:
        """``text`` compiled against the builtin variables and every map; None once reported."""
        try:
            return compile_template(text, source, self.maps.keys() | self.captures)
        except ConfigError as exc:
            self.errors.append(exc)
            return None
