"""
A request body on its way from the client to the upstream.

The client protocol holds the bytes; an :class:`Upload` reads the body out
of them with its reader (:mod:`wstunnel.wire.bodies`), enforces
``client_max_body_size`` as bytes arrive, and while the body streams keeps
the upstream's flow control on the client (a
:class:`~wstunnel.net.throttle.Throttle` under ``proxy_send_timeout``) and
``client_body_timeout``.  What follows the body is handed back for the next
head or the tunnel.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IPushProducer, IReactorTime

from wstunnel.config.model import Location
from wstunnel.core.dispatch import body_framing
from wstunnel.core.headers import BodyFraming
from wstunnel.net.requestlog import RequestRecord
from wstunnel.net.throttle import BodyTimeout, Throttle
from wstunnel.net.upstream import UpstreamProtocol
from wstunnel.wire.bodies import BodyError, ChunkedBody, LengthBody
from wstunnel.wire.errors import RequestError
from wstunnel.wire.heads import HeadGate, HeadLimits
from wstunnel.wire.request import RequestHead, lower_tokens

__all__ = ["LARGEST_PIECE", "Upload", "body_reader", "expects_continue"]

# The most fed to a body's reader at once: one read of the reactor's.
LARGEST_PIECE = 64 * 1024
_FIRST_PIECE = 4 * 1024


class Upload:
    """
    One request's body.  ``to`` is the upstream while the body streams to
    it (None before the upstream has the head, and after the body ended);
    ``complete`` says the whole body went upstream, so a retry sends none.
    """

    __slots__ = ("reader", "to", "complete", "continued", "_left", "_piece", "_throttle", "_timer")

    def __init__(self, reader: LengthBody | ChunkedBody) -> None:
        self.reader = reader
        self.to: UpstreamProtocol | None = None
        self.complete = False
        self.continued = False  # 100 Continue was sent
        self._left: int | None = None
        self._piece = _FIRST_PIECE
        self._throttle: Throttle | None = None
        self._timer: BodyTimeout | None = None

    def limit(self, size: int | None) -> None:
        """client_max_body_size for the bytes still to come; None: no limit."""
        self._left = size

    def start(
        self,
        upstream: UpstreamProtocol,
        client: IPushProducer,
        clock: IReactorTime,
        location: Location,
        on_timeout: Callable[[], None],
        on_stall: Callable[[], None],
    ) -> None:
        """Stream to ``upstream``; the client is read at the upstream's pace, under both timeouts."""
        self.to = upstream
        if self.reader.done:
            return
        self._timer = BodyTimeout(client, clock, location.client.body_timeout, on_timeout)
        self._throttle = Throttle(self._timer, clock, location.timeouts.send, on_stall)
        upstream.transport.registerProducer(self._throttle, True)

    def read(self) -> None:
        """Body bytes arrived from the client (client_body_timeout restarts)."""
        if self._timer is not None:
            self._timer.read()

    def pull(self, gate: HeadGate, record: RequestRecord) -> bool:
        """
        The bytes ``gate`` holds through the reader to the upstream,
        counted as ``$request_length``; True once the body has ended (what
        follows it stays in the gate).  Raises :class:`BodyError` or
        :class:`RequestError` for a body the request may not have.
        """
        record.fed += self._consume(gate)
        if not self.reader.done:
            return False
        self._end()
        return True

    def _consume(self, gate: HeadGate) -> int:
        """
        Feed the reader from the front of ``gate`` until the body ends or
        nothing is held; the bytes it took.  Pieces start small and double
        as the body goes on, so few bytes held past a body's end
        (pipelined requests) are copied, and a streaming body goes on in
        reads of its own size.
        """
        reader = self.reader
        used = 0
        while not reader.done and gate.pending:
            piece = gate.peek(self._piece)
            rest = reader.feed(piece, self._send)
            taken = len(piece) if rest is None else len(piece) - len(rest)
            gate.drop(taken)
            used += taken
            if taken == self._piece:
                self._piece = min(2 * taken, LARGEST_PIECE)
        return used

    def _send(self, data: bytes) -> None:
        if self._left is not None:
            self._left -= len(data)
            if self._left < 0:
                raise RequestError(413, "request body over client_max_body_size")
        self.to.send_body(data)  # type: ignore[union-attr]

    def _end(self) -> None:
        upstream = self.to
        assert upstream is not None
        self.complete = True
        self.stop()
        upstream.end_body()

    def timed_out(self) -> None:
        """client_body_timeout fired: its timer is spent."""
        self._timer = None

    def stop(self) -> None:
        """Nothing more goes upstream: flow control and the timer are dropped."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        upstream, self.to = self.to, None
        if self._throttle is not None and upstream is not None:
            self._throttle.revoke()
            self._throttle = None
            upstream.transport.unregisterProducer()

    def unread(self, held: bytes) -> bytes | None:
        """
        The request is over before its body was read (an answer of our
        own): the bytes after an empty body, or None when a byte of body
        is left unread and the connection cannot go on.
        """
        try:
            return self.reader.feed(held, _unread)
        except BodyError:
            return None


def _unread(data: bytes) -> None:
    """The sink of a body nobody asked for: a byte of it means the request was not read."""
    raise BodyError("request body left unread")


def body_reader(head: RequestHead, limits: HeadLimits) -> LengthBody | ChunkedBody:
    """The request body's reader; a chunk-size line or the trailers may be as long as a whole head and 1 KiB."""
    framing = body_framing(head)
    if framing is BodyFraming.CHUNKED:
        return ChunkedBody(limits.total + 1024)
    return LengthBody(0 if framing is BodyFraming.NONE else framing)  # type: ignore[arg-type]


def expects_continue(head: RequestHead) -> bool:
    """An HTTP/1.1 client waiting for ``100 Continue`` (HTTP/1.0 expectations are ignored, RFC 9110 10.1.1)."""
    if head.http_version != b"1.1":
        return False
    return b"100-continue" in lower_tokens(head.values(b"expect"))
