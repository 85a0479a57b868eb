"""
nginx variables per request: the values of ``$name`` / ``${name}``.

Templates are compiled and checked at load time
(:mod:`wstunnel.config.templates`), so here they are only rendered.
:class:`RequestVars` computes a value only when a template asks for it, and
caches map results for the rest of the request, as nginx does (a
``volatile`` map is evaluated at every use).  A location or map regex that
matches sets the request's captures: ``$1``..``$9`` and its named groups.
"""

from __future__ import annotations

import re
import socket
from typing import Callable, Mapping, Sequence

from wstunnel.config.model import Config, FileSettings, Location, MapDef, Server, Template
from wstunnel.config.templates import ARG_PREFIX, HEADER_PREFIX, SENT_PREFIX
from wstunnel.core.proxy_target import rendered_proxy_host
from wstunnel.core.tls_rules import TLS_VARIABLES
from wstunnel.wire.request import ConnInfo, RequestHead, Target, TLSInfo

__all__ = [
    "RequestVars",
    "evaluate_map",
    "render",
]


def render(template: Template, rv: RequestVars) -> str:
    """The value of ``template`` for one request."""
    parts = template.parts
    if len(parts) == 1:
        part = parts[0]
        return part if part.__class__ is str else rv.get(part.name)  # type: ignore[union-attr]
    return "".join([p if p.__class__ is str else rv.get(p.name) for p in parts])  # type: ignore[union-attr]


def evaluate_map(mapdef: MapDef, rv: RequestVars) -> str:
    """
    nginx's lookup: the source value, lower-cased, against the exact keys
    (``""`` matches an empty or missing source); then, for a non-empty
    source, the ``hostnames`` wildcards and the regexes in file order; else
    ``default``.  A matching regex sets the request's captures.
    """
    key = render(mapdef.source_template, rv)
    if mapdef.hostnames and key.endswith("."):
        key = key[:-1]
    value = mapdef.exact.get(key.lower())
    if value is None and key and (mapdef.regexes or mapdef.head or mapdef.tail):
        value = _search(mapdef, key, rv)
    return render(mapdef.default if value is None else value, rv)


def _search(mapdef: MapDef, key: str, rv: RequestVars) -> Template | None:
    name = key.lower()
    value = _wildcard_head(mapdef.head, name) if mapdef.head else None
    if value is None and mapdef.tail:
        value = _wildcard_tail(mapdef.tail, name)
    if value is not None:
        return value
    for pattern, value in mapdef.regexes:
        match = pattern.search(key)
        if match is not None:
            rv.captured(match)
            return value
    return None


def _wildcard_head(head: Mapping[str, Template], name: str) -> Template | None:
    """``*.example.com``: the longest suffix after a dot wins, as in nginx's wildcard hash."""
    dot = name.find(".")
    while dot >= 0:
        value = head.get(name[dot + 1 :])
        if value is not None:
            return value
        dot = name.find(".", dot + 1)
    return None


def _wildcard_tail(tail: Mapping[str, Template], name: str) -> Template | None:
    """``www.example.*``: the longest prefix before a dot wins."""
    dot = name.rfind(".")
    while dot > 0:
        value = tail.get(name[:dot])
        if value is not None:
            return value
        dot = name.rfind(".", 0, dot)
    return None


class RequestVars:
    """
    The variables of one request.  Cheap to build: nothing is computed until
    a template asks, and only map results are worth caching.
    """

    __slots__ = (
        "config",
        "server",
        "location",
        "conn",
        "head",
        "target",
        "host",
        "sent",
        "_maps",
        "_match",
        "_named",
        "_original",
        "limited",
        "redirects",
    )

    def __init__(
        self,
        *,
        config: Config,
        server: Server,
        location: Location | None,
        conn: ConnInfo,
        head: RequestHead,
        target: Target,
        host: str,
    ) -> None:
        self.config = config
        self.server = server
        self.location = location
        self.conn = conn
        self.head = head
        self.target = target
        self.host = host
        self.sent: Sequence[tuple[bytes, bytes]] = ()  # the response headers, once they are made: $sent_http_*
        self._maps: dict[str, str] | None = None
        self._match: re.Match[str] | None = None  # the last regex match with groups: $1..$9
        self._named: dict[str, str] | None = None  # named groups of matched regexes, and "set" variables
        self._original: Target | None = None  # the client's target once a rewrite changed $uri or $args
        self.limited: dict[str, str] | None = None  # $limit_conn_status, $limit_req_status once checked
        self.redirects = 0  # internal redirects of the request so far (wstunnel.core.redirect)

    def get(self, name: str) -> str:
        """The value of ``$name``; a missing header is the empty string."""
        getter = _GETTERS.get(name)
        if getter is not None:
            return getter(self)
        if name.startswith(HEADER_PREFIX):
            return self.header(name[len(HEADER_PREFIX) :])
        if name.startswith(ARG_PREFIX):
            return self.arg(name[len(ARG_PREFIX) :])
        if name.startswith(SENT_PREFIX):
            return self.sent_header(name[len(SENT_PREFIX) :])
        return self._map(name)

    def header(self, key: str) -> str:
        """
        ``$http_KEY``: every header whose lower-cased name, with ``-`` read
        as ``_``, equals ``key``; repeated headers joined as nginx joins them.
        """
        wanted = key.lower().encode("latin-1")
        if b"_" in wanted:
            found = [value for hname, value in self.head.headers if hname.lower().replace(b"-", b"_") == wanted]
        else:
            # Only a name spelt as ``key`` reads as it: the head's index has it.
            found = self.head.values(wanted)
        if not found:
            return ""
        return (b"; " if wanted == b"cookie" else b", ").join(found).decode("latin-1")

    def sent_header(self, key: str) -> str:
        """``$sent_http_KEY``: the first response header so named, as nginx 1.22 gives it."""
        return header_named(self.sent, key)

    def arg(self, key: str) -> str:
        """
        ``$arg_KEY``: the value of the first ``KEY=`` argument of the query
        string, as sent (not decoded); the name compares case-insensitively,
        as nginx's ngx_http_arg does, so ``hash $arg_room`` can key on it.
        """
        for pair in self.target.args.split("&"):
            name, equals, value = pair.partition("=")
            if equals and name.lower() == key:
                return value
        return ""

    def capture(self, number: int) -> str:
        """``$1``..``$9``: a group of the last regex match that had groups; empty when unset."""
        match = self._match
        if match is None or number > match.re.groups:
            return ""
        return match.group(number) or ""

    def captured(self, match: re.Match[str]) -> None:
        """
        A regex matched: as in nginx, its groups replace ``$1``..``$9`` only
        when it has groups, and each named group sets its variable.
        """
        if match.re.groups:
            self._match = match
        if match.re.groupindex:
            named = self._named
            if named is None:
                named = self._named = {}
            for name, group in match.groupdict().items():
                named[name.lower()] = group or ""

    def replaced_captures(self, match: re.Match[str]) -> None:
        """
        A ``rewrite`` or ``if`` regex matched: unlike a location's, its match
        replaces ``$1``..``$9`` even without groups (they are then empty), as
        nginx 1.22 does.
        """
        self._match = match
        if match.re.groupindex:
            self.captured(match)

    def forget_captures(self) -> None:
        """A rewrite or ``if`` regex did not match: ``$1``..``$9`` are empty from here, as in nginx."""
        self._match = None

    def assign(self, name: str, value: str) -> None:
        """``set $name value`` and ``auth_request_set``; a variable read before any ``set`` is empty, a map's is the map's."""
        if name in self.config.maps:
            if self._maps is None:
                self._maps = {}
            self._maps[name] = value
            return
        named = self._named
        if named is None:
            named = self._named = {}
        named[name] = value

    def retarget(self, target: Target) -> None:
        """A rewrite changed ``$uri`` / ``$args``; ``$request_uri`` keeps what the client sent."""
        if self._original is None:
            self._original = self.target
        self.target = target

    def carry_on(self, earlier: RequestVars) -> None:
        """
        These are the variables of ``earlier``'s request after an internal
        redirect: as in nginx, its count of redirects and its ``set``
        variables go on, and ``$request_uri`` stays what the client sent.
        """
        self.redirects = earlier.redirects
        if earlier._named:
            self._named = dict(earlier._named)
        client = earlier._original or earlier.target
        if self.target is not client:
            self._original = client

    @property
    def rewritten(self) -> bool:
        return self._original is not None

    def _map(self, name: str) -> str:
        cache = self._maps
        if cache is None:
            cache = self._maps = {}
        value = cache.get(name)
        if value is None:
            mapdef = self.config.maps.get(name)
            if mapdef is None:
                return self._named.get(name, "") if self._named else ""
            value = evaluate_map(mapdef, self)
            if not mapdef.volatile:
                cache[name] = value
        return value


def _packed(address: str) -> str:
    """``$binary_remote_addr``: 4 or 16 bytes, as latin-1 text; empty for a unix socket."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_pton(family, address).decode("latin-1")
        except OSError:
            continue
    return ""


def _proxy_host(rv: RequestVars) -> str:
    location = rv.location
    if location is None or location.proxy_pass is None:
        return ""
    if location.proxy_pass.authority is not None:
        return rendered_proxy_host(render(location.proxy_pass.authority, rv), location.proxy_pass.scheme)
    return location.proxy_pass.proxy_host


def header_named(headers: Sequence[tuple[bytes, bytes]], key: str) -> str:
    """
    The first of ``headers`` named ``key`` as a variable names it (lower
    case, ``_`` for ``-``): ``$sent_http_KEY``, ``$upstream_http_KEY``.
    """
    wanted = key.encode("latin-1")
    return next((v.decode("latin-1") for n, v in headers if n.lower().replace(b"-", b"_") == wanted), "")


def mapped_path(location: Location | None, files: FileSettings, rv: RequestVars, uri: str) -> str:
    """
    nginx's ngx_http_map_uri_to_path: ``root`` + URI, or ``alias`` in place
    of the location's prefix (a regex location's alias is the whole path).
    Without a root it is empty: wstunnel has no default ``html`` root.
    """
    if files.alias is not None and location is not None:
        alias = render(files.alias, rv)
        if files.regex_alias:
            return alias
        if uri.startswith(location.path):
            return alias + uri[len(location.path) :]
        return alias + uri
    if files.root is None:
        return ""
    return render(files.root, rv) + uri


def _files_here(rv: RequestVars) -> FileSettings | None:
    return rv.server.files if rv.location is None else rv.location.files


def _request_filename(rv: RequestVars) -> str:
    files = _files_here(rv)
    return "" if files is None else mapped_path(rv.location, files, rv, rv.target.uri)


def _document_root(rv: RequestVars) -> str:
    files = _files_here(rv)
    if files is None:
        return ""
    if files.alias is not None and rv.location is not None:
        return render(files.alias, rv)
    return "" if files.root is None else render(files.root, rv)


def _proxy_add_x_forwarded_for(rv: RequestVars) -> str:
    forwarded = rv.header("x_forwarded_for")
    if forwarded:
        return f"{forwarded}, {rv.conn.remote_addr}"
    return rv.conn.remote_addr


_GETTERS: dict[str, Callable[[RequestVars], str]] = {
    "host": lambda rv: rv.host,
    "remote_addr": lambda rv: rv.conn.remote_addr,
    "binary_remote_addr": lambda rv: _packed(rv.conn.remote_addr),
    "limit_conn_status": lambda rv: (rv.limited or {}).get("limit_conn_status", ""),
    "limit_req_status": lambda rv: (rv.limited or {}).get("limit_req_status", ""),
    "remote_port": lambda rv: str(rv.conn.remote_port),
    "server_addr": lambda rv: rv.conn.server_addr,
    "server_port": lambda rv: str(rv.conn.server_port),
    "server_name": lambda rv: rv.server.name,
    "scheme": lambda rv: rv.conn.scheme,
    "request_uri": lambda rv: (rv._original or rv.target).request_uri,
    "request_method": lambda rv: rv.head.method.decode("latin-1"),
    "uri": lambda rv: rv.target.uri,
    "args": lambda rv: rv.target.args,
    "query_string": lambda rv: rv.target.args,
    "is_args": lambda rv: "?" if rv.target.args else "",
    "proxy_host": _proxy_host,
    "proxy_add_x_forwarded_for": _proxy_add_x_forwarded_for,
    "proxy_protocol_addr": lambda rv: rv.conn.proxy_protocol_addr,
    "proxy_protocol_port": lambda rv: rv.conn.proxy_protocol_port,
    "upstream_cache_status": lambda rv: "",
    "request_filename": _request_filename,
    "document_root": _document_root,
}


def _capture_getter(number: int) -> Callable[[RequestVars], str]:
    return lambda rv: rv.capture(number)


_GETTERS.update((str(n), _capture_getter(n)) for n in range(1, 10))


def _tls_getter(value: Callable[[TLSInfo], str]) -> Callable[[RequestVars], str]:
    """``$ssl_*``: empty on a plain connection, as in nginx."""
    return lambda rv: "" if rv.conn.tls is None else value(rv.conn.tls)


_GETTERS.update((name, _tls_getter(value)) for name, value in TLS_VARIABLES.items())
