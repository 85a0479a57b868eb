"""
HTTP/1.1 framing on the upstream leg, sans-IO: the request as we write it,
the reader RFC 9112 section 6.3 picks for the answer's body, and whether
the connection may carry another request afterwards.

The request head was built by :func:`wstunnel.core.headers.upstream_request`,
whose values are validated as they are rendered, and the answer's head by
:func:`wstunnel.wire.heads.check_response_head`; nothing here checks them again.
The keep-alive rule is h11's (the wire tests hold us to it):
both messages complete, neither says ``Connection: close``, the answer is
HTTP/1.1 and framed (not read until the close).
"""

from __future__ import annotations

from typing import Union

from attrs import frozen

from wstunnel.wire.bodies import LAST_CHUNK, ChunkedBody, LengthBody, UntilClose, chunk
from wstunnel.wire.request import lower_tokens
from wstunnel.wire.response import ResponseHead

__all__ = ["BodyReader", "RequestWriter", "UpstreamRequest", "keeps_alive", "response_body"]

BodyReader = Union[LengthBody, ChunkedBody, UntilClose]


@frozen
class UpstreamRequest:
    """The request head for the upstream, as :class:`RequestWriter` writes it."""

    method: bytes
    target: bytes
    http_version: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    upgrade: bool  # whether this request asks the upstream to switch protocols
    # With ``upgrade``: the client's offer as checked when the request was made, which the 101 must answer.
    offer: tuple[bytes, ...] = ()


class RequestWriter:
    """
    One request's bytes: ``head``, then each piece of body framed as the
    request's own Content-Length or ``Transfer-Encoding: chunked`` says.
    A body longer or shorter than its Content-Length is a bug of the
    caller (the client side checks the client's framing), not the peer's.
    """

    __slots__ = ("method", "head", "keep_alive", "ended", "_chunked", "_left")

    def __init__(self, request: UpstreamRequest) -> None:
        lines = [request.method + b" " + request.target + b" HTTP/" + request.http_version]
        left = 0
        chunked = False
        keep_alive = True
        for name, value in request.headers:
            lines.append(name + b": " + value)
            lower = name.lower()
            if lower == b"content-length":
                left = int(value)
            elif lower == b"transfer-encoding":
                chunked = True
            elif lower == b"connection" and b"close" in lower_tokens((value,)):
                keep_alive = False
        lines.append(b"\r\n")
        self.method = request.method  # the answer's framing depends on it
        self.head = b"\r\n".join(lines)
        self.keep_alive = keep_alive  # the request lets the connection live on
        self.ended = False
        self._chunked = chunked
        self._left = left

    def body(self, data: bytes) -> bytes:
        """``data`` as it goes on the wire (nothing for no data)."""
        if self._chunked:
            return b"".join(chunk(data)) if data else b""
        self._left -= len(data)
        if self._left < 0:
            raise RuntimeError(f"request body {-self._left} bytes over its Content-Length")
        return data

    def end(self) -> bytes:
        """What ends the body on the wire."""
        self.ended = True
        if self._chunked:
            return LAST_CHUNK
        if self._left:
            raise RuntimeError(f"request body ended {self._left} bytes short of its Content-Length")
        return b""


def response_body(method: bytes, head: ResponseHead, line_limit: int) -> BodyReader | None:
    """
    The reader for the body of a final answer to ``method``, or None when
    it has none: HEAD, 204 and 304 (1xx heads never get here, nor a 2xx to
    CONNECT: the gate answers CONNECT 405).  The gate let through at most
    one of Transfer-Encoding (then exactly ``chunked``) and Content-Length.
    ``line_limit`` bounds a chunk-size line and the trailer section.
    """
    status = head.status
    if method == b"HEAD" or status == 204 or status == 304:
        return None
    for name, value in head.headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            return ChunkedBody(line_limit)
        if lower == b"content-length":
            return LengthBody(int(value))
    return UntilClose()


def keeps_alive(head: ResponseHead, body: BodyReader | None) -> bool:
    """
    Whether the answer leaves the connection usable, by its own head:
    HTTP/1.1, no ``close``, and a body that ends by its framing.
    """
    return (
        head.http_version == b"1.1"
        and not isinstance(body, UntilClose)
        and b"close" not in lower_tokens(head.values(b"connection"))
    )
