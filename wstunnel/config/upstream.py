"""
Upstreams: the ``upstream`` block and its directives, ``proxy_next_upstream*``,
and the resolution of every peer's name at load time.

The argument parsers (``server`` parameters, the balancing methods
``least_conn``, ``ip_hash``, ``hash``, ``random``, ``proxy_next_upstream*``)
raise ``ValueError`` with nginx's wording; the handlers add the file and line.
"""

from __future__ import annotations

from typing import Sequence

from wstunnel.config.addresses import split_host_port
from wstunnel.config.args import count, time_arg
from wstunnel.config.levels import Level, UpstreamLevel, UpstreamServer
from wstunnel.config.model import NEXT_UPSTREAM_CONDITIONS, Balancing, ConfigError, Peer, Source, Upstream
from wstunnel.config.read import Stmt
from wstunnel.config.units import parse_time
from wstunnel.config.walk import UPSTREAM, Load

__all__ = [
    "BACKUP_METHODS",
    "balancing",
    "next_upstream",
    "next_upstream_limit",
    "parse_balancing",
    "parse_next_upstream",
    "parse_server_params",
    "parse_tries",
    "resolve_addresses",
    "resolve_upstreams",
    "upstream_block",
    "upstream_keepalive",
    "upstream_server",
]

# nginx: only round robin and least_conn have the BACKUP flag.
BACKUP_METHODS = frozenset({"round_robin", "least_conn"})
# Parameters of newer or commercial nginx versions.
_UNSUPPORTED = ("resolve", "service=", "slow_start=", "route=", "drain")
_NUMBERS = {"weight": 1, "max_fails": 0, "max_conns": 0}  # the lowest valid value


def _number(text: str, lowest: int, param: str) -> int:
    if not text.isdigit() or int(text) < lowest:
        raise ValueError(f'invalid parameter "{param}"')
    return int(text)


def parse_server_params(params: Sequence[str]) -> dict[str, object]:
    """``weight=N max_fails=N fail_timeout=T max_conns=N backup down`` as Peer fields."""
    fields: dict[str, object] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if sep and name in _NUMBERS:
            fields[name] = _number(value, _NUMBERS[name], param)
        elif sep and name == "fail_timeout":
            try:
                fields[name] = parse_time(value)
            except ValueError:
                raise ValueError(f'invalid parameter "{param}"') from None
        elif not sep and name in ("backup", "down"):
            fields[name] = True
        elif param.startswith(_UNSUPPORTED):
            raise ValueError(f'upstream server parameter "{param}" is not supported by wstunnel')
        else:
            raise ValueError(f'invalid parameter "{param}"')
    return fields


def parse_balancing(directive: str, args: Sequence[str]) -> tuple[str, str | None, bool, bool]:
    """
    ``least_conn``, ``ip_hash``, ``hash KEY [consistent]``, ``random [two
    [least_conn]]`` -> (method, key text, consistent, two).
    """
    if directive == "hash":
        if len(args) > 1 and args[1] != "consistent":
            raise ValueError(f'invalid parameter "{args[1]}"')
        return "hash", args[0], len(args) > 1, False
    if directive == "random":
        expected = ("two", "least_conn")
        for arg, allowed in zip(args, expected):
            if arg != allowed:
                raise ValueError(f'invalid parameter "{arg}"')
        return "random", None, False, bool(args)
    return directive, None, False, False


def parse_next_upstream(args: Sequence[str]) -> frozenset[str]:
    """``proxy_next_upstream`` conditions; ``off`` anywhere means none, as in nginx."""
    for arg in args:
        if arg != "off" and arg not in NEXT_UPSTREAM_CONDITIONS:
            raise ValueError(f'invalid value "{arg}" in "proxy_next_upstream" directive')
    if "off" in args:
        return frozenset()
    return frozenset(args)


def parse_tries(text: str) -> int:
    """``proxy_next_upstream_tries``: a number, 0 for unlimited."""
    if not text.isdigit():
        raise ValueError(f'invalid number "{text}"')
    return int(text)


def upstream_block(load: Load, stmt: Stmt, level: Level) -> None:
    name = stmt.args[0]
    if name.lower() in load.upstreams:
        raise ConfigError(stmt.source, f'duplicate upstream "{name}"')
    upstream = UpstreamLevel(stmt.source, name=name)
    load.upstreams[name.lower()] = upstream
    load.walk(stmt.block or (), UPSTREAM, upstream)
    if not any(s.name == "server" for s in stmt.block or ()):
        raise ConfigError(stmt.source, "no servers are inside upstream")


def upstream_server(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, UpstreamLevel)
    address, *params = stmt.args
    try:
        fields = parse_server_params(params)
        if address.startswith("unix:"):
            host, port = address[5:], 0
            fields["unix"] = True
            if not host:
                raise ValueError(f'no path in "{address}"')
        else:
            host, port = split_host_port(address, 80)  # type: ignore[assignment]
    except ValueError as exc:
        raise ConfigError(stmt.source, str(exc)) from None
    assert port is not None
    level.servers.append(UpstreamServer(address, host, port, fields, stmt.source))


def balancing(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, UpstreamLevel)
    if level.balancing_source is not None:
        raise ConfigError(stmt.source, f'load balancing method redefined (first at line {level.balancing_source.line})')
    try:
        level.balancing = parse_balancing(stmt.name, stmt.args)
    except ValueError as exc:
        raise ConfigError(stmt.source, str(exc)) from None
    level.balancing_source = stmt.source


def upstream_keepalive(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, UpstreamLevel)
    if stmt.name == "keepalive_timeout":
        level.keepalive["keepalive_timeout"] = time_arg(stmt, stmt.args[0])
    else:
        level.keepalive["keepalive"] = count(stmt, stmt.args[0], lowest=1)


def next_upstream(load: Load, stmt: Stmt, level: Level) -> None:
    try:
        level.next_upstream["conditions"] = parse_next_upstream(stmt.args)
    except ValueError as exc:
        raise ConfigError(stmt.source, str(exc)) from None


def next_upstream_limit(load: Load, stmt: Stmt, level: Level) -> None:
    value = stmt.args[0]
    try:
        if stmt.name == "proxy_next_upstream_tries":
            level.next_upstream["tries"] = parse_tries(value)
        else:
            level.next_upstream["timeout"] = parse_time(value)
    except ValueError:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive invalid value') from None


def resolve_addresses(load: Load, host: str, port: int, what: str, source: Source) -> list[str]:
    try:
        addresses = list(load.resolve(host, port))
    except OSError:
        addresses = []
    if not addresses:
        load.errors.append(ConfigError(source, f'host not found in upstream "{what}"'))
    return addresses


def resolve_upstreams(load: Load) -> dict[str, Upstream]:
    resolved: dict[str, Upstream] = {}
    for key, level in load.upstreams.items():
        peers = [
            Peer(ip, s.port, s.text, **s.params)  # type: ignore[arg-type]
            for s in level.servers
            for ip in ([s.host] if s.params.get("unix") else resolve_addresses(load, s.host, s.port, s.text, s.source))
        ]
        resolved[key] = Upstream(
            level.name, tuple(peers), False, level.source, _balancing_of(load, level), **level.keepalive  # type: ignore[arg-type]
        )
    return resolved


def _balancing_of(load: Load, level: UpstreamLevel) -> Balancing:
    method, key_text, consistent, two = level.balancing
    if method not in BACKUP_METHODS:
        for server in level.servers:
            if server.params.get("backup"):
                load.errors.append(
                    ConfigError(server.source, f'balancing method "{method}" does not support parameter "backup"')
                )
    key = None
    if key_text is not None:
        assert level.balancing_source is not None
        key = load.template(key_text, level.balancing_source)
    return Balancing(method, key, consistent, two)
