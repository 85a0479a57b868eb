"""
Where a request goes: its target taken apart, its host, its virtual server,
its location, and the request-target sent upstream.

Strings in :class:`~wstunnel.wire.request.Target` hold one character per byte
(latin-1), so percent-decoded bytes that are not UTF-8 survive unchanged and
encode back to exactly the bytes the client meant.  Every table a request
consults is built once per :class:`~wstunnel.config.model.Config` by :class:`Router`.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from attrs import frozen

from wstunnel.wire.errors import RequestError
from wstunnel.config.model import Binding, Config, Location, Server
from wstunnel.config.rewrite import if_locations
from wstunnel.core.variables import RequestVars, render
from wstunnel.wire.request import ConnInfo, RequestHead, Target

__all__ = [
    "Matches",
    "Redirect",
    "Router",
    "escape_path",
    "origin",
    "parse_target",
    "redirect_url",
    "request_host",
    "upstream_target",
]

# A request-target is visible ASCII (the gate refuses any other byte in one,
# as h11 did); holding parse_target to the same set means a target it
# accepts, from wherever it comes, is one we can always send on.
_VISIBLE = re.compile(r"[\x21-\x7e]+\Z")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_ABSOLUTE = re.compile(r"(?i:https?)://([^/?]*)(.*)\Z")

# nginx's NGX_ESCAPE_URI set: space, "#", "%", "?", controls and non-ASCII.
_ESCAPE_TABLE = {
    c: f"%{c:02X}"
    for c in range(256)
    if c <= 0x20 or c >= 0x7F or chr(c) in "#%?"
}
# What a request line cannot carry: controls, space, DEL and non-ASCII.
_UNSAFE_TABLE = {c: f"%{c:02X}" for c in range(256) if c <= 0x20 or c >= 0x7F}
_DEFAULT_PORTS = {"http": 80, "https": 443}

# A reg-name made of unreserved characters only: sub-delims and
# pct-encoded hosts are legal RFC 3986 but name no real server, and keeping
# them out keeps $host safe to echo into headers.
_REG_NAME = re.compile(r"[a-z0-9._~-]+\Z")
_IP_FUTURE = re.compile(r"v[0-9a-f]+\.[a-z0-9._~!$&'()*+,;=:-]+\Z")
_PORT = re.compile(r"[0-9]{0,5}\Z")


def parse_target(raw: bytes) -> Target:
    """
    Take a request-target apart as nginx does, refusing with 400 anything
    that a backend could read differently from us.
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise RequestError(400, "non-ASCII byte in request target") from None
    if not _VISIBLE.match(text):
        raise RequestError(400, "space or control character in request target")
    text = text.partition("#")[0]
    host = None
    if not text.startswith("/"):
        match = _ABSOLUTE.match(text)
        if match is None:
            raise RequestError(400, "request target is neither a path nor an http URL")
        authority, text = match.groups()
        host = _absolute_host(authority)
        if not text.startswith("/"):
            text = "/" + text
    path, _, args = text.partition("?")
    return Target(
        path=path, args=args, uri=_normalise(path), request_uri=text, host=host
    )


def _absolute_host(authority: str) -> str:
    if "@" in authority:
        raise RequestError(400, "user information in request target")
    return _validate_host(authority.encode("ascii"))


def _normalise(path: str) -> str:
    if "%" in path:
        if _BAD_ESCAPE.search(path):
            raise RequestError(400, "invalid percent escape in request target")
        path = _ESCAPE.sub(_decode_escape, path)
    if "//" not in path and "/." not in path:
        return path
    return _resolve_segments(path)


def _decode_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    if char == "\0":
        raise RequestError(400, "percent-encoded NUL in request target")
    return char


def _resolve_segments(path: str) -> str:
    """Merge slashes and resolve dot segments; nginx refuses to climb above root."""
    segments = path.split("/")
    out: list[str] = []
    for segment in segments[1:-1]:
        _push(out, segment)
    last = segments[-1]
    _push(out, last)
    trailing = last in ("", ".", "..")
    if not out:
        return "/"
    return "/" + "/".join(out) + ("/" if trailing else "")


def _push(out: list[str], segment: str) -> None:
    if segment in ("", "."):
        return
    if segment == "..":
        if not out:
            raise RequestError(400, "request target climbs above the root")
        out.pop()
        return
    out.append(segment)


def escape_path(path: str) -> str:
    """Re-escape a decoded path so it can go on a request line or in a Location."""
    return path.translate(_ESCAPE_TABLE)


def request_host(head: RequestHead, target: Target) -> str | None:
    """
    ``$host`` before the server_name fallback.  The Host header is validated
    even when an absolute-form target overrides it, as nginx does, so a
    request never carries a host we would refuse on its own.
    """
    hosts = head.values(b"host")
    if len(hosts) > 1:
        raise RequestError(400, "duplicate Host header")
    if not hosts:
        if head.http_version != b"1.0":
            raise RequestError(400, "HTTP/1.1 request without Host header")
        return target.host
    host = _validate_host(hosts[0])
    return target.host if target.host is not None else host


@lru_cache(maxsize=1024)
def _validate_host(raw: bytes) -> str:
    """Clients send the same few Host values over and over: remember the answers."""
    try:
        text = raw.decode("ascii").lower()
    except UnicodeDecodeError:
        raise RequestError(400, "non-ASCII Host") from None
    if text.startswith("["):
        name, port = _split_literal(text)
    else:
        name, _, port = text.partition(":")
        if ".." in name:
            raise RequestError(400, f"invalid host {text!r}")
        name = name[:-1] if name.endswith(".") else name
        if not _REG_NAME.match(name):
            raise RequestError(400, f"invalid host {text!r}")
    if not _PORT.match(port) or (port and int(port) > 65535):
        raise RequestError(400, f"invalid port in host {text!r}")
    return name


def _split_literal(text: str) -> tuple[str, str]:
    literal, bracket, rest = text[1:].partition("]")
    if not bracket or (rest and not rest.startswith(":")):
        raise RequestError(400, f"invalid IP literal in host {text!r}")
    if "%" in literal:
        raise RequestError(400, f"zone identifier in host {text!r}")
    if not _IP_FUTURE.match(literal):
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise RequestError(400, f"invalid IPv6 literal in host {text!r}") from None
    return f"[{literal}]", rest[1:]


@frozen
class Redirect:
    """
    nginx's 301 for ``/prefix`` when only ``location /prefix/`` proxies:
    ``location`` is the location the slash-terminated URI would reach.
    """

    location: Location


def redirect_url(target: Target, conn: ConnInfo, host: str) -> str:
    """
    The absolute Location of nginx's 301 to the slash-ended URI (a prefix
    location's, or a directory's), built from ``$host`` and the port the
    connection really arrived on (nginx's ``port_in_redirect``).  The path is
    re-escaped so a decoded CR or LF can never reach a header.
    """
    query = f"?{target.args}" if target.args else ""
    return f"{origin(conn, host)}{escape_path(target.uri)}/{query}"


def origin(conn: ConnInfo, host: str) -> str:
    """``scheme://host[:port]`` of this server as the client reached it; no port when default."""
    port = conn.server_port
    authority = host if port == _DEFAULT_PORTS.get(conn.scheme) else f"{host}:{port}"
    return f"{conn.scheme}://{authority}"


def upstream_target(location: Location, target: Target, rv: RequestVars | None = None) -> bytes:
    """
    The request-target for the upstream by nginx's proxy_pass rules: without
    a URI part the client's bytes go verbatim; with one, the matched prefix
    of ``$uri`` is replaced (by string length, no slash inserted) and the
    rest re-escaped.  nginx escapes only when the client did; since
    :func:`parse_target` refuses every raw byte that needs escaping, the
    two rules give the same bytes.  A URI part with variables (``rv``
    renders it) is the whole request-target, without the client's arguments.
    """
    if location.proxy_pass is None:
        raise ValueError(f"location {location.path!r} has no proxy_pass")
    if location.proxy_uri is not None:
        if rv is None:
            raise ValueError(f"location {location.path!r} needs the request's variables for its proxy_pass")
        return _rendered_target(render(location.proxy_uri, rv))
    replacement = location.proxy_pass.uri
    if replacement is None:
        return target.request_uri.encode("ascii")
    rest = escape_path(target.uri[len(location.path) :])
    query = f"?{target.args}" if target.args else ""
    return f"{replacement}{rest}{query}".encode("latin-1")


def _rendered_target(uri: str) -> bytes:
    """
    A rendered URI part as nginx sends it, except that a byte no request
    line may carry (a space, CR or LF a capture took from the decoded
    ``$uri``) is escaped instead of splitting the request.
    """
    if uri.startswith("?"):
        uri = "/" + uri
    return uri.translate(_UNSAFE_TABLE).encode("latin-1")


@frozen
class _ServerTable:
    """Virtual-server choice for one Binding, by lower-cased name."""

    binding: Binding
    exact: dict[str, Server]
    wildcard: dict[str, Server]  # ".example.com" for "*.example.com"
    no_host: Server

    @classmethod
    def build(cls, binding: Binding) -> _ServerTable:
        exact: dict[str, Server] = {}
        wildcard: dict[str, Server] = {}
        no_host = None
        for server in binding.servers:
            for name in server.names:
                name = name.lower()
                if name.startswith("*."):
                    wildcard.setdefault(name[1:], server)
                elif name:
                    exact.setdefault(name, server)
                elif no_host is None:
                    no_host = server
        return cls(binding, exact, wildcard, no_host or binding.default)

    def select(self, host: str | None) -> Server:
        if host is None:
            return self.no_host
        server = self.exact.get(host)
        if server is not None:
            return server
        if not self.wildcard:
            return self.binding.default
        dot = host.find(".")
        while dot != -1:
            server = self.wildcard.get(host[dot:])
            if server is not None:
                return server
            dot = host.find(".", dot + 1)
        return self.binding.default


Matches = tuple[re.Match[str], ...]
_NO_MATCHES: Matches = ()


@frozen
class _LocationTable:
    """
    Location matching for one level (a Server, or a location with nested
    ones) without walking its locations: the static ones are looked up by
    URI, the regexes tried in file order.  ``plain`` says there are no
    regexes and no nested locations, the one-lookup case.
    """

    exact: dict[str, Location]
    redirects: dict[str, Redirect]
    prefixes: dict[str, Location]
    lengths: tuple[int, ...]  # distinct prefix lengths, longest first
    regexes: tuple[Location, ...]  # "~" and "~*", in file order
    nested: dict[int, _LocationTable]  # by id() of the location holding them
    plain: bool

    @classmethod
    def build(cls, locations: tuple[Location, ...]) -> _LocationTable:
        exact: dict[str, Location] = {}
        prefixes: dict[str, Location] = {}
        for location in locations:
            if location.regex is None and not location.named:
                table = exact if location.exact else prefixes
                table.setdefault(location.path, location)
        redirects = {
            location.path[:-1]: Redirect(location)
            for location in reversed(locations)
            if _auto_redirects(location)
        }
        for path in (*exact, *prefixes):
            redirects.pop(path, None)
        lengths = tuple(sorted({len(p) for p in prefixes}, reverse=True))
        regexes = tuple(location for location in locations if location.regex is not None)
        nested = {id(location): cls.build(_reachable(location)) for location in locations if location.nested}
        return cls(exact, redirects, prefixes, lengths, regexes, nested, not regexes and not nested)

    def find(self, uri: str) -> Location | Redirect | None:
        """The static search alone: an exact location, the 301, or the longest prefix."""
        found = self.exact.get(uri) or self.redirects.get(uri)
        if found is not None:
            return found
        for length in self.lengths:
            location = self.prefixes.get(uri[:length])
            if location is not None:
                return location
        return None

    def search(self, uri: str, found: Location | None) -> tuple[bool, Location | Redirect | None, Matches]:
        """
        nginx's ngx_http_core_find_location: the static search, then the
        locations nested in the prefix found, then (unless that prefix is
        ``^~``) this level's regexes.  The bool says the search is over (an
        exact location, the 301, or a regex matched); else ``found`` is the
        longest prefix, or the location around this level, and no regex
        matched on the way.
        """
        hit = self.find(uri)
        if hit is not None and (hit.__class__ is Redirect or hit.exact):  # type: ignore[union-attr]
            return True, hit, _NO_MATCHES
        if hit is not None:
            found = hit  # type: ignore[assignment]
            inner = self.nested.get(id(hit))
            if inner is not None:
                over, found, matches = inner.search(uri, found)  # type: ignore[assignment]
                if over:
                    return True, found, matches
            if hit.noregex:  # type: ignore[union-attr]
                return False, found, _NO_MATCHES
        for location in self.regexes:
            match = location.regex.search(uri)  # type: ignore[union-attr]
            if match is not None:
                return True, *self._inside(location, match, uri)
        return False, found, _NO_MATCHES

    def _inside(self, location: Location, match: re.Match[str], uri: str) -> tuple[Location, Matches]:
        """A regex matched: the search goes on among the regexes nested in it, and ends there."""
        inner = self.nested.get(id(location))
        if inner is None:
            return location, (match,)
        _, found, matches = inner.search(uri, location)
        return found, (match, *matches)  # type: ignore[return-value]


def _reachable(location: Location) -> tuple[Location, ...]:
    """
    The nested locations a search can reach: in a regex location only the
    regexes, since nginx builds no prefix tree there (a prefix nested in a
    regex location is accepted and never chosen).
    """
    if location.regex is None:
        return location.nested
    return tuple(n for n in location.nested if n.regex is not None)


def _top_level(server: Server) -> tuple[Location, ...]:
    """The server's own locations: its list holds the nested ones too."""
    inner = {id(n) for location in server.locations for n in (*location.nested, *if_locations(location))}
    return tuple(location for location in server.locations if id(location) not in inner)


def _auto_redirects(location: Location) -> bool:
    """nginx marks a location for the 301 when it proxies and ends in "/"."""
    path = location.path
    return location.proxy_pass is not None and len(path) > 1 and path.endswith("/")


class Router:
    """
    The routing tables of one Config.  Tables are found by object identity:
    hashing a frozen Binding or Server walks the whole nested config, which
    is exactly the per-request cost this class exists to avoid.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._servers = {id(b): _ServerTable.build(b) for b in config.bindings}
        servers = {id(s): s for s in config.servers}
        for binding in config.bindings:
            servers.update((id(s), s) for s in (binding.default, *binding.servers))
        self._locations = {key: _LocationTable.build(_top_level(s)) for key, s in servers.items()}

    def select_server(self, binding: Binding, host: str | None) -> Server:
        """
        The virtual server for ``$host`` (None when the request had no Host).
        A binding from another Config still works, at the cost of a build.
        """
        table = self._servers.get(id(binding))
        if table is None:
            table = _ServerTable.build(binding)
        return table.select(host)

    def find_location(self, server: Server, uri: str) -> Location | Redirect | None:
        """The location for a normalised ``$uri``; None means 404."""
        return self.locate(server, uri)[0]

    def locate(self, server: Server, uri: str) -> tuple[Location | Redirect | None, Matches]:
        """
        The location for a normalised ``$uri`` (None means 404) and the
        regex matches that chose it, outermost first, for the request's
        captures.  A server without regexes or nesting makes one lookup.
        """
        table = self._locations.get(id(server))
        if table is None:
            table = _LocationTable.build(_top_level(server))
        if table.plain:
            return table.find(uri), _NO_MATCHES
        return table.search(uri, None)[1:]
