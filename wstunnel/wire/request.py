"""
The per-request values the core passes around: what the client sent and
where the connection is.  Built by the protocols, read by routing, variables
and header rewriting, so none of those needs to know about h11 or sockets.
"""

from __future__ import annotations

from typing import Iterable

from attrs import define, field, frozen

__all__ = ["ConnInfo", "RequestHead", "TLSInfo", "Target", "header_tokens", "lower_tokens"]


@frozen
class TLSInfo:
    """What the handshake of one client connection settled, for variables and checks."""

    protocol: str  # "TLSv1.3"
    cipher: str  # OpenSSL name
    server_name: str  # SNI as sent, lower-cased; "" without SNI
    client_s_dn: str  # RFC 4514 subject of the client certificate, "" without one
    client_verify: str  # "SUCCESS", "FAILED:reason" or "NONE"


@frozen
class ConnInfo:
    """The two ends of the client connection."""

    remote_addr: str
    remote_port: int
    server_addr: str
    server_port: int
    scheme: str = "http"
    # From a PROXY protocol header; empty without one.
    proxy_protocol_addr: str = ""
    proxy_protocol_port: str = ""
    tls: TLSInfo | None = None  # set at the first request of a TLS connection


@define
class RequestHead:
    """
    A parsed request head.  Header names keep the client's spelling and
    order (nginx forwards them as sent); look-ups compare them lower-cased.

    Not frozen, on purpose: besides the four parsed fields, which nothing
    changes after the parse, it carries a look-up index of the headers by
    lower-cased name, built at the first :meth:`values` (a request asks for
    some header about seven times on its way, doc/performance.md) and given
    up by :meth:`drop_index`, after which look-ups scan.
    """

    method: bytes
    target: bytes
    http_version: bytes  # b"1.1" or b"1.0"
    headers: tuple[tuple[bytes, bytes], ...]
    _index: dict[bytes, list[bytes]] | None = field(init=False, default=None, eq=False, repr=False)
    # None, not False: compiled (doc/compiled.md), a class-body value is checked
    # against its type, and attrs types only field(default=None) as Any.
    _scan: bool | None = field(init=False, default=None, eq=False, repr=False)

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower-case), in order."""
        index = self._index
        if index is None:
            if self._scan:
                return [v for n, v in self.headers if n.lower() == name]
            index = self._index = _index(self.headers)
        found = index.get(name)
        return [] if found is None else found.copy()

    def drop_index(self) -> None:
        """
        Forget the look-up index, a cache of ~700 bytes, for good: a tunnel
        keeps its head for hours only to write one log line, where a scan
        will do.
        """
        self._index = None
        self._scan = True


def _index(headers: tuple[tuple[bytes, bytes], ...]) -> dict[bytes, list[bytes]]:
    index: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        key = name.lower()
        found = index.get(key)
        if found is None:
            index[key] = [value]
        else:
            found.append(value)
    return index


@frozen
class Target:
    """
    A request-target taken apart as nginx does.

    ``uri`` is ``$uri``: percent-decoded, dot segments resolved, slashes
    merged.  ``request_uri`` is ``$request_uri``: the original bytes of the
    path and query.  ``host`` is the authority of an absolute-form target,
    which takes precedence over the Host header (RFC 9112 section 3.2.2).
    """

    path: str  # raw path as sent, before "?"
    args: str  # query string without "?", "" when absent
    uri: str
    request_uri: str
    host: str | None = None


def header_tokens(values: Iterable[bytes]) -> list[bytes]:
    """The comma-separated tokens of header values (Connection, Upgrade, Expect), blanks trimmed, empties dropped."""
    # Plain loops: a nested generator costs a frame per value, and this
    # runs about ten times per WebSocket handshake.
    out = []
    for value in values:
        for part in value.split(b","):
            token = part.strip(b" \t")
            if token:
                out.append(token)
    return out


def lower_tokens(values: Iterable[bytes]) -> set[bytes]:
    """The tokens of :func:`header_tokens`, lower-cased, for membership tests."""
    # Its own loop rather than a set over header_tokens: a plain GET asks about six times.
    out = set()
    for value in values:
        for part in value.lower().split(b","):
            token = part.strip(b" \t")
            if token:
                out.add(token)
    return out
