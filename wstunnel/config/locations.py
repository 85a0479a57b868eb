"""
Locations: ``location [= | ^~ | ~ | ~*] uri`` and ``location @name``
blocks, nested as nginx allows, with their regexes compiled as they are
read; the pages wstunnel answers itself (``stub_status``,
``wstunnel_metrics``); and each :class:`~wstunnel.config.model.Location`
built with every setting merged in from the levels around it and its
``proxy_pass`` resolved.
"""

from __future__ import annotations

import re
from typing import Mapping

from wstunnel.config.files import file_settings
from wstunnel.config.inherit import Effective, effective
from wstunnel.config.levels import Level, LocationLevel, ServerLevel
from wstunnel.config.model import ConfigError, Location, Template, Upstream
from wstunnel.config.proxy import proxy_target, response_rules, with_upstream_tls
from wstunnel.config.read import Stmt
from wstunnel.config.rewrite import if_locations, rewrite_program
from wstunnel.config.resolver import resolver_in_force
from wstunnel.config.request_shape import upstream_shape
from wstunnel.config.pcre import PcreError, compile_pcre
from wstunnel.config.templates import is_builtin
from wstunnel.config.tls import Setting
from wstunnel.config.walk import LOCATION, Load

__all__ = ["build_locations", "location", "status_page"]

_PAGE_DIRECTIVES = {"stub_status": "stub_status", "metrics": "wstunnel_metrics"}
_URI_IN_REGEX = (
    '"proxy_pass" cannot have URI part in location given by regular expression, or inside named location, '
    'or inside "if" statement, or inside "limit_except" block'
)


def location(load: Load, stmt: Stmt, level: Level) -> None:
    """``location [= | ^~ | ~ | ~*] uri``, ``location @name``, at server level or nested as nginx allows."""
    modifier, path = _location_modifier(stmt)
    block = LocationLevel(stmt.source, path=path, exact=modifier == "=", modifier=modifier)
    if modifier in ("~", "~*"):
        block.regex = _compile(load, stmt, path, modifier == "~*")
    if isinstance(level, LocationLevel):
        _check_nesting(stmt, block, level)
    else:
        assert isinstance(level, ServerLevel)
    if modifier not in ("~", "~*", "@") and any(_same_match(loc, block) for loc in level.locations):
        raise ConfigError(stmt.source, f'duplicate location "{path}"')
    level.locations.append(block)
    load.walk(stmt.block or (), LOCATION, block)


def _location_modifier(stmt: Stmt) -> tuple[str, str]:
    """nginx's reading: a separate modifier, else ``=`` or ``~``/``~*`` glued on, else ``@name`` or a prefix."""
    args = stmt.args
    if len(args) == 2:
        if args[0] not in ("=", "^~", "~", "~*"):
            raise ConfigError(stmt.source, f'invalid location modifier "{args[0]}"')
        return args[0], args[1]
    text = args[0]
    for modifier in ("=", "~*", "~"):
        if text.startswith(modifier):
            return modifier, text[len(modifier) :]
    return ("@" if text.startswith("@") else ""), text


def _compile(load: Load, stmt: Stmt, pattern: str, caseless: bool) -> re.Pattern[str]:
    """The location's regex, compiled now; its named groups become variables any template may use."""
    try:
        compiled = compile_pcre(pattern, caseless)
    except PcreError as exc:
        raise ConfigError(stmt.source, f'pcre2_compile() failed: {exc} in "{pattern}"') from None
    for name in compiled.groupindex:
        name = name.lower()
        if name in load.maps or is_builtin(name):
            raise ConfigError(stmt.source, f'the duplicate "{name}" variable')
        load.captures.add(name)
    return compiled


def _check_nesting(stmt: Stmt, block: LocationLevel, parent: LocationLevel) -> None:
    """nginx's rules for a location inside another, with its messages."""
    if parent.exact:
        raise ConfigError(stmt.source, f'location "{block.path}" cannot be inside the exact location "{parent.path}"')
    if parent.modifier == "@":
        raise ConfigError(stmt.source, f'location "{block.path}" cannot be inside the named location "{parent.path}"')
    if block.modifier == "@":
        raise ConfigError(stmt.source, f'named location "{block.path}" can be on the server level only')
    if block.regex is None and not block.path.startswith(parent.path):
        raise ConfigError(stmt.source, f'location "{block.path}" is outside location "{parent.path}"')


def _same_match(one: LocationLevel, other: LocationLevel) -> bool:
    """Two exact, or two prefix (plain or ``^~``), locations for one URI: nginx's duplicate."""
    return one.path == other.path and one.exact == other.exact and one.regex is None and one.modifier != "@"


def status_page(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, LocationLevel)
    if stmt.args and stmt.args[0] not in ("on", "off"):
        raise ConfigError(stmt.source, f'invalid value "{stmt.args[0]}" in "{stmt.name}" directive')
    if level.status_page is not None:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
    if not stmt.args or stmt.args[0] == "on":
        level.status_page = "stub_status" if stmt.name == "stub_status" else "metrics"


def build_locations(
    load: Load,
    levels: list[LocationLevel],
    parent: Effective,
    tls_settings: Mapping[str, Setting],
    upstreams: dict[str, Upstream],
    implicit: dict[tuple[str, int], Upstream],
) -> list[Location]:
    """
    ``levels`` and every location nested in them, in file order, each
    inheriting from the level around it (``parent``, ``tls_settings``).
    """
    built: list[Location] = []
    for level in levels:
        built.extend(_build_location(load, level, parent, tls_settings, upstreams, implicit))
    return built


def _build_location(
    load: Load,
    loc: LocationLevel,
    parent: Effective,
    tls_settings: Mapping[str, Setting],
    upstreams: dict[str, Upstream],
    implicit: dict[tuple[str, int], Upstream],
) -> list[Location]:
    """The location followed by those nested in it."""
    eff = effective(load, loc, parent)
    tls_here = {**tls_settings, **loc.tls}
    groups = [_build_location(load, child, eff, tls_here, upstreams, implicit) for child in loc.locations]
    proxy_pass = None if loc.proxy_pass is None else proxy_target(load, loc.proxy_pass, upstreams, implicit)
    if proxy_pass is not None and proxy_pass.scheme == "https":
        proxy_pass = with_upstream_tls(load, proxy_pass, tls_here, loc.proxy_pass)
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
        noregex=loc.modifier == "^~",
        regex=loc.regex,
        named=loc.modifier == "@",
        nested=tuple(group[0] for group in groups),
        proxy_uri=_proxy_uri(load, loc),
        rewrites=rewrite_program(
            load, loc, lambda inner: _build_location(load, inner, eff, tls_here, upstreams, implicit)[0]
        ),
        resolver=resolver_in_force(eff),
        gzip=eff.gzip,
        upstream_shape=upstream_shape(eff.shaping),
        access=eff.access,
        limits=eff.limits,
        errors=eff.errors,
        files=file_settings(load, eff.files, eff.timeouts.client_send, loc),
    )
    if loc.status_page is not None and loc.proxy_pass is not None:
        load.errors.append(
            ConfigError(loc.source, f'"proxy_pass" and "{_PAGE_DIRECTIVES[loc.status_page]}" in one location')
        )
    return [built, *if_locations(built), *(each for group in groups for each in group)]


def _proxy_uri(load: Load, loc: LocationLevel) -> Template | None:
    """
    proxy_pass's URI part when it has variables.  Without variables, nginx
    refuses a URI part where no prefix can be replaced: in a regex or named
    location.
    """
    url = loc.proxy_pass
    if url is None or url.uri is None:
        return None
    if "$" in url.uri or "$" in url.authority:
        return load.template(url.uri, url.source)
    if loc.regex is not None or loc.modifier == "@":
        load.errors.append(ConfigError(url.source, _URI_IN_REGEX))
    return None
