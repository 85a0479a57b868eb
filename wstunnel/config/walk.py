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
from wstunnel.config.levels import Level, LocationLevel, RawMap, ServerLevel, UpstreamLevel
from wstunnel.config.model import ConfigError, Source, Template
from wstunnel.config.read import Stmt
from wstunnel.config.templates import NUMBERED_CAPTURES, compile_template, is_builtin
from wstunnel.config.tls import Materials

__all__ = [
    "ALL_CONTEXTS",
    "EVENTS",
    "HTTP",
    "IF_DIRECTIVES",
    "LOCATION_IF",
    "SERVER_IF",
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
# Inside "if" at server level and at location level (nginx's SIF and LIF).
SERVER_IF, LOCATION_IF = "if in server", "if in location"
_REWRITE_MODULE = frozenset({"rewrite", "return", "set", "break", "rewrite_log"})
# What nginx accepts inside each "if": a directive of the table is allowed
# there only when named here, whatever contexts its entry lists.
IF_DIRECTIVES = {
    SERVER_IF: _REWRITE_MODULE,
    LOCATION_IF: _REWRITE_MODULE
    | {
        "proxy_pass",
        "access_log",
        "add_header",
        "add_trailer",
        "expires",
        "sendfile",
        "root",
        "error_page",
        "limit_rate",
        "limit_rate_after",
        "gzip",
        "charset",
        "override_charset",
        "source_charset",
        "ssi",
        "fastcgi_pass",
        "uwsgi_pass",
        "scgi_pass",
        "grpc_pass",
        "memcached_pass",
    },
}
SERVER_LEVELS = frozenset({HTTP, SERVER})
HTTP_LEVELS = frozenset({HTTP, SERVER, LOCATION})
ALL_CONTEXTS = frozenset({MAIN, HTTP, SERVER, LOCATION})

Handler = Callable[["Load", Stmt, Level], None]

# The context inside each block whose statements are directives, and the kind
# of level they are recorded on: what a refused block is checked as.  Blocks
# of other kinds (map, types, geo...) hold data, not directives.
_INSIDE: dict[str, tuple[str, type[Level]]] = {
    "http": (HTTP, Level),
    "events": (EVENTS, Level),
    "server": (SERVER, ServerLevel),
    "location": (LOCATION, LocationLevel),
    "upstream": (UPSTREAM, UpstreamLevel),
    "if": (LOCATION_IF, LocationLevel),
    "limit_except": (LOCATION, LocationLevel),
}


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
        # The variables a request stores: $1..$9, the named groups of every
        # regex, and the names given to "set" anywhere in the configuration.
        self.captures: set[str] = set(NUMBERED_CAPTURES)
        self.upstreams: dict[str, UpstreamLevel] = {}
        self.servers: list[ServerLevel] = []
        self.materials = Materials(self.main_dir, datetime.datetime.now(datetime.timezone.utc))
        self.tls_failed: set[int] = set()
        self.log_formats: dict[str, tuple[str, str, Source]] = {}  # name -> escape, text
        self._walked: set[int] = set()  # the blocks walked so far, by id: the tree lives as long as the load
        self._parents: dict[int, Level] = {}  # by id() of a level: the level whose block holds it
        self._open: list[Level] = []  # the levels being walked, outermost first

    def walk(self, statements: Iterable[Stmt], ctx: str, level: Level) -> None:
        if not self._walked:
            self.captures.update(_set_names(statements) - _map_names(statements))
        self._walked.add(id(statements))
        if self._open and self._open[-1] is not level:
            self._parents[id(level)] = self._open[-1]
        self._open.append(level)
        try:
            for stmt in statements:
                try:
                    self._dispatch(stmt, ctx, level)
                except ConfigError as exc:
                    self.errors.append(exc)
                    self._check_refused_block(stmt, ctx)
        finally:
            self._open.pop()

    def parent(self, level: Level) -> Level | None:
        """The level whose block holds ``level``, as walked (None for the top)."""
        return self._parents.get(id(level))

    def _check_refused_block(self, stmt: Stmt, around: str) -> None:
        """
        The statements inside a block that was refused before its handler
        walked them, checked on a level of their own that nothing builds:
        ``--check`` lists their mistakes too, in the same pass.  ``around``
        is the block's own context (an ``if`` of a server takes less).
        """
        inside = _INSIDE.get(stmt.name)
        if not stmt.block or inside is None or id(stmt.block) in self._walked:
            return
        ctx, kind = (SERVER_IF, Level) if stmt.name == "if" and around == SERVER else inside
        self.walk(stmt.block, ctx, kind(stmt.source))

    def _dispatch(self, stmt: Stmt, ctx: str, level: Level) -> None:
        entry = self.lookup(stmt, ctx)
        if ctx in IF_DIRECTIVES:
            if stmt.name not in IF_DIRECTIVES[ctx]:
                raise ConfigError(stmt.source, f'"{stmt.name}" directive is not allowed here')
        elif ctx not in entry.contexts:
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

    def declare(self, name: str, source: Source) -> None:
        """A regex's named group becomes a variable; one of the builtins or a map's name is nginx's duplicate."""
        name = name.lower()
        if name in self.maps or is_builtin(name):
            raise ConfigError(source, f'the duplicate "{name}" variable')
        self.captures.add(name)

    def template(self, text: str, source: Source) -> Template | None:
        """``text`` compiled against the builtin variables and every map; None once reported."""
        try:
            return compile_template(text, source, self.maps.keys() | self.captures)
        except ConfigError as exc:
            self.errors.append(exc)
            return None


def _set_names(statements: Iterable[Stmt]) -> set[str]:
    """
    Every ``set $name`` of the tree: as in nginx, a variable given a value
    anywhere may be used anywhere, before its ``set`` too.
    """
    names = set()
    for stmt in statements:
        if stmt.name == "set" and stmt.args and stmt.args[0].startswith("$"):
            names.add(stmt.args[0][1:].lower())
        if stmt.block and stmt.name != "map":
            names |= _set_names(stmt.block)
    return names


def _map_names(statements: Iterable[Stmt]) -> set[str]:
    """The variables of every ``map`` of the tree: a ``set`` may give them a value too."""
    names = set()
    for stmt in statements:
        if stmt.name == "map" and len(stmt.args) == 2:
            names.add(stmt.args[1][1:].lower())
        if stmt.block and stmt.name != "map":
            names |= _map_names(stmt.block)
    return names
