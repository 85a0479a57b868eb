"""
How a response is framed towards the client, and whether the connection
stays open after it.

The client-facing response head and body framing follow nginx, which also
keeps an HTTP/1.0 connection alive for a client that asks
(``Connection: keep-alive``).  The rules are nginx's: no body for HEAD,
1xx, 204 and 304; the upstream's Content-Length when there is one; chunked
for an HTTP/1.1 client otherwise; and for an HTTP/1.0 client a body that
ends when the connection closes.
"""

from __future__ import annotations

import enum
import time
from typing import Sequence

from attrs import frozen

from wstunnel.wire.request import lower_tokens

__all__ = ["BodyMode", "ResponsePlan", "client_wants_keepalive", "head_bytes", "http_date", "plan_response"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class BodyMode(enum.Enum):
    NONE = "no body"
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "until close"


@frozen
class ResponsePlan:
    head: bytes
    mode: BodyMode
    keep_alive: bool


def client_wants_keepalive(http_version: bytes, connection: Sequence[bytes]) -> bool:
    """HTTP/1.1 unless ``close`` is named; HTTP/1.0 only with ``keep-alive``."""
    tokens = lower_tokens(connection)
    if http_version == b"1.1":
        return b"close" not in tokens
    return b"keep-alive" in tokens and b"close" not in tokens


class _DateCache:
    """
    The Date header's IMF-fixdate for ``now``, which the caller reads from
    its own clock.  The value changes once a second; it is formatted once a second.
    """

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            t = time.gmtime(second)
            self._value = b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
                _DAYS[t.tm_wday].encode(), t.tm_mday, _MONTHS[t.tm_mon - 1].encode(),
                t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
            )
            self._second = second
        return self._value


http_date = _DateCache()


def head_bytes(status: int, reason: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A response head for the client, status line to the blank line: every head wstunnel writes."""
    # Each (name, value) pair joins with ": " in C; the two empty items end the head.
    return b"\r\n".join([b"HTTP/1.1 %d %s" % (status, reason), *map(b": ".join, headers), b"", b""])


def _has_body(status: int, request_method: bytes) -> bool:
    return request_method != b"HEAD" and status >= 200 and status not in (204, 304)


def plan_response(
    status: int,
    reason: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    request_method: bytes,
    client_version: bytes,
    keep_alive: bool,
) -> ResponsePlan:
    """
    The head bytes for the client and how to frame the body.  ``headers``
    are end-to-end headers (Content-Length included when the body has a
    known length); ``keep_alive`` is what the client and the limits allow,
    and is withdrawn when only the close can end the body.
    """
    has_length = any(n.lower() == b"content-length" for n, _ in headers)
    extra: list[tuple[bytes, bytes]] = []
    if not _has_body(status, request_method):
        mode = BodyMode.NONE
    elif has_length:
        mode = BodyMode.LENGTH
    elif client_version == b"1.1":
        mode = BodyMode.CHUNKED
        extra.append((b"Transfer-Encoding", b"chunked"))
    else:
        mode = BodyMode.CLOSE
        keep_alive = False
    extra.append((b"Connection", b"keep-alive" if keep_alive else b"close"))
    return ResponsePlan(head_bytes(status, reason, (*headers, *extra)), mode, keep_alive)

