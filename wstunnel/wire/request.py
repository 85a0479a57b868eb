"""
The per-request values the core passes around: what the client sent and
where the connection is.  Built by the protocols, read by routing, variables
and header rewriting, so none of those needs to know about h11 or sockets.
"""

from __future__ import annotations

from typing import Iterable

from attrs import field, frozen

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


@frozen
class RequestHead:
    """
    A parsed request head.  Header names keep the client's spelling and
    order (nginx forwards them as sent); look-ups compare them lower-cased,
    through an index built once: a request asks for some header about
    seven times on its way (doc/performance.md).
    """

    method: bytes
    target: bytes
    http_version: bytes  # b"1.1" or b"1.0"
    headers: tuple[tuple[bytes, bytes], ...]
    _index: dict[bytes, list[bytes]] | None = field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        index: dict[bytes, list[bytes]] = {}
        for name, value in self.headers:
            key = name.lower()
            found = index.get(key)
            if found is None:
                index[key] = [value]
            else:
                found.append(value)
        object.__setattr__(self, "_index", index)

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower-case), in order."""
        index = self._index
        if index is None:
            return [v for n, v in self.headers if n.lower() == name]
        found = index.get(name)
        return [] if found is None else found.copy()

    def drop_index(self) -> None:
        """
        Forget the look-up index, a cache of ~700 bytes: a tunnel keeps its
        head for hours only to write one log line, where a scan will do.
        """
        object.__setattr__(self, "_index", None)


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
    return {t.lower() for t in header_tokens(values)}
