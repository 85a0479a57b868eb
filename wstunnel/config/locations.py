"""
Locations: ``location [=] path`` blocks, the pages wstunnel answers itself
(``stub_status``, ``wstunnel_metrics``), and each
:class:`~wstunnel.config.model.Location` built with every setting merged in
and its ``proxy_pass`` resolved.
"""

from __future__ import annotations

from typing import Mapping

from wstunnel.config.inherit import Effective, effective
from wstunnel.config.levels import Level, LocationLevel, ServerLevel
from wstunnel.config.model import ConfigError, Location, Upstream
from wstunnel.config.proxy import proxy_target, response_rules, with_upstream_tls
from wstunnel.config.read import Stmt
from wstunnel.config.tls import Setting
from wstunnel.config.walk import LOCATION, Load

__all__ = ["build_location", "location", "status_page"]

_PAGE_DIRECTIVES = {"stub_status": "stub_status", "metrics": "wstunnel_metrics"}


def location(load: Load, stmt: Stmt, level: Level) -> None:
    if isinstance(level, LocationLevel):
        raise ConfigError(stmt.source, "nested locations are not supported by wstunnel")
    assert isinstance(level, ServerLevel)
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
    block = LocationLevel(stmt.source, path=path, exact=exact)
    level.locations.append(block)
    load.walk(stmt.block or (), LOCATION, block)


def _location_modifier(args: tuple[str, ...]) -> tuple[str, str]:
    """``location [modifier] path``, also with the modifier glued on (``=/x``)."""
    if len(args) == 2:
        return args[0], args[1]
    text = args[0]
    for modifier in ("^~", "~*", "=", "~", "@"):
        if text.startswith(modifier):
            return modifier, text[len(modifier) :]
    return "", text


def status_page(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, LocationLevel)
    if stmt.args and stmt.args[0] not in ("on", "off"):
        raise ConfigError(stmt.source, f'invalid value "{stmt.args[0]}" in "{stmt.name}" directive')
    if level.status_page is not None:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
    if not stmt.args or stmt.args[0] == "on":
        level.status_page = "stub_status" if stmt.name == "stub_status" else "metrics"


def build_location(
    load: Load,
    loc: LocationLevel,
    server: Effective,
    tls_settings: Mapping[str, Setting],
    upstreams: dict[str, Upstream],
    implicit: dict[tuple[str, int], Upstream],
) -> Location:
    """A location inside its server's settings (``server``, ``tls_settings``: the server's and http's)."""
    eff = effective(load, loc, server)
    proxy_pass = None if loc.proxy_pass is None else proxy_target(load, loc.proxy_pass, upstreams, implicit)
    if proxy_pass is not None and proxy_pass.scheme == "https":
        proxy_pass = with_upstream_tls(load, proxy_pass, {**tls_settings, **loc.tls}, loc.proxy_pass)
    built = Location(
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
        upgrade_protocols=eff.upgrade_protocols,
        error_logs=eff.error_logs,
        client=eff.client,
        response=response_rules(load, eff, loc, proxy_pass),
    )
    if loc.status_page is not None and loc.proxy_pass is not None:
        load.errors.append(
            ConfigError(loc.source, f'"proxy_pass" and "{_PAGE_DIRECTIVES[loc.status_page]}" in one location')
        )
    return built
