"""
nginx's inheritance between http, server and location: a setting not given
at a level is the enclosing level's.  Scalars inherit one by one; lists
(``proxy_set_header``, ``access_log``, ``error_log``, ``proxy_hide_header``...)
all or nothing, so one entry at a level replaces every inherited one.
"""

from __future__ import annotations

from typing import Mapping

from attrs import evolve, field, frozen

from wstunnel.config.access import inherited_access
from wstunnel.config.errorpages import inherited_errors
from wstunnel.config.files import inherited_files
from wstunnel.config.levels import Level
from wstunnel.config.ratelimits import merged
from wstunnel.config.model import (
    DEFAULT_UPGRADE_PROTOCOLS,
    Access,
    AccessLog,
    AddedHeader,
    ClientLimits,
    RateLimits,
    ErrorLog,
    Gzip,
    ErrorPages,
    HeaderSetting,
    NextUpstream,
    Resolver,
    ResponseRules,
    Source,
    Timeouts,
    one_per_path,
)
from wstunnel.config.shaping import merged_shaping
from wstunnel.config.walk import Load

__all__ = ["Effective", "effective", "root_settings"]

_DEFAULT_HTTP_VERSION = "1.1"


@frozen
class Effective:
    """The inheritable settings in force at one level."""

    http_version: str
    timeouts: Timeouts
    headers: tuple[HeaderSetting, ...]
    access_logs: tuple[AccessLog, ...]
    next_upstream: NextUpstream
    error_logs: tuple[ErrorLog, ...]
    upgrade_protocols: frozenset[bytes] = DEFAULT_UPGRADE_PROTOCOLS
    client: ClientLimits = ClientLimits()
    buffer_size: int = ResponseRules().buffer_size
    hide: tuple[bytes, ...] = ()
    passed: tuple[bytes, ...] = ()
    redirects: tuple[tuple[str, ...], ...] = (("default",),)
    add_headers: tuple[AddedHeader, ...] = ()
    resolver: Resolver | None = None
    resolver_timeout: float = 30.0
    gzip: Gzip = Gzip()
    shaping: Mapping[str, object] = field(factory=dict)  # config/shaping.py's values, by directive
    access: Access = Access()
    limits: RateLimits | None = None
    errors: ErrorPages = ErrorPages()
    files: Mapping[str, object] = field(factory=dict)  # the inheritable file settings (wstunnel.config.files)


def root_settings(path: str, error_logs: tuple[ErrorLog, ...]) -> Effective:
    """
    What applies when no level sets anything.  The access log goes to
    stdout and the error log to stderr, as in the official nginx container
    image, since there is no nginx prefix directory to put logs/ in;
    ``error_logs`` are the main level's, which http inherits.
    """
    return Effective(
        http_version=_DEFAULT_HTTP_VERSION,
        timeouts=Timeouts(),
        headers=(),
        access_logs=(AccessLog("stdout", "combined", Source(path, 0)),),
        next_upstream=NextUpstream(),
        error_logs=error_logs,
    )


def effective(load: Load, level: Level, parent: Effective) -> Effective:
    """nginx's merge: scalars inherit one by one, lists all-or-nothing."""
    headers = parent.headers
    if level.headers is not None:
        compiled = [(n, load.template(v, s), s) for n, v, s in level.headers]
        headers = tuple(HeaderSetting(n, t, s) for n, t, s in compiled if t is not None)
    access_logs = parent.access_logs
    if level.access_off:
        access_logs = ()
    elif level.access_logs is not None:
        access_logs = tuple(level.access_logs)
    return Effective(
        http_version=level.http_version or parent.http_version,
        timeouts=evolve(parent.timeouts, **level.timeouts),
        headers=headers,
        access_logs=access_logs,
        next_upstream=evolve(parent.next_upstream, **level.next_upstream),
        upgrade_protocols=parent.upgrade_protocols if level.upgrade_protocols is None else level.upgrade_protocols,
        error_logs=parent.error_logs if level.error_logs is None else one_per_path(level.error_logs),
        client=evolve(parent.client, **level.client),  # type: ignore[arg-type]
        buffer_size=level.buffer_size or parent.buffer_size,
        hide=parent.hide if level.hide is None else tuple(level.hide),
        passed=parent.passed if level.passed is None else tuple(level.passed),
        redirects=parent.redirects if level.redirects is None else tuple(level.redirects),
        add_headers=parent.add_headers if level.add_headers is None else _added(load, level.add_headers),
        resolver=level.resolver or parent.resolver,
        resolver_timeout=parent.resolver_timeout if level.resolver_timeout is None else level.resolver_timeout,
        gzip=evolve(parent.gzip, **level.gzip),  # type: ignore[arg-type]
        shaping=merged_shaping(load, level, parent.shaping),
        access=inherited_access(load, level, parent.access),
        limits=merged(load, level, parent.limits),
        errors=inherited_errors(level, parent.errors),
        files=inherited_files(parent.files, level.files),
    )


def _added(load: Load, written: list[tuple[str, str, bool, Source]]) -> tuple[AddedHeader, ...]:
    compiled = [(n, load.template(v, s), a) for n, v, a, s in written]
    return tuple(AddedHeader(n.encode("ascii"), t, a) for n, t, a in compiled if t is not None)
