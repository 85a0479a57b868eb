"""
Per-client limits: ``limit_conn_zone`` / ``limit_conn``, ``limit_req_zone``
/ ``limit_req``, their ``_status``, ``_log_level`` and ``_dry_run``,
``limit_rate`` / ``limit_rate_after``, and wstunnel's own
``wstunnel_tunnel_rate``.  What a level writes is gathered in its
``ratelimits`` dict; zones are named by the ``limit_*`` directives before
or after they are declared, as in nginx, so the names are resolved when the
levels are merged (:func:`merged`), once every zone is known.
"""

from __future__ import annotations

import re

from attrs import evolve

from wstunnel.config.args import size_arg
from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError, LimitZone, RateLimits, Source
from wstunnel.config.read import Stmt, flag
from wstunnel.config.walk import Load

__all__ = [
    "CONN_STATE_SIZE",
    "REQ_STATE_SIZE",
    "limit_conn",
    "limit_conn_zone",
    "limit_flag",
    "limit_level",
    "limit_rate",
    "limit_req",
    "limit_req_zone",
    "limit_size",
    "limit_status",
    "merged",
]

# Bytes of zone per client state, nginx's own figures for a 64-bit build
# (ngx_http_limit_conn_module and ngx_http_limit_req_module documentation).
CONN_STATE_SIZE = 64
REQ_STATE_SIZE = 128
# nginx refuses a zone smaller than 8 pages.
_SMALLEST_ZONE = 8 * 4096
_RATE = re.compile(r"(\d+)r/([sm])")
_LEVELS = ("info", "notice", "warn", "error")
# The scalar directives and the RateLimits field each sets.
_FIELDS = {
    "limit_conn_status": "conn_status",
    "limit_conn_log_level": "conn_log_level",
    "limit_conn_dry_run": "conn_dry_run",
    "limit_req_status": "req_status",
    "limit_req_log_level": "req_log_level",
    "limit_req_dry_run": "req_dry_run",
    "limit_rate": "rate",
    "limit_rate_after": "rate_after",
    "proxy_limit_rate": "proxy_rate",
    "wstunnel_tunnel_rate": "tunnel_rate",
}
_SCALARS = frozenset(_FIELDS.values())
_KINDS = {"limit_conn_zone": "limit_conn", "limit_req_zone": "limit_req"}


def limit_conn_zone(load: Load, stmt: Stmt, level: Level) -> None:
    """``limit_conn_zone key zone=name:size``."""
    name, size = _zone_param(stmt, stmt.args[1])
    _declare(load, stmt, name, size // CONN_STATE_SIZE, 0)


def limit_req_zone(load: Load, stmt: Stmt, level: Level) -> None:
    """
    ``limit_req_zone key zone=name:size rate=Nr/s|Nr/m [sync]``.  ``sync``
    (nginx Plus) is accepted: every zone of wstunnel is shared by all its
    workers already.
    """
    zone = rate = None
    for arg in stmt.args[1:]:
        if arg.startswith("zone="):
            zone = _zone_param(stmt, arg)
        elif arg.startswith("rate="):
            rate = _rate(stmt, arg[5:])
        elif arg != "sync":
            raise ConfigError(stmt.source, f'invalid parameter "{arg}"')
    if zone is None:
        raise ConfigError(stmt.source, '"limit_req_zone" must have "zone" parameter')
    if rate is None:
        raise ConfigError(stmt.source, '"limit_req_zone" must have "rate" parameter')
    _declare(load, stmt, zone[0], zone[1] // REQ_STATE_SIZE, rate)


def limit_conn(load: Load, stmt: Stmt, level: Level) -> None:
    """``limit_conn zone number``: several per level, inherited all or nothing."""
    number = stmt.args[1]
    if not number.isdigit() or int(number) == 0:
        raise ConfigError(stmt.source, f'invalid number of connections "{number}"')
    _append(stmt, level, "conns", (stmt.args[0], int(number), 0))


def limit_req(load: Load, stmt: Stmt, level: Level) -> None:
    """``limit_req zone=name [burst=N] [nodelay | delay=N]``."""
    name, burst, delay = None, 0, 0
    for arg in stmt.args:
        param, _, value = arg.partition("=")
        if param == "zone":
            name = value
        elif param == "burst":
            burst = _requests(stmt, arg, value)
        elif param == "delay":
            delay = _requests(stmt, arg, value)
        elif arg == "nodelay":
            delay = -1
        else:
            raise ConfigError(stmt.source, f'invalid parameter "{arg}"')
    if not name:
        raise ConfigError(stmt.source, '"limit_req" must have "zone" parameter')
    _append(stmt, level, "reqs", (name, burst, delay))


def limit_status(load: Load, stmt: Stmt, level: Level) -> None:
    """``limit_conn_status`` / ``limit_req_status``: 400 to 599, as nginx allows."""
    code = stmt.args[0]
    if not code.isdigit() or not 400 <= int(code) <= 599:
        raise ConfigError(stmt.source, f'value must be between 400 and 599 in "{stmt.name}" directive')
    level.ratelimits[_FIELDS[stmt.name]] = int(code)


def limit_level(load: Load, stmt: Stmt, level: Level) -> None:
    value = stmt.args[0]
    if value not in _LEVELS:
        raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive')
    level.ratelimits[_FIELDS[stmt.name]] = value


def limit_flag(load: Load, stmt: Stmt, level: Level) -> None:
    level.ratelimits[_FIELDS[stmt.name]] = flag(stmt)


def limit_rate(load: Load, stmt: Stmt, level: Level) -> None:
    """``limit_rate``: a size, or a value with variables rendered per request (nginx 1.17.0)."""
    text = stmt.args[0]
    if "$" not in text:
        size_arg(stmt, text)
    template = load.template(text, stmt.source)
    if template is not None:
        level.ratelimits["rate"] = template


def limit_size(load: Load, stmt: Stmt, level: Level) -> None:
    """``limit_rate_after``, ``proxy_limit_rate`` and ``wstunnel_tunnel_rate``: a size."""
    level.ratelimits[_FIELDS[stmt.name]] = size_arg(stmt, stmt.args[0])


def merged(load: Load, level: Level, parent: RateLimits | None) -> RateLimits | None:
    """
    nginx's merge: each scalar inherits on its own, the ``limit_conn`` and
    ``limit_req`` lists all or nothing.  None while nothing is set, so a
    request under no limit pays nothing for it.
    """
    written = level.ratelimits
    changes = {name: value for name, value in written.items() if name in _SCALARS}
    if "conns" in written:
        changes["conns"] = _resolved(load, written["conns"], "limit_conn")
    if "reqs" in written:
        changes["reqs"] = _resolved(load, written["reqs"], "limit_req")
    if not changes:
        return parent
    return evolve(parent or RateLimits(), **changes)


def _zone_param(stmt: Stmt, arg: str) -> tuple[str, int]:
    name, colon, size_text = arg[5:].partition(":") if arg.startswith("zone=") else ("", "", "")
    if not name or not colon:
        raise ConfigError(stmt.source, f'invalid zone size "{arg}"')
    try:
        size = size_arg(stmt, size_text)
    except ConfigError:
        raise ConfigError(stmt.source, f'invalid zone size "{arg}"') from None
    if size < _SMALLEST_ZONE:
        raise ConfigError(stmt.source, f'zone "{name}" is too small')
    return name, size


def _requests(stmt: Stmt, arg: str, value: str) -> int:
    """A ``burst=`` or ``delay=`` count, in milli-requests."""
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(stmt.source, f'invalid {arg.partition("=")[0]} value "{arg}"')
    return int(value) * 1000


def _rate(stmt: Stmt, text: str) -> int:
    """Milli-requests per second, as nginx counts them (``1r/m`` is 16)."""
    match = _RATE.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(stmt.source, f'invalid rate "rate={text}"')
    return int(match.group(1)) * 1000 // (60 if match.group(2) == "m" else 1)


def _declare(load: Load, stmt: Stmt, name: str, slots: int, rate: int) -> None:
    """Zones are http-level only: the http level's ``ratelimits["zones"]`` holds them by name, with their kind."""
    zones: dict[str, tuple[str, LimitZone]] = load.http.ratelimits.setdefault("zones", {})  # type: ignore[assignment]
    if name in zones:
        kind, zone = zones[name]
        if kind != _KINDS[stmt.name]:
            raise ConfigError(stmt.source, f'the shared memory zone "{name}" is already declared for a different use')
        raise ConfigError(stmt.source, f'{stmt.name} "{name}" is already bound to key "{zone.key.text}"')
    key = load.template(stmt.args[0], stmt.source)
    if key is not None:
        zones[name] = (_KINDS[stmt.name], LimitZone(name, key, slots, stmt.source, rate))


def _append(stmt: Stmt, level: Level, field: str, entry: tuple[str, int, int]) -> None:
    entries: list = level.ratelimits.setdefault(field, [])  # type: ignore[assignment]
    if any(written[0] == entry[0] for written, _ in entries):
        raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
    entries.append((entry, stmt.source))


def _resolved(load: Load, entries: list[tuple[tuple[str, int, int], Source]], kind: str) -> tuple:
    zones: dict[str, tuple[str, LimitZone]] = load.http.ratelimits.get("zones", {})  # type: ignore[assignment]
    found = []
    for (name, first, second), source in entries:
        declared = zones.get(name)
        if declared is None or declared[0] != kind:
            load.errors.append(ConfigError(source, f'unknown {kind}_zone "{name}"'))
            continue
        zone = declared[1]
        found.append((zone, first) if kind == "limit_conn" else (zone, first, second))
    return tuple(found)
