"""
What the walk gathers at each level (main, http, server, location,
upstream) before anything is built: directive values as written, checked
for syntax, kept apart per level so that nginx's inheritance can be applied
afterwards (:mod:`wstunnel.config.inherit`).  ``None`` means "not set
here", which differs from an empty list for the all-or-nothing lists.
"""

from __future__ import annotations

import re
from typing import Union

from attrs import define, field

from wstunnel.config.addresses import ProxyURL
from wstunnel.config.model import (
    AccessLog,
    BreakStep,
    Condition,
    ErrorLog,
    ErrorPage,
    Listen,
    Resolver,
    Return,
    RewriteRule,
    SetVariable,
    Source,
)
from wstunnel.config.tls import Setting

__all__ = ["Level", "LocationLevel", "RawIf", "RawMap", "ServerLevel", "UpstreamLevel", "UpstreamServer"]


@define
class Level:
    """One block's settings; the inheritable ones exist at every level, subclasses add the rest."""

    source: Source
    seen: set[str] = field(factory=set)  # the "once" directives given here
    http_version: str | None = None
    timeouts: dict[str, float] = field(factory=dict)
    headers: list[tuple[str, str, Source]] | None = None
    access_logs: list[AccessLog] | None = None
    access_off: bool = False
    real_ip_from: list | None = None
    real_ip_header: str | None = None
    error_logs: list[ErrorLog] | None = None  # error_log directives of this level
    tls: dict[str, Setting] = field(factory=dict)  # ssl_* / proxy_ssl_*, inherited one by one
    next_upstream: dict[str, object] = field(factory=dict)  # NextUpstream fields set here
    upgrade_protocols: frozenset[bytes] | None = None  # proxy_upgrade_protocols, lower case
    client: dict[str, float | int] = field(factory=dict)
    buffer_size: int | None = None
    hide: list[bytes] | None = None
    passed: list[bytes] | None = None
    redirects: list[tuple[str, ...]] | None = None  # [("off",)], [("default",)], pairs
    rewrites: list[RawStep] | None = None  # the rewrite module's directives, in file order
    rewrite_log: bool | None = None
    add_headers: list[tuple[str, str, bool, Source]] | None = None  # add_header: name, value, always
    resolver: Resolver | None = None
    resolver_timeout: float | None = None
    gzip: dict[str, object] = field(factory=dict)  # Gzip fields set here
    # The response-shaping directives (config/shaping.py) as written, by name; absent: not set here.
    shaping: dict[str, list[tuple[tuple[str, ...], Source]]] = field(factory=dict)
    access: dict[str, object] = field(factory=dict)  # wstunnel.config.access: the directives given here
    ratelimits: dict[str, object] = field(factory=dict)  # wstunnel.config.ratelimits: as written here
    error_pages: list[ErrorPage] | None = None  # error_page, one entry per code
    error_switches: dict[str, bool] = field(factory=dict)  # recursive_error_pages, proxy_intercept_errors
    files: dict[str, object] = field(factory=dict)  # root, alias, index...: wstunnel.config.files


@define
class RawIf:
    """An ``if`` block as walked: its condition, and the level its directives were recorded on."""

    condition: Condition
    level: Level


RawStep = Union[SetVariable, RewriteRule, Return, BreakStep, RawIf]


@define
class LocationLevel(Level):
    path: str = ""  # the regex's text for "~" and "~*", "@name" for a named location
    exact: bool = False
    proxy_pass: ProxyURL | None = None
    status_page: str | None = None
    modifier: str = ""  # "", "=", "^~", "~", "~*" or "@"
    regex: re.Pattern[str] | None = None
    locations: list[LocationLevel] = field(factory=list)  # nested, in file order
    implicit: bool = False  # the location an "if" opens inside a location


@define
class ServerLevel(Level):
    names: list[str] = field(factory=list)
    listens: list[Listen] = field(factory=list)
    locations: list[LocationLevel] = field(factory=list)


@define
class UpstreamServer:
    """One ``server`` line of an upstream block, before its name is resolved."""

    text: str
    host: str  # the path for unix:
    port: int
    params: dict[str, object]  # Peer fields
    source: Source


@define
class UpstreamLevel(Level):
    name: str = ""
    servers: list[UpstreamServer] = field(factory=list)
    balancing: tuple[str, str | None, bool, bool] = ("round_robin", None, False, False)
    balancing_source: Source | None = None
    keepalive: dict[str, float | int] = field(factory=dict)


@define
class RawMap:
    """A ``map`` block as written, compiled once every map's name is known."""

    variable: str
    source_text: str
    entries: dict[str, tuple[str, Source]]
    default: tuple[str, Source] | None
    source: Source
    wildcards: dict[str, tuple[str, Source]] = field(factory=dict)  # "*.example.com", "www.example.*"
    regexes: list[tuple[re.Pattern[str], str, Source]] = field(factory=list)  # in file order
    hostnames: bool = False
    volatile: bool = False
