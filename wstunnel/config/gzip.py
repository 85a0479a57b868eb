"""
The gzip directives (``gzip``, ``gzip_types``, ``gzip_min_length``,
``gzip_comp_level``, ``gzip_vary``, ``gzip_proxied``, ``gzip_disable``,
``gzip_http_version``, ``gzip_buffers``, ``gzip_static``), each recorded on
its level as a :class:`~wstunnel.config.model.Gzip` field, so that nginx's
inheritance applies to them one by one.  The lists nginx appends to when a
directive is repeated at one level (``gzip_types``, ``gzip_proxied``,
``gzip_disable``) are appended to here too.
"""

from __future__ import annotations

import re

from wstunnel.config.args import count, size_arg
from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError
from wstunnel.config.pcre import PcreError, compile_pcre
from wstunnel.config.read import Stmt, flag
from wstunnel.config.walk import Load

__all__ = [
    "PROXIED",
    "gzip",
    "gzip_buffers",
    "gzip_comp_level",
    "gzip_disable",
    "gzip_http_version",
    "gzip_min_length",
    "gzip_proxied",
    "gzip_static",
    "gzip_types",
    "gzip_vary",
]

# gzip_proxied's words, as nginx spells them.
PROXIED = frozenset(
    {"off", "expired", "no-cache", "no-store", "private", "no_last_modified", "no_etag", "auth", "any"}
)

_BUFFERS_NOTICE = "gzip_buffers is accepted: the compressor's output is written as each chunk is compressed"


def _one_of(stmt: Stmt, allowed: tuple[str, ...]) -> str:
    value = stmt.args[0]
    if value not in allowed:
        raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive')
    return value


def gzip(load: Load, stmt: Stmt, level: Level) -> None:
    level.gzip["enabled"] = flag(stmt)


def gzip_vary(load: Load, stmt: Stmt, level: Level) -> None:
    level.gzip["vary"] = flag(stmt)


def gzip_static(load: Load, stmt: Stmt, level: Level) -> None:
    level.gzip["static"] = _one_of(stmt, ("off", "on", "always"))


def gzip_http_version(load: Load, stmt: Stmt, level: Level) -> None:
    level.gzip["http_version"] = _one_of(stmt, ("1.0", "1.1")).encode("ascii")


def gzip_comp_level(load: Load, stmt: Stmt, level: Level) -> None:
    value = count(stmt, stmt.args[0], lowest=0)
    if not 1 <= value <= 9:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive value must be between 1 and 9')
    level.gzip["comp_level"] = value


def gzip_min_length(load: Load, stmt: Stmt, level: Level) -> None:
    level.gzip["min_length"] = size_arg(stmt, stmt.args[0])


def gzip_buffers(load: Load, stmt: Stmt, level: Level) -> None:
    """Checked as nginx checks it; the streaming compressor needs no buffer pool, so a notice."""
    number, size = stmt.args
    count(stmt, number, lowest=1)
    if size_arg(stmt, size) <= 0:
        raise ConfigError(stmt.source, f'invalid value "{size}" in "{stmt.name}" directive')
    load.notices.append(f"{stmt.source}: {_BUFFERS_NOTICE}")


def gzip_types(load: Load, stmt: Stmt, level: Level) -> None:
    """``*`` matches any type, even none; text/html is always in the list, as in nginx."""
    known = level.gzip.get("types", frozenset({b"text/html"}))
    if known is None or "*" in stmt.args:
        level.gzip["types"] = None
        return
    added = frozenset(arg.lower().encode("latin-1") for arg in stmt.args)
    level.gzip["types"] = known | added  # type: ignore[operator]


def gzip_proxied(load: Load, stmt: Stmt, level: Level) -> None:
    for word in stmt.args:
        if word not in PROXIED:
            raise ConfigError(stmt.source, f'invalid value "{word}" in "{stmt.name}" directive')
    known = level.gzip.get("proxied", frozenset())
    level.gzip["proxied"] = known | frozenset(stmt.args)  # type: ignore[operator]


def gzip_disable(load: Load, stmt: Stmt, level: Level) -> None:
    """
    User-Agent regexes, matched caselessly as nginx compiles them; ``msie6``
    is nginx's own test.  A level with the directive replaces both.
    """
    patterns = list(level.gzip.get("disable", ()))  # type: ignore[call-overload]
    level.gzip.setdefault("disable_msie6", False)
    for arg in stmt.args:
        if arg == "msie6":
            level.gzip["disable_msie6"] = True
        elif arg == "degradation":
            load.notices.append(f'{stmt.source}: "gzip_disable degradation" never matches: wstunnel has no degradation')
        else:
            patterns.append(_regex(stmt, arg))
    level.gzip["disable"] = tuple(patterns)


def _regex(stmt: Stmt, pattern: str) -> re.Pattern[str]:
    try:
        return compile_pcre(pattern, caseless=True)
    except PcreError as exc:
        raise ConfigError(stmt.source, f'pcre2_compile() failed: {exc} in "{pattern}" of "{stmt.name}"') from None
