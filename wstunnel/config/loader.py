"""
nginx-syntax configuration file -> :class:`~wstunnel.config.model.Config`.

crossplane supplies the grammar; the meaning is ours: a directive table with
contexts and argument counts, nginx's inheritance between http, server and
location, upstream name resolution, and template compilation.  Everything is
settled here, once, so a request never walks the configuration.

A directive wstunnel does not implement is an error, never silently skipped:
an ignored ``deny`` or ``auth_basic`` would open what the operator closed.
Only directives that cannot change what is proxied (``pid``, ``sendfile``,
``types``...) are accepted, with a notice.  The load keeps going after a
mistake so that ``--check`` can list every one of them.
"""

from __future__ import annotations

import datetime
import glob
import ipaddress
import os
import re
import socket
from typing import Callable, Iterable, Sequence

import crossplane
from attrs import define, evolve, field, frozen
from crossplane.analyzer import DIRECTIVES as NGINX_DIRECTIVES
from crossplane.errors import NgxParserBaseException
from crossplane.lexer import lex

from wstunnel.config.logformats import ESCAPES, combined_format, compile_log_format
from wstunnel.config.model import (
    DEFAULT_HIDDEN,
    AccessLog,
    Balancing,
    Binding,
    ClientLimits,
    Config,
    ConfigError,
    ConfigErrors,
    ErrorLog,
    HeaderSetting,
    Listen,
    Location,
    LogFormat,
    MapDef,
    NextUpstream,
    Peer,
    ProxyPass,
    RedirectRule,
    ResponseRules,
    Server,
    Source,
    Template,
    Timeouts,
    Upstream,
    VarRef,
    Workers,
    one_per_path,
)
from wstunnel.config import tls as tlsconfig
from wstunnel.config.templates import compile_template, is_builtin
from wstunnel.config.units import parse_size, parse_time
from wstunnel.config.upstream import (
    BACKUP_METHODS,
    parse_balancing,
    parse_next_upstream,
    parse_server_params,
    parse_tries,
)

__all__ = ["IGNORED_DIRECTIVES", "Resolver", "load_config", "resolve_host"]

Resolver = Callable[[str, int], Sequence[str]]

MAIN, EVENTS, HTTP, SERVER, LOCATION, UPSTREAM = (
    "main",
    "events",
    "http",
    "server",
    "location",
    "upstream",
)
_HTTP_LEVELS = frozenset({HTTP, SERVER, LOCATION})
_ERROR_LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")
_TIMEOUT_FIELDS = {
    "proxy_connect_timeout": "connect",
    "proxy_read_timeout": "read",
    "proxy_send_timeout": "send",
    "send_timeout": "client_send",
}
_CLIENT_FIELDS = {"client_header_timeout": "header_timeout", "client_body_timeout": "body_timeout"}
_COUNT_FIELDS = {"keepalive_requests": "keepalive_requests"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]+")
_DEFAULT_HTTP_VERSION = "1.1"
# nginx refuses "listen 0"; we let the system pick a free port, which tests need.
_LISTEN_LOWEST_PORT = 0


def resolve_host(host: str, port: int) -> list[str]:
    """Every TCP address of ``host``, once each, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def load_config(path: str, *, resolve: Resolver = resolve_host) -> Config:
    """
    Read ``path`` (a whole nginx.conf or a conf.d snippet) and everything it
    includes.  Raises :class:`ConfigErrors` listing every mistake found.
    """
    builder = _Builder(path, resolve)
    statements = _Reader(path, builder.errors, builder.notices).read_main()
    return builder.build(statements)


# -- reading: crossplane, includes ---------------------------------------------------


@frozen
class _Stmt:
    name: str
    args: tuple[str, ...]
    source: Source
    block: tuple[_Stmt, ...] | None


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

    def read_main(self) -> list[_Stmt]:
        return self._file(self.path, None, (os.path.realpath(self.path),))

    def _file(self, path: str, included_at: Source | None, stack: tuple[str, ...]) -> list[_Stmt]:
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

    def _statements(self, raw: list[dict], path: str, stack: tuple[str, ...]) -> list[_Stmt]:
        out: list[_Stmt] = []
        for item in raw:
            source = Source(path, item["line"])
            args = tuple(item["args"])
            block = item.get("block")
            if item["directive"] == "include":
                out.extend(self._include(args, block is not None, source, stack))
                continue
            inner = None if block is None else tuple(self._statements(block, path, stack))
            out.append(_Stmt(item["directive"], args, source, inner))
        return out

    def _include(
        self, args: tuple[str, ...], has_block: bool, source: Source, stack: tuple[str, ...]
    ) -> list[_Stmt]:
        if has_block:
            self.errors.append(ConfigError(source, 'directive "include" is not terminated by ";"'))
            return []
        if len(args) != 1:
            self.errors.append(ConfigError(source, 'invalid number of arguments in "include" directive'))
            return []
        pattern = args[0]
        if os.path.basename(pattern) == "mime.types":
            self.notices.append(_ignored_notice(source, f"include {pattern}"))
            return []
        try:
            paths = self._expand(pattern, source)
        except ConfigError as exc:
            self.errors.append(exc)
            return []
        out: list[_Stmt] = []
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


def _ignored_notice(source: Source, what: str) -> str:
    return f'{source}: directive "{what}" has no effect in wstunnel and is ignored'


# -- addresses and URLs ------------------------------------------------------------


def _port(text: str, whole: str, lowest: int = 1) -> int:
    if not text.isdigit() or not lowest <= int(text) <= 65535:
        raise ValueError(f'invalid port in "{whole}"')
    return int(text)


def _split_host_port(text: str, default_port: int | None, lowest_port: int = 1) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; the host without brackets."""
    if text.startswith("["):
        end = text.find("]")
        host, tail = (text[1:end], text[end + 1 :]) if end > 0 else ("", "")
        if end < 0 or (tail and not tail.startswith(":")):
            raise ValueError(f'invalid IPv6 address in "{text}"')
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f'invalid IPv6 address in "{text}"') from None
        port_text = tail[1:] if tail else None
    elif text.count(":") > 1:
        raise ValueError(f'IPv6 address in "{text}" must be written in brackets')
    else:
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    if not host:
        raise ValueError(f'no host in "{text}"')
    return host, default_port if port_text is None else _port(port_text, text, lowest_port)


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@frozen
class _ProxyURL:
    """A ``proxy_pass`` URL checked for syntax, before upstream names are known."""

    scheme: str
    authority: str
    host: str
    port: int | None
    uri: str | None
    source: Source


def _parse_proxy_url(url: str, source: Source) -> _ProxyURL:
    if "$" in url:
        raise ValueError('variables in "proxy_pass" are not supported by wstunnel')
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f'invalid URL prefix in "{url}"')
    cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
    authority, uri = rest[:cut], rest[cut:]
    if authority.startswith("unix:"):
        raise ValueError("unix domain sockets are not supported by wstunnel")
    if "@" in authority:
        raise ValueError(f'user information in "{url}" is not supported')
    host, port = _split_host_port(authority, None)
    return _ProxyURL(scheme, authority, host, port, uri or None, source)


# -- the directive table -----------------------------------------------------------


@frozen
class _Spec:
    contexts: frozenset[str]
    min_args: int
    max_args: int | None
    handler: Callable[[_Builder, _Stmt, _Level], None]
    block: bool = False
    once: bool = False  # nginx: '"X" directive is duplicate'


# -- per-level state gathered while walking ------------------------------------------


@define
class _Level:
    source: Source
    seen: set[str] = field(factory=set)
    http_version: str | None = None
    timeouts: dict[str, float] = field(factory=dict)
    headers: list[tuple[str, str, Source]] | None = None
    access_logs: list[AccessLog] | None = None
    access_off: bool = False
    real_ip_from: list | None = None
    real_ip_header: str | None = None
    error_logs: list[ErrorLog] | None = None  # error_log directives of this level
    tls: dict[str, tlsconfig.Setting] = field(factory=dict)  # ssl_* / proxy_ssl_*, inherited one by one
    next_upstream: dict[str, object] = field(factory=dict)  # NextUpstream fields set here
    client: dict[str, float | int] = field(factory=dict)
    buffer_size: int | None = None
    hide: list[bytes] | None = None
    passed: list[bytes] | None = None
    redirects: list[tuple[str, ...]] | None = None  # [("off",)], [("default",)], pairs


@define
class _LocationLevel(_Level):
    path: str = ""
    exact: bool = False
    proxy_pass: _ProxyURL | None = None
    status_page: str | None = None


@define
class _ServerLevel(_Level):
    names: list[str] = field(factory=list)
    listens: list[Listen] = field(factory=list)
    locations: list[_LocationLevel] = field(factory=list)


@define
class _UpstreamServer:
    text: str
    host: str  # the path for unix:
    port: int
    params: dict[str, object]  # Peer fields
    source: Source


@define
class _UpstreamLevel(_Level):
    name: str = ""
    servers: list[_UpstreamServer] = field(factory=list)
    balancing: tuple[str, str | None, bool, bool] = ("round_robin", None, False, False)
    balancing_source: Source | None = None
    servers: list[tuple[str, str, int, Source]] = field(factory=list)  # text, host, port
    keepalive: dict[str, float | int] = field(factory=dict)


@define
class _RawMap:
    variable: str
    source_text: str
    entries: dict[str, tuple[str, Source]]
    default: tuple[str, Source] | None
    source: Source


@frozen
class _Effective:
    """The inheritable settings in force at one level."""

    http_version: str
    timeouts: Timeouts
    headers: tuple[HeaderSetting, ...]
    access_logs: tuple[AccessLog, ...]
    next_upstream: NextUpstream
    error_logs: tuple[ErrorLog, ...]
    client: ClientLimits = ClientLimits()
    buffer_size: int = ResponseRules().buffer_size
    hide: tuple[bytes, ...] = ()
    passed: tuple[bytes, ...] = ()
    redirects: tuple[tuple[str, ...], ...] = (("default",),)


# -- walking and building ----------------------------------------------------------


class _Builder:
    def __init__(self, path: str, resolve: Resolver) -> None:
        self.path = path
        self.main_dir = os.path.dirname(path)
        self.resolve = resolve
        self.errors: list[ConfigError] = []
        self.notices: list[str] = []
        self.snippet = False
        self.main = _Level(Source(path, 0))
        self.http = _Level(Source(path, 0))
        self.workers: dict[str, object] = {}
        self.maps: dict[str, _RawMap] = {}
        self.upstreams: dict[str, _UpstreamLevel] = {}
        self.servers: list[_ServerLevel] = []
        self.materials = tlsconfig.Materials(self.main_dir, datetime.datetime.now(datetime.timezone.utc))
        self.tls_failed: set[int] = set()
        self.log_formats: dict[str, tuple[str, str, Source]] = {}  # name -> escape, text

    def build(self, statements: list[_Stmt]) -> Config:
        self.snippet = not any(s.name == "http" for s in statements)
        self.walk(statements, MAIN, self.main)
        maps = self._compile_maps()
        log_formats = self._compile_log_formats(maps)
        upstreams = self._resolve_upstreams()
        implicit: dict[tuple[str, int], Upstream] = {}
        main_logs = one_per_path(self.main.error_logs or [ErrorLog("stderr", "error", Source(self.path, 0))])
        http = self._effective(self.http, _root_settings(self.path, main_logs))
        servers = tuple(self._build_server(s, http, upstreams, implicit) for s in self.servers)
        bindings = self._bindings(servers)
        workers = Workers(**self.workers)  # type: ignore[arg-type]
        self._check_worker_ports(workers, bindings)
        if self.errors:
            raise ConfigErrors(self.errors)
        all_upstreams = {u.name: u for u in upstreams.values()}
        all_upstreams.update((u.name, u) for u in implicit.values())
        return Config(
            path=self.path,
            bindings=bindings,
            servers=servers,
            upstreams=all_upstreams,
            maps=maps,
            error_logs=main_logs,
            notices=tuple(self.notices),
            workers=workers,
            warnings=tuple(self.materials.warnings),
            log_formats=log_formats,
        )

    # walking

    def walk(self, statements: Iterable[_Stmt], ctx: str, level: _Level) -> None:
        for stmt in statements:
            try:
                self._dispatch(stmt, ctx, level)
            except ConfigError as exc:
                self.errors.append(exc)

    def _dispatch(self, stmt: _Stmt, ctx: str, level: _Level) -> None:
        spec = _UPSTREAM_TABLE.get(stmt.name) if ctx == UPSTREAM else None
        spec = spec or _TABLE.get(stmt.name)
        if spec is None and stmt.name in _UPSTREAM_TABLE:
            raise ConfigError(stmt.source, f'"{stmt.name}" directive is not allowed here')
        if spec is None:
            raise _unknown(stmt)
        if ctx not in spec.contexts:
            if not (ctx == MAIN and self.snippet and HTTP in spec.contexts):
                raise ConfigError(stmt.source, f'"{stmt.name}" directive is not allowed here')
            level = self.http
        nargs = len(stmt.args)
        if nargs < spec.min_args or (spec.max_args is not None and nargs > spec.max_args):
            raise ConfigError(stmt.source, f'invalid number of arguments in "{stmt.name}" directive')
        if spec.block and stmt.block is None:
            raise ConfigError(stmt.source, f'directive "{stmt.name}" has no opening "{{"')
        if not spec.block and stmt.block is not None:
            raise ConfigError(stmt.source, f'directive "{stmt.name}" is not terminated by ";"')
        if spec.once:
            if stmt.name in level.seen:
                raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
            level.seen.add(stmt.name)
        spec.handler(self, stmt, level)

    # main and events

    def _ignored(self, stmt: _Stmt, level: _Level) -> None:
        self.notices.append(_ignored_notice(stmt.source, stmt.name))

    def _worker_processes(self, stmt: _Stmt, level: _Level) -> None:
        value = stmt.args[0]
        if value == "auto":
            self.workers["processes"] = len(os.sched_getaffinity(0))
            return
        self.workers["processes"] = _positive(stmt)

    def _worker_connections(self, stmt: _Stmt, level: _Level) -> None:
        self.workers["connections"] = _positive(stmt)

    def _worker_rlimit_nofile(self, stmt: _Stmt, level: _Level) -> None:
        self.workers["rlimit_nofile"] = _positive(stmt)

    def _worker_shutdown_timeout(self, stmt: _Stmt, level: _Level) -> None:
        try:
            self.workers["shutdown_timeout"] = parse_time(stmt.args[0])
        except ValueError as exc:
            raise ConfigError(stmt.source, f'"{stmt.name}" directive {exc}') from None

    def _check_worker_ports(self, workers: Workers, bindings: tuple[Binding, ...]) -> None:
        """With several workers each binds its own socket: port 0 would give each another port."""
        if workers.processes == 1:
            return
        for binding in bindings:
            if binding.port == 0:
                listen = next(l for l in binding.default.listens if l.port == 0)
                self.errors.append(ConfigError(listen.source, '"listen" port 0 needs "worker_processes 1"'))

    def _events(self, stmt: _Stmt, level: _Level) -> None:
        self.walk(stmt.block or (), EVENTS, _Level(stmt.source))

    def _http(self, stmt: _Stmt, level: _Level) -> None:
        self.http.source = stmt.source
        self.walk(stmt.block or (), HTTP, self.http)

    def _error_log(self, stmt: _Stmt, level: _Level) -> None:
        path = stmt.args[0]
        severity = stmt.args[1] if len(stmt.args) > 1 else "error"
        if path.startswith(("syslog:", "memory:")):
            raise ConfigError(stmt.source, f'"{path.split(":")[0]}:" error logs are not supported by wstunnel')
        if severity not in _ERROR_LEVELS:
            raise ConfigError(stmt.source, f'invalid log level "{severity}"')
        if level.error_logs is None:
            level.error_logs = []
        level.error_logs.append(ErrorLog(self._log_path(path), severity, stmt.source))

    def _log_path(self, path: str) -> str:
        """Log files are relative to the main config file's directory."""
        if path in ("stderr", "stdout"):
            return path
        return os.path.join(self.main_dir, path)

    # http level

    def _map(self, stmt: _Stmt, level: _Level) -> None:
        source_text, var = stmt.args
        name = var[1:].lower()
        if not var.startswith("$") or not _VARIABLE_NAME.fullmatch(name):
            raise ConfigError(stmt.source, f'invalid variable name "{var}"')
        if name in self.maps or is_builtin(name):
            raise ConfigError(stmt.source, f'the duplicate "{name}" variable')
        raw = _RawMap(name, source_text, {}, None, stmt.source)
        self.maps[name] = raw
        for entry in stmt.block or ():
            try:
                self._map_entry(raw, entry)
            except ConfigError as exc:
                self.errors.append(exc)

    def _map_entry(self, raw: _RawMap, entry: _Stmt) -> None:
        key = entry.name
        if key in ("hostnames", "volatile") and not entry.args:
            raise ConfigError(entry.source, f'"{key}" in "map" is not supported by wstunnel')
        if entry.block is not None or len(entry.args) != 1:
            raise ConfigError(entry.source, "invalid number of the map parameters")
        value = (entry.args[0], entry.source)
        if key == "default":
            if raw.default is not None:
                raise ConfigError(entry.source, "duplicate default map parameter")
            raw.default = value
            return
        if key.startswith("~"):
            raise ConfigError(entry.source, "regular expressions in map are not supported by wstunnel")
        key = key.removeprefix("\\").lower()
        if key in raw.entries:
            raise ConfigError(entry.source, f'conflicting parameter "{entry.name}"')
        raw.entries[key] = value

    def _upstream(self, stmt: _Stmt, level: _Level) -> None:
        name = stmt.args[0]
        if name.lower() in self.upstreams:
            raise ConfigError(stmt.source, f'duplicate upstream "{name}"')
        upstream = _UpstreamLevel(stmt.source, name=name)
        self.upstreams[name.lower()] = upstream
        self.walk(stmt.block or (), UPSTREAM, upstream)
        if not any(s.name == "server" for s in stmt.block or ()):
            raise ConfigError(stmt.source, "no servers are inside upstream")

    def _upstream_server(self, stmt: _Stmt, level: _Level) -> None:
        assert isinstance(level, _UpstreamLevel)
        address, *params = stmt.args
        try:
            fields = parse_server_params(params)
            if address.startswith("unix:"):
                host, port = address[5:], 0
                fields["unix"] = True
                if not host:
                    raise ValueError(f'no path in "{address}"')
            else:
                host, port = _split_host_port(address, 80)  # type: ignore[assignment]
        except ValueError as exc:
            raise ConfigError(stmt.source, str(exc)) from None
        assert port is not None
        level.servers.append(_UpstreamServer(address, host, port, fields, stmt.source))

    def _balancing(self, stmt: _Stmt, level: _Level) -> None:
        assert isinstance(level, _UpstreamLevel)
        if level.balancing_source is not None:
            raise ConfigError(stmt.source, f'load balancing method redefined (first at line {level.balancing_source.line})')
        try:
            level.balancing = parse_balancing(stmt.name, stmt.args)
        except ValueError as exc:
            raise ConfigError(stmt.source, str(exc)) from None
        level.balancing_source = stmt.source

    def _server(self, stmt: _Stmt, level: _Level) -> None:
        server = _ServerLevel(stmt.source)
        self.servers.append(server)
        self.walk(stmt.block or (), SERVER, server)

    # server level

    def _listen(self, stmt: _Stmt, level: _Level) -> None:
        assert isinstance(level, _ServerLevel)
        address, *params = stmt.args
        default_server = proxy_protocol = ssl = False
        for param in params:
            if param == "proxy_protocol":
                proxy_protocol = True
            elif param == "ssl":
                ssl = True
            elif param in ("default_server", "default"):
                default_server = True
            else:
                raise ConfigError(stmt.source, f'"listen" parameter "{param}" is not supported by wstunnel')
        for host, port in self._listen_addresses(address, stmt.source):
            level.listens.append(
                Listen(host, port, default_server, stmt.source, proxy_protocol=proxy_protocol, ssl=ssl)
            )

    def _listen_addresses(self, address: str, source: Source) -> list[tuple[str, int]]:
        if address.startswith("unix:"):
            raise ConfigError(source, "unix domain sockets are not supported by wstunnel")
        try:
            if address.isdigit():
                return [("0.0.0.0", _port(address, address, _LISTEN_LOWEST_PORT))]
            host, port = _split_host_port(address, 80, _LISTEN_LOWEST_PORT)
        except ValueError as exc:
            raise ConfigError(source, f'{exc} of the "listen" directive') from None
        assert port is not None
        if host == "*":
            return [("0.0.0.0", port)]
        if _is_ip(host):
            return [(host, port)]
        try:
            return [(ip, port) for ip in self.resolve(host, port)]
        except OSError:
            raise ConfigError(source, f'host not found in "{address}" of the "listen" directive') from None

    def _server_name(self, stmt: _Stmt, level: _Level) -> None:
        assert isinstance(level, _ServerLevel)
        for name in stmt.args:
            if name.startswith("~"):
                raise ConfigError(stmt.source, f'regular expression server names are not supported by wstunnel: "{name}"')
            if "$" in name:
                raise ConfigError(stmt.source, f'variables in "server_name" are not supported by wstunnel: "{name}"')
            if name.startswith(".") or "*" in name.removeprefix("*."):
                raise ConfigError(
                    stmt.source, f'server name "{name}" is not supported by wstunnel (only exact names and "*.suffix")'
                )
            level.names.append(name.lower())

    def _location(self, stmt: _Stmt, level: _Level) -> None:
        if isinstance(level, _LocationLevel):
            raise ConfigError(stmt.source, "nested locations are not supported by wstunnel")
        assert isinstance(level, _ServerLevel)
        modifier, path = _location_modifier(stmt.args)
        if modifier in ("~", "~*"):
            raise ConfigError(stmt.source, "regular expression locations are not supported by wstunnel")
        if modifier == "^~":
            raise ConfigError(stmt.source, '"^~" locations are not supported by wstunnel')
        if modifier == "@":
            raise ConfigError(stmt.source, "named locations are not supported by wstunnel")
        if modifier not in ("", "="):
            raise ConfigError(stmt.source, f'invalid location modifier "{modifier}"')
        exact = modifier == "="
        if any(loc.path == path and loc.exact == exact for loc in level.locations):
            raise ConfigError(stmt.source, f'duplicate location "{path}"')
        location = _LocationLevel(stmt.source, path=path, exact=exact)
        level.locations.append(location)
        self.walk(stmt.block or (), LOCATION, location)

    # location level and inheritable settings

    def _proxy_pass(self, stmt: _Stmt, level: _Level) -> None:
        assert isinstance(level, _LocationLevel)
        try:
            level.proxy_pass = _parse_proxy_url(stmt.args[0], stmt.source)
        except ValueError as exc:
            raise ConfigError(stmt.source, str(exc)) from None

    def _status_page(self, stmt: _Stmt, level: _Level) -> None:
        assert isinstance(level, _LocationLevel)
        if stmt.args and stmt.args[0] not in ("on", "off"):
            raise ConfigError(stmt.source, f'invalid value "{stmt.args[0]}" in "{stmt.name}" directive')
        if level.status_page is not None:
            raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
        if not stmt.args or stmt.args[0] == "on":
            level.status_page = "stub_status" if stmt.name == "stub_status" else "metrics"

    def _set_real_ip_from(self, stmt: _Stmt, level: _Level) -> None:
        value = stmt.args[0]
        if value.startswith("unix:"):
            raise ConfigError(stmt.source, '"set_real_ip_from unix:" is not supported by wstunnel')
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(stmt.source, f'invalid network "{value}" in "set_real_ip_from" directive') from None
        if level.real_ip_from is None:
            level.real_ip_from = []
        level.real_ip_from.append(network)

    def _real_ip_header(self, stmt: _Stmt, level: _Level) -> None:
        if stmt.args[0] != "proxy_protocol":
            raise ConfigError(
                stmt.source, f'"real_ip_header {stmt.args[0]}" is not supported by wstunnel (only proxy_protocol)'
            )
        level.real_ip_header = stmt.args[0]

    def _proxy_http_version(self, stmt: _Stmt, level: _Level) -> None:
        value = stmt.args[0]
        if value not in ("1.0", "1.1"):
            raise ConfigError(
                stmt.source, f'invalid value "{value}" in "proxy_http_version" directive, it must be "1.0" or "1.1"'
            )
        level.http_version = value

    def _proxy_set_header(self, stmt: _Stmt, level: _Level) -> None:
        name, value = stmt.args
        if not _TOKEN.fullmatch(name):
            raise ConfigError(stmt.source, f'invalid header name "{name}"')
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(stmt.source, f'invalid value for header "{name}": CR, LF and NUL are not allowed')
        if level.headers is None:
            level.headers = []
        level.headers.append((name, value, stmt.source))

    def _tls_setting(self, stmt: _Stmt, level: _Level) -> None:
        level.tls[stmt.name] = tlsconfig.parse_setting(stmt.name, stmt.args, stmt.source)

    def _timeout(self, stmt: _Stmt, level: _Level) -> None:
        try:
            seconds = parse_time(stmt.args[0])
        except ValueError as exc:
            raise ConfigError(stmt.source, f'"{stmt.name}" directive {exc}') from None
        level.timeouts[_TIMEOUT_FIELDS[stmt.name]] = seconds

    def _next_upstream(self, stmt: _Stmt, level: _Level) -> None:
        try:
            level.next_upstream["conditions"] = parse_next_upstream(stmt.args)
        except ValueError as exc:
            raise ConfigError(stmt.source, str(exc)) from None

    def _next_upstream_limit(self, stmt: _Stmt, level: _Level) -> None:
        value = stmt.args[0]
        try:
            if stmt.name == "proxy_next_upstream_tries":
                level.next_upstream["tries"] = parse_tries(value)
            else:
                level.next_upstream["timeout"] = parse_time(value)
        except ValueError:
            raise ConfigError(stmt.source, f'"{stmt.name}" directive invalid value') from None

    def _log_format(self, stmt: _Stmt, level: _Level) -> None:
        name, *strings = stmt.args
        escaping = "default"
        if strings and strings[0].startswith("escape="):
            escaping = strings.pop(0)[len("escape="):]
            if escaping not in ESCAPES:
                raise ConfigError(stmt.source, f'unknown log format escaping "{escaping}"')
        if not strings:
            raise ConfigError(stmt.source, 'invalid number of arguments in "log_format" directive')
        if name == "combined" or name in self.log_formats:
            raise ConfigError(stmt.source, f'duplicate "log_format" name "{name}"')
        self.log_formats[name] = (escaping, "".join(strings), stmt.source)

    def _access_log(self, stmt: _Stmt, level: _Level) -> None:
        path, *rest = stmt.args
        if path == "off":
            if rest:
                raise ConfigError(stmt.source, f'invalid parameter "{rest[0]}"')
            level.access_off = True
            return
        if path.startswith("syslog:"):
            raise ConfigError(stmt.source, '"syslog:" access logs are not supported by wstunnel')
        if "$" in path:
            raise ConfigError(stmt.source, "variables in access_log paths are not supported by wstunnel")
        log_format = rest[0] if rest else "combined"
        if log_format != "combined" and log_format not in self.log_formats:
            raise ConfigError(stmt.source, f'unknown log format "{log_format}"')
        if len(rest) > 1:
            raise ConfigError(stmt.source, f'access_log parameter "{rest[1]}" is not supported by wstunnel')
        if level.access_logs is None:
            level.access_logs = []
        level.access_logs.append(AccessLog(self._log_path(path), log_format, stmt.source))

    # client limits, response rules, upstream keep-alive

    def _client_time(self, stmt: _Stmt, level: _Level) -> None:
        level.client[_CLIENT_FIELDS[stmt.name]] = self._time_arg(stmt, stmt.args[0])

    def _keepalive_timeout(self, stmt: _Stmt, level: _Level) -> None:
        if len(stmt.args) > 1:
            raise ConfigError(stmt.source, 'the "keepalive_timeout" header timeout parameter is not supported by wstunnel')
        level.client["keepalive_timeout"] = self._time_arg(stmt, stmt.args[0])

    def _client_count(self, stmt: _Stmt, level: _Level) -> None:
        target = level.keepalive if isinstance(level, _UpstreamLevel) else level.client
        target[_COUNT_FIELDS[stmt.name]] = _count(stmt, stmt.args[0], lowest=0)

    def _header_buffers(self, stmt: _Stmt, level: _Level) -> None:
        number, size = stmt.args
        count = _count(stmt, number, lowest=1)
        length = self._size_arg(stmt, size)
        if length < 64:
            raise ConfigError(stmt.source, f'"{stmt.name}" buffer size {size} is too small')
        level.client["header_buffers"] = count
        level.client["header_buffer_size"] = length

    def _client_max_body_size(self, stmt: _Stmt, level: _Level) -> None:
        level.client["max_body_size"] = self._size_arg(stmt, stmt.args[0])

    def _proxy_buffer_size(self, stmt: _Stmt, level: _Level) -> None:
        size = self._size_arg(stmt, stmt.args[0])
        if size < 64:
            raise ConfigError(stmt.source, f'"proxy_buffer_size" {stmt.args[0]} is too small')
        level.buffer_size = size

    def _header_list(self, stmt: _Stmt, level: _Level) -> None:
        name = stmt.args[0]
        if not _TOKEN.fullmatch(name):
            raise ConfigError(stmt.source, f'invalid header name "{name}"')
        attribute = "hide" if stmt.name == "proxy_hide_header" else "passed"
        if getattr(level, attribute) is None:
            setattr(level, attribute, [])
        getattr(level, attribute).append(name.lower().encode("ascii"))

    def _proxy_redirect(self, stmt: _Stmt, level: _Level) -> None:
        args = stmt.args
        if len(args) == 1 and args[0] not in ("default", "off"):
            raise ConfigError(stmt.source, f'invalid parameter "{args[0]}"')
        if len(args) == 2 and args[0].startswith("~"):
            raise ConfigError(stmt.source, "regular expressions in proxy_redirect are not supported by wstunnel")
        if level.redirects is None:
            level.redirects = []
        level.redirects.append(args)

    def _upstream_keepalive(self, stmt: _Stmt, level: _Level) -> None:
        assert isinstance(level, _UpstreamLevel)
        if stmt.name == "keepalive_timeout":
            level.keepalive["keepalive_timeout"] = self._time_arg(stmt, stmt.args[0])
        else:
            level.keepalive["keepalive"] = _count(stmt, stmt.args[0], lowest=1)

    def _time_arg(self, stmt: _Stmt, text: str) -> float:
        try:
            return parse_time(text)
        except ValueError as exc:
            raise ConfigError(stmt.source, f'"{stmt.name}" directive {exc}') from None

    def _size_arg(self, stmt: _Stmt, text: str) -> int:
        try:
            return parse_size(text)
        except ValueError as exc:
            raise ConfigError(stmt.source, f'"{stmt.name}" directive {exc}') from None

    # building: maps

    def _template(self, text: str, source: Source) -> Template | None:
        try:
            return compile_template(text, source, self.maps)
        except ConfigError as exc:
            self.errors.append(exc)
            return None

    def _compile_maps(self) -> dict[str, MapDef]:
        maps: dict[str, MapDef] = {}
        for raw in self.maps.values():
            source_template = self._template(raw.source_text, raw.source)
            default = self._template(*raw.default) if raw.default else compile_template("", raw.source, ())
            exact = {key: self._template(text, src) for key, (text, src) in raw.entries.items()}
            if source_template is None or default is None or None in exact.values():
                continue
            maps[raw.variable] = MapDef(raw.variable, source_template, exact, default, raw.source)  # type: ignore[arg-type]
        _check_map_cycles(maps, self.errors)
        return maps

    # building: upstreams

    def _addresses(self, host: str, port: int, what: str, source: Source) -> list[str]:
        try:
            addresses = list(self.resolve(host, port))
        except OSError:
            addresses = []
        if not addresses:
            self.errors.append(ConfigError(source, f'host not found in upstream "{what}"'))
        return addresses

    def _resolve_upstreams(self) -> dict[str, Upstream]:
        resolved: dict[str, Upstream] = {}
        for key, level in self.upstreams.items():
            peers = [
                Peer(ip, s.port, s.text, **s.params)  # type: ignore[arg-type]
                for s in level.servers
                for ip in ([s.host] if s.params.get("unix") else self._addresses(s.host, s.port, s.text, s.source))
            ]
            resolved[key] = Upstream(
                level.name, tuple(peers), False, level.source, self._balancing_of(level), **level.keepalive  # type: ignore[arg-type]
            )
        return resolved

    def _balancing_of(self, level: _UpstreamLevel) -> Balancing:
        method, key_text, consistent, two = level.balancing
        if method not in BACKUP_METHODS:
            for server in level.servers:
                if server.params.get("backup"):
                    self.errors.append(
                        ConfigError(server.source, f'balancing method "{method}" does not support parameter "backup"')
                    )
        key = None
        if key_text is not None:
            assert level.balancing_source is not None
            key = self._template(key_text, level.balancing_source)
        return Balancing(method, key, consistent, two)

    def _compile_log_formats(self, maps: dict[str, MapDef]) -> dict[str, LogFormat]:
        formats = {"combined": combined_format(Source(self.path, 0))}
        for name, (escaping, text, source) in self.log_formats.items():
            try:
                formats[name] = compile_log_format(name, escaping, text, source, maps)
            except ConfigError as exc:
                self.errors.append(exc)
        return formats

    def _proxy(
        self, url: _ProxyURL, upstreams: dict[str, Upstream], implicit: dict[tuple[str, int], Upstream]
    ) -> ProxyPass | None:
        named = upstreams.get(url.host.lower())
        if named is not None:
            if url.port is not None:
                self.errors.append(ConfigError(url.source, f'upstream "{url.host}" may not have port {url.port}'))
                return None
            return ProxyPass(url.scheme, named, url.uri, named.name, url.source)
        default_port = 443 if url.scheme == "https" else 80
        port = default_port if url.port is None else url.port
        upstream = implicit.get((url.host, port))
        if upstream is None:
            peers = tuple(Peer(ip, port, url.authority) for ip in self._addresses(url.host, port, url.authority, url.source))
            upstream = implicit[(url.host, port)] = Upstream(url.authority, peers, True, url.source)
        proxy_host = f"[{url.host}]" if ":" in url.host else url.host
        if port != default_port:
            proxy_host += f":{port}"
        return ProxyPass(url.scheme, upstream, url.uri, proxy_host, url.source)

    # building: inheritance, servers, bindings

    def _effective(self, level: _Level, parent: _Effective) -> _Effective:
        """nginx's merge: scalars inherit one by one, lists all-or-nothing."""
        headers = parent.headers
        if level.headers is not None:
            compiled = [(n, self._template(v, s), s) for n, v, s in level.headers]
            headers = tuple(HeaderSetting(n, t, s) for n, t, s in compiled if t is not None)
        access_logs = parent.access_logs
        if level.access_off:
            access_logs = ()
        elif level.access_logs is not None:
            access_logs = tuple(level.access_logs)
        return _Effective(
            http_version=level.http_version or parent.http_version,
            timeouts=evolve(parent.timeouts, **level.timeouts),
            headers=headers,
            access_logs=access_logs,
            next_upstream=evolve(parent.next_upstream, **level.next_upstream),
            error_logs=parent.error_logs if level.error_logs is None else one_per_path(level.error_logs),
            client=evolve(parent.client, **level.client),  # type: ignore[arg-type]
            buffer_size=level.buffer_size or parent.buffer_size,
            hide=parent.hide if level.hide is None else tuple(level.hide),
            passed=parent.passed if level.passed is None else tuple(level.passed),
            redirects=parent.redirects if level.redirects is None else tuple(level.redirects),
        )

    def _build_server(
        self,
        level: _ServerLevel,
        http: _Effective,
        upstreams: dict[str, Upstream],
        implicit: dict[tuple[str, int], Upstream],
    ) -> Server:
        settings = self._effective(level, http)
        tls_settings = {**self.http.tls, **level.tls}
        locations = []
        for loc in level.locations:
            eff = self._effective(loc, settings)
            proxy_pass = None if loc.proxy_pass is None else self._proxy(loc.proxy_pass, upstreams, implicit)
            if proxy_pass is not None and proxy_pass.scheme == "https":
                proxy_pass = self._upstream_tls(proxy_pass, {**tls_settings, **loc.tls}, loc.proxy_pass)
            locations.append(
                Location(
                    path=loc.path,
                    exact=loc.exact,
                    proxy_pass=proxy_pass,
                    http_version=eff.http_version,
                    set_headers=eff.headers,
                    timeouts=eff.timeouts,
                    access_logs=eff.access_logs,
                    source=loc.source,
                    status_page=loc.status_page,
                    next_upstream=eff.next_upstream,
                    error_logs=eff.error_logs,
                    client=eff.client,
                    response=self._response_rules(eff, loc, proxy_pass),
                )
            )
            if loc.status_page is not None and loc.proxy_pass is not None:
                self.errors.append(ConfigError(loc.source, f'"proxy_pass" and "{_PAGE_DIRECTIVES[loc.status_page]}" '
                                               "in one location"))
        listens = level.listens or [Listen("0.0.0.0", _default_port(), False, level.source)]
        real_ip_from = level.real_ip_from if level.real_ip_from is not None else self.http.real_ip_from
        real_ip_header = level.real_ip_header or self.http.real_ip_header
        try:
            tls = tlsconfig.server_tls(tls_settings, self.materials)
        except ConfigError as exc:
            self.errors.append(exc)
            tls = None
        server = Server(
            tuple(level.names) or ("",),
            tuple(listens),
            tuple(locations),
            level.source,
            real_ip_from=tuple(real_ip_from or ()),
            real_ip_proxy_protocol=real_ip_header == "proxy_protocol",
            tls=tls,
            error_logs=settings.error_logs,
            client=settings.client,
            access_logs=settings.access_logs,
        )
        if tls is None and "ssl_certificate" in tls_settings:
            self.tls_failed.add(id(server))  # already reported; "no ssl_certificate" would mislead
        return server

    def _upstream_tls(self, proxy_pass: ProxyPass, settings: dict, url: _ProxyURL | None) -> ProxyPass:
        assert url is not None
        try:
            tls = tlsconfig.upstream_tls(settings, url.host.lower(), self.materials)
        except ConfigError as exc:
            self.errors.append(exc)
            return proxy_pass
        return evolve(proxy_pass, tls=tls)

    def _response_rules(self, eff: _Effective, loc: _LocationLevel, proxy_pass: ProxyPass | None) -> ResponseRules:
        """nginx: the hide list is the built-in one plus proxy_hide_header minus proxy_pass_header."""
        hide = (DEFAULT_HIDDEN | frozenset(eff.hide)) - frozenset(eff.passed)
        rules: list[RedirectRule] = []
        for args in () if ("off",) in eff.redirects else eff.redirects:
            if args == ("default",):
                if proxy_pass is not None:
                    rules.append(_default_redirect(loc, proxy_pass))
                continue
            pattern = self._template(args[0], loc.source)
            replacement = self._template(args[1], loc.source)
            if pattern is not None and replacement is not None:
                rules.append(RedirectRule(pattern, replacement))
        return ResponseRules(hide=hide, redirects=tuple(rules), buffer_size=eff.buffer_size)

    def _bindings(self, servers: tuple[Server, ...]) -> tuple[Binding, ...]:
        """One binding per address; its default is the ``default_server``, else the first."""
        groups: dict[tuple[str, int], list[tuple[Server, Listen]]] = {}
        for server in servers:
            for listen in server.listens:
                group = groups.setdefault((listen.host, listen.port), [])
                address = _format_address(listen.host, listen.port)
                if any(s is server for s, _ in group):
                    self.errors.append(ConfigError(listen.source, f"a duplicate listen {address}"))
                    continue
                if listen.default_server and any(l.default_server for _, l in group):
                    self.errors.append(ConfigError(listen.source, f"a duplicate default server for {address}"))
                    continue
                group.append((server, listen))
        bindings = tuple(_binding(host, port, group) for (host, port), group in groups.items())
        self.errors.extend(tlsconfig.check_bindings(bindings, self.tls_failed))
        return bindings


def _binding(host: str, port: int, group: list[tuple[Server, Listen]]) -> Binding:
    """A binding; its default is the ``default_server``, else the first."""
    servers = tuple(s for s, _ in group)
    return Binding(
        host,
        port,
        next((s for s, l in group if l.default_server), group[0][0]),
        servers,
        # nginx ORs proxy_protocol over every listen of one address.
        proxy_protocol=any(l.proxy_protocol for _, l in group),
        real_ip_from=tuple(dict.fromkeys(net for s in servers for net in s.real_ip_from)),
        real_ip_proxy_protocol=any(s.real_ip_proxy_protocol for s in servers),
        ssl=any(l.ssl for _, l in group),
    )


def _positive(stmt: _Stmt) -> int:
    value = stmt.args[0]
    if not (value.isdigit() and int(value) > 0):
        raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive')
    return int(value)


_PAGE_DIRECTIVES = {"stub_status": "stub_status", "metrics": "wstunnel_metrics"}


def _root_settings(path: str, error_logs: tuple[ErrorLog, ...]) -> _Effective:
    """
    What applies when no level sets anything.  The access log goes to
    stdout and the error log to stderr, as in the official nginx container
    image, since there is no nginx prefix directory to put logs/ in;
    ``error_logs`` are the main level's, which http inherits.
    """
    return _Effective(
        http_version=_DEFAULT_HTTP_VERSION,
        timeouts=Timeouts(),
        headers=(),
        access_logs=(AccessLog("stdout", "combined", Source(path, 0)),),
        next_upstream=NextUpstream(),
        error_logs=error_logs,
    )


def _default_redirect(loc: _LocationLevel, proxy_pass: ProxyPass) -> RedirectRule:
    """
    ``proxy_redirect default``: the proxy_pass URL is replaced by the
    location prefix, or, without a URI part, ``URL/`` by ``/``.
    """
    assert loc.proxy_pass is not None
    base = f"{proxy_pass.scheme}://{loc.proxy_pass.authority}"
    if proxy_pass.uri is None:
        pattern, replacement = base + "/", "/"
    else:
        pattern, replacement = base + proxy_pass.uri, loc.path
    return RedirectRule(_literal(pattern), _literal(replacement))


def _literal(text: str) -> Template:
    return Template(text, (text,))


def _count(stmt: _Stmt, text: str, *, lowest: int) -> int:
    if not text.isdigit() or int(text) < lowest:
        raise ConfigError(stmt.source, f'invalid value "{text}" in "{stmt.name}" directive')
    return int(text)


def _default_port() -> int:
    """nginx's rule for a server without ``listen``: 80 as root, else 8000."""
    return 80 if os.geteuid() == 0 else 8000


def _location_modifier(args: tuple[str, ...]) -> tuple[str, str]:
    """``location [modifier] path``, also with the modifier glued on (``=/x``)."""
    if len(args) == 2:
        return args[0], args[1]
    text = args[0]
    for modifier in ("^~", "~*", "=", "~", "@"):
        if text.startswith(modifier):
            return modifier, text[len(modifier) :]
    return "", text


def _map_dependencies(mapdef: MapDef, maps: dict[str, MapDef]) -> list[str]:
    templates = [mapdef.source_template, mapdef.default, *mapdef.exact.values()]
    names = (p.name for t in templates for p in t.parts if isinstance(p, VarRef))
    return list(dict.fromkeys(n for n in names if n in maps))


def _check_map_cycles(maps: dict[str, MapDef], errors: list[ConfigError]) -> None:
    """A map that needs its own value would recurse forever per request."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = " -> ".join(f"${n}" for n in path[path.index(name) :] + [name])
            raise ConfigError(maps[name].source, f"cycle in map variables: {cycle}")
        if name in done:
            return
        for dep in _map_dependencies(maps[name], maps):
            visit(dep, path + [name])
        done.add(name)

    for name in maps:
        try:
            visit(name, [])
        except ConfigError as exc:
            errors.append(exc)
            done.update(maps)
            return


def _unknown(stmt: _Stmt) -> ConfigError:
    if stmt.name in NGINX_DIRECTIVES:
        return ConfigError(stmt.source, f'"{stmt.name}" is not supported by wstunnel')
    return ConfigError(stmt.source, f'unknown directive "{stmt.name}"')


_ALL = frozenset({MAIN, HTTP, SERVER, LOCATION})


_Handler = Callable[[_Builder, _Stmt, _Level], None]


def _spec(
    contexts: Iterable[str], min_args: int, max_args: int | None, handler: _Handler, *, block: bool = False, once: bool = False
) -> _Spec:
    return _Spec(frozenset(contexts), min_args, max_args, handler, block, once)


_TABLE: dict[str, _Spec] = {
    "worker_processes": _spec({MAIN}, 1, 1, _Builder._worker_processes, once=True),
    "events": _spec({MAIN}, 0, 0, _Builder._events, block=True, once=True),
    "worker_connections": _spec({EVENTS}, 1, 1, _Builder._worker_connections, once=True),
    "worker_rlimit_nofile": _spec({MAIN}, 1, 1, _Builder._worker_rlimit_nofile, once=True),
    "worker_shutdown_timeout": _spec({MAIN}, 1, 1, _Builder._worker_shutdown_timeout, once=True),
    "set_real_ip_from": _spec({HTTP, SERVER}, 1, 1, _Builder._set_real_ip_from),
    "real_ip_header": _spec({HTTP, SERVER}, 1, 1, _Builder._real_ip_header, once=True),
    "stub_status": _spec({LOCATION}, 0, 1, _Builder._status_page),
    "wstunnel_metrics": _spec({LOCATION}, 0, 1, _Builder._status_page),
    "http": _spec({MAIN}, 0, 0, _Builder._http, block=True, once=True),
    "error_log": _spec(_ALL, 1, 2, _Builder._error_log),
    "map": _spec({HTTP}, 2, 2, _Builder._map, block=True),
    "upstream": _spec({HTTP}, 1, 1, _Builder._upstream, block=True),
    "server": _spec({HTTP}, 0, 0, _Builder._server, block=True),
    "listen": _spec({SERVER}, 1, None, _Builder._listen),
    "server_name": _spec({SERVER}, 1, None, _Builder._server_name),
    "location": _spec({SERVER, LOCATION}, 1, 2, _Builder._location, block=True),
    "proxy_pass": _spec({LOCATION}, 1, 1, _Builder._proxy_pass, once=True),
    "proxy_http_version": _spec(_HTTP_LEVELS, 1, 1, _Builder._proxy_http_version, once=True),
    "proxy_set_header": _spec(_HTTP_LEVELS, 2, 2, _Builder._proxy_set_header),
    "access_log": _spec(_HTTP_LEVELS, 1, None, _Builder._access_log),
    "log_format": _spec({HTTP}, 2, None, _Builder._log_format),
    "proxy_next_upstream": _spec(_HTTP_LEVELS, 1, None, _Builder._next_upstream, once=True),
    "proxy_next_upstream_tries": _spec(_HTTP_LEVELS, 1, 1, _Builder._next_upstream_limit, once=True),
    "proxy_next_upstream_timeout": _spec(_HTTP_LEVELS, 1, 1, _Builder._next_upstream_limit, once=True),
    **{name: _spec(_HTTP_LEVELS, 1, 1, _Builder._timeout, once=True) for name in _TIMEOUT_FIELDS},
    **{
        name: _spec(contexts, low, high, _Builder._tls_setting, once=True)
        for name, (contexts, low, high, _) in tlsconfig.DIRECTIVES.items()
    },
    "client_header_timeout": _spec({HTTP, SERVER}, 1, 1, _Builder._client_time, once=True),
    "client_body_timeout": _spec(_HTTP_LEVELS, 1, 1, _Builder._client_time, once=True),
    "keepalive_timeout": _spec(_HTTP_LEVELS, 1, 2, _Builder._keepalive_timeout, once=True),
    "keepalive_requests": _spec(_HTTP_LEVELS, 1, 1, _Builder._client_count, once=True),
    "large_client_header_buffers": _spec({HTTP, SERVER}, 2, 2, _Builder._header_buffers, once=True),
    "client_max_body_size": _spec(_HTTP_LEVELS, 1, 1, _Builder._client_max_body_size, once=True),
    "proxy_buffer_size": _spec(_HTTP_LEVELS, 1, 1, _Builder._proxy_buffer_size, once=True),
    "proxy_hide_header": _spec(_HTTP_LEVELS, 1, 1, _Builder._header_list),
    "proxy_pass_header": _spec(_HTTP_LEVELS, 1, 1, _Builder._header_list),
    "proxy_redirect": _spec(_HTTP_LEVELS, 1, 2, _Builder._proxy_redirect),
    # Accepted and ignored: none of these can change what is proxied.
    "pid": _spec({MAIN}, 1, 1, _Builder._ignored, once=True),
    "user": _spec({MAIN}, 1, 2, _Builder._ignored, once=True),
    "use": _spec({EVENTS}, 1, 1, _Builder._ignored, once=True),
    "multi_accept": _spec({EVENTS}, 1, 1, _Builder._ignored, once=True),
    "accept_mutex": _spec({EVENTS}, 1, 1, _Builder._ignored, once=True),
    "sendfile": _spec(_HTTP_LEVELS, 1, 1, _Builder._ignored, once=True),
    "tcp_nopush": _spec(_HTTP_LEVELS, 1, 1, _Builder._ignored, once=True),
    "tcp_nodelay": _spec(_HTTP_LEVELS, 1, 1, _Builder._ignored, once=True),
    "types": _spec(_HTTP_LEVELS, 0, 0, _Builder._ignored, block=True),
    "default_type": _spec(_HTTP_LEVELS, 1, 1, _Builder._ignored, once=True),
    "types_hash_max_size": _spec(_HTTP_LEVELS, 1, 1, _Builder._ignored, once=True),
    "types_hash_bucket_size": _spec(_HTTP_LEVELS, 1, 1, _Builder._ignored, once=True),
    **{
        f"{prefix}_temp_path": _spec(_HTTP_LEVELS, 1, 4, _Builder._ignored, once=True)
        for prefix in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    },
}
_UPSTREAM_TABLE: dict[str, _Spec] = {
    "server": _spec({UPSTREAM}, 1, None, _Builder._upstream_server),
    "least_conn": _spec({UPSTREAM}, 0, 0, _Builder._balancing, once=True),
    "ip_hash": _spec({UPSTREAM}, 0, 0, _Builder._balancing, once=True),
    "hash": _spec({UPSTREAM}, 1, 2, _Builder._balancing, once=True),
    "random": _spec({UPSTREAM}, 0, 2, _Builder._balancing, once=True),
    "keepalive": _spec({UPSTREAM}, 1, 1, _Builder._upstream_keepalive, once=True),
    "keepalive_timeout": _spec({UPSTREAM}, 1, 1, _Builder._upstream_keepalive, once=True),
    "keepalive_requests": _spec({UPSTREAM}, 1, 1, _Builder._client_count, once=True),
}

IGNORED_DIRECTIVES = frozenset(name for name, spec in _TABLE.items() if spec.handler is _Builder._ignored) | {
    "include mime.types"
}
