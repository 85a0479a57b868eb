"""
The ``proxy_*`` directives of http, server and location: where a location
proxies to and how (HTTP version, headers set, hidden and passed, timeouts,
``proxy_redirect``), and the ``proxy_pass`` URL resolved into its upstream
once every upstream block is known.
"""

from __future__ import annotations

import re

from attrs import evolve

from wstunnel.config import tls
from wstunnel.config.addresses import ProxyURL, parse_proxy_url
from wstunnel.config.args import size_arg, time_arg
from wstunnel.config.charset import charset_rule
from wstunnel.config.cookies import cookie_rules
from wstunnel.config.inherit import Effective
from wstunnel.config.levels import Level, LocationLevel
from wstunnel.config.model import (
    DEFAULT_HIDDEN,
    ConfigError,
    Peer,
    ProxyPass,
    RedirectRule,
    ResponseRules,
    Source,
    Upstream,
)
from wstunnel.config.read import Stmt
from wstunnel.config.rewrites import checked_regex, literal, rewrite_rule
from wstunnel.config.tokens import TOKEN
from wstunnel.config.upstream import resolve_addresses
from wstunnel.config.walk import Load

__all__ = [
    "check_header_line",
    "header_list",
    "proxy_buffer_size",
    "proxy_http_version",
    "proxy_pass",
    "proxy_redirect",
    "proxy_set_header",
    "proxy_target",
    "proxy_upgrade_protocols",
    "response_rules",
    "timeout",
    "with_upstream_tls",
]

_TOKEN = re.compile(TOKEN)
_PROTOCOL = re.compile(f"{TOKEN}(?:/{TOKEN})?")  # RFC 9110 section 7.8
# Variables whose value starts with "/": where one is, the URI part starts.
_PATH_VARIABLE = re.compile(r"\$(?:\{(?:request_uri|uri|document_uri)\}|(?:request_uri|uri|document_uri)\b)")
_TIMEOUT_FIELDS = {
    "proxy_connect_timeout": "connect",
    "proxy_read_timeout": "read",
    "proxy_send_timeout": "send",
    "send_timeout": "client_send",
}


def proxy_pass(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, LocationLevel)
    try:
        level.proxy_pass = _with_variables(stmt.args[0], stmt.source) or parse_proxy_url(stmt.args[0], stmt.source)
    except ValueError as exc:
        raise ConfigError(stmt.source, str(exc)) from None


def _with_variables(url: str, source: Source) -> ProxyURL | None:
    """
    A URL with variables.  When they are in the host or port, only the
    scheme is known before a request renders the rest (``host`` then holds
    the authority as written).  The URI part starts at a ``/``, a ``?`` or
    a variable that starts with ``/`` (``http://backend$request_uri``).
    """
    scheme, sep, rest = url.partition("://")
    path = _PATH_VARIABLE.search(rest)
    cuts = (rest.find("/"), rest.find("?"), path.start() if path else -1)
    cut = min([i for i in cuts if i >= 0], default=len(rest))
    authority, uri = rest[:cut], rest[cut:]
    if not sep or "$" in scheme or "$" not in rest:
        return None
    if "$" not in authority:
        return evolve(parse_proxy_url(f"{scheme}://{authority}", source), uri=uri or None)
    if scheme.lower() != "http":
        raise ValueError('variables in an "https" proxy_pass are not supported by wstunnel')
    return ProxyURL(scheme.lower(), authority, authority, None, uri or None, source)


def proxy_http_version(load: Load, stmt: Stmt, level: Level) -> None:
    value = stmt.args[0]
    if value not in ("1.0", "1.1"):
        raise ConfigError(
            stmt.source, f'invalid value "{value}" in "proxy_http_version" directive, it must be "1.0" or "1.1"'
        )
    level.http_version = value


def proxy_set_header(load: Load, stmt: Stmt, level: Level) -> None:
    name, value = stmt.args
    check_header_line(stmt, name, value)
    if level.headers is None:
        level.headers = []
    level.headers.append((name, value, stmt.source))


def check_header_line(stmt: Stmt, name: str, value: str) -> None:
    """A header line a directive writes: a token for a name, no line break or NUL in the value."""
    if not _TOKEN.fullmatch(name):
        raise ConfigError(stmt.source, f'invalid header name "{name}"')
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(stmt.source, f'invalid value for header "{name}": CR, LF and NUL are not allowed')


def proxy_upgrade_protocols(load: Load, stmt: Stmt, level: Level) -> None:
    """
    A wstunnel directive: the upgrade tokens that may open a tunnel.  h2c is
    refused here rather than silently never honoured, so a config cannot
    look as if it allowed it.
    """
    for arg in stmt.args:
        if not _PROTOCOL.fullmatch(arg):
            raise ConfigError(stmt.source, f'invalid protocol "{arg}" in "proxy_upgrade_protocols" directive')
        if arg.partition("/")[0].lower() == "h2c":
            raise ConfigError(stmt.source, '"h2c" in "proxy_upgrade_protocols" directive: h2c is never tunnelled')
    level.upgrade_protocols = frozenset(arg.lower().encode("ascii") for arg in stmt.args)


def timeout(load: Load, stmt: Stmt, level: Level) -> None:
    level.timeouts[_TIMEOUT_FIELDS[stmt.name]] = time_arg(stmt, stmt.args[0])


def proxy_buffer_size(load: Load, stmt: Stmt, level: Level) -> None:
    size = size_arg(stmt, stmt.args[0])
    if size < 64:
        raise ConfigError(stmt.source, f'"proxy_buffer_size" {stmt.args[0]} is too small')
    level.buffer_size = size


def header_list(load: Load, stmt: Stmt, level: Level) -> None:
    name = stmt.args[0]
    if not _TOKEN.fullmatch(name):
        raise ConfigError(stmt.source, f'invalid header name "{name}"')
    attribute = "hide" if stmt.name == "proxy_hide_header" else "passed"
    if getattr(level, attribute) is None:
        setattr(level, attribute, [])
    getattr(level, attribute).append(name.lower().encode("ascii"))


def proxy_redirect(load: Load, stmt: Stmt, level: Level) -> None:
    """
    As nginx: ``off`` with any other line of the same level is a duplicate,
    ``default`` is worked out here from the proxy_pass above it (so a nested
    location inherits its parent's), and a regex is compiled now.
    """
    args = stmt.args
    if level.redirects == [("off",)] or (args == ("off",) and level.redirects):
        raise ConfigError(stmt.source, '"proxy_redirect" directive is duplicate')
    if len(args) == 1 and args[0] not in ("default", "off"):
        raise ConfigError(stmt.source, f'invalid parameter "{args[0]}"')
    if args == ("default",):
        args = _explicit_default(stmt, level)
    elif len(args) == 2 and args[0].startswith("~"):
        checked_regex(load, stmt, args[0])
    if level.redirects is None:
        level.redirects = []
    level.redirects.append(args)


def _explicit_default(stmt: Stmt, level: Level) -> tuple[str, ...]:
    url = level.proxy_pass if isinstance(level, LocationLevel) else None
    if url is not None and _has_variables(url):
        raise ConfigError(
            stmt.source, '"proxy_redirect default" cannot be used with "proxy_pass" directive with variables'
        )
    if url is None:
        raise ConfigError(stmt.source, '"proxy_redirect default" should be placed after the "proxy_pass" directive')
    assert isinstance(level, LocationLevel)
    return ("default", *_default_pair(level, url))


def _has_variables(url: ProxyURL) -> bool:
    return "$" in url.authority or "$" in (url.uri or "")


def proxy_target(
    load: Load, url: ProxyURL, upstreams: dict[str, Upstream], implicit: dict[tuple[str, int], Upstream]
) -> ProxyPass | None:
    """
    A ``proxy_pass`` URL resolved: an upstream block by name, else the
    implicit upstream of ``host:port``, one per address, shared by the
    locations that name it.
    """
    if "$" in url.authority:
        return _variable_target(load, url)
    named = upstreams.get(url.host.lower())
    if named is not None:
        if url.port is not None:
            load.errors.append(ConfigError(url.source, f'upstream "{url.host}" may not have port {url.port}'))
            return None
        return ProxyPass(url.scheme, named, url.uri, named.name, url.source)
    default_port = 443 if url.scheme == "https" else 80
    port = default_port if url.port is None else url.port
    upstream = implicit.get((url.host, port))
    if upstream is None:
        addresses = resolve_addresses(load, url.host, port, url.authority, url.source)
        peers = tuple(Peer(ip, port, url.authority) for ip in addresses)
        upstream = implicit[(url.host, port)] = Upstream(url.authority, peers, True, url.source)
    proxy_host = f"[{url.host}]" if ":" in url.host else url.host
    if port != default_port:
        proxy_host += f":{port}"
    return ProxyPass(url.scheme, upstream, url.uri, proxy_host, url.source)


def _variable_target(load: Load, url: ProxyURL) -> ProxyPass | None:
    """
    ``proxy_pass`` with variables in host or port: the authority is
    rendered per request; the stand-in upstream, with no peers, is never picked from.
    """
    authority = load.template(url.authority, url.source)
    if authority is None:
        return None
    stand_in = Upstream(url.authority, (), True, url.source)
    return ProxyPass(url.scheme, stand_in, url.uri, url.authority, url.source, authority=authority)


def with_upstream_tls(load: Load, proxy_pass: ProxyPass, settings: dict, url: ProxyURL | None) -> ProxyPass:
    """An ``https://`` proxy_pass with its TLS settings; unchanged when they are wrong (reported)."""
    assert url is not None
    try:
        settled = tls.upstream_tls(settings, url.host.lower(), load.materials)
    except ConfigError as exc:
        load.errors.append(exc)
        return proxy_pass
    return evolve(proxy_pass, tls=settled)


def response_rules(load: Load, eff: Effective, loc: LocationLevel, proxy_pass: ProxyPass | None) -> ResponseRules:
    """nginx: the hide list is the built-in one plus proxy_hide_header minus proxy_pass_header."""
    hide = (DEFAULT_HIDDEN | frozenset(eff.hide)) - frozenset(eff.passed)
    rules: list[RedirectRule] = []
    for args in () if ("off",) in eff.redirects else eff.redirects:
        rule = _redirect_rule(load, args, loc)
        if rule is not None:
            rules.append(rule)
    return ResponseRules(
        hide=hide,
        redirects=tuple(rules),
        buffer_size=eff.buffer_size,
        add_headers=eff.add_headers,
        cookies=cookie_rules(eff.shaping),
        expires=eff.shaping.get("expires"),  # type: ignore[arg-type]
        charset=charset_rule(load, eff.shaping),
    )


def _redirect_rule(load: Load, args: tuple[str, ...], loc: LocationLevel) -> RedirectRule | None:
    """
    One rule; the implicit ``default`` (no proxy_redirect anywhere) comes
    from this location's proxy_pass, and there is none with variables.
    """
    if args == ("default",):
        url = loc.proxy_pass
        if url is None or _has_variables(url):
            return None
        return RedirectRule(*(literal(text) for text in _default_pair(loc, url)))
    if args[0] == "default":
        return RedirectRule(literal(args[1]), literal(args[2]))
    return rewrite_rule(load, args, loc.source)


def _default_pair(loc: LocationLevel, url: ProxyURL) -> tuple[str, str]:
    """
    ``proxy_redirect default``: the proxy_pass URL is replaced by the
    location's name, or, without a URI part, ``URL/`` by ``/``.
    """
    base = f"{url.scheme}://{url.authority}"
    if url.uri is None:
        return base + "/", "/"
    return base + url.uri, loc.path
