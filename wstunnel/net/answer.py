"""
The answer towards the client: every byte wstunnel writes to it before a
tunnel, counted into the request's record as it is written.

Heads come from :func:`wstunnel.wire.framing.plan_response` (relayed
answers, answers of our own) or :func:`~wstunnel.wire.framing.head_bytes`
(1xx, 101), all with :func:`~wstunnel.wire.framing.http_date` read from the
injected clock.  While an upstream's body is relayed, the client's flow
control reaches the upstream through a :class:`~wstunnel.net.throttle.Throttle`
under ``send_timeout``; an answer the client has not read when its upstream
is released stays held as the backlog, which holds the next request.
"""

from __future__ import annotations

from typing import Callable, Sequence

from twisted.internet.interfaces import IPushProducer, IReactorTime, ITransport

from wstunnel.core.add_header import added_headers
from wstunnel.core.compression import VARY
from wstunnel.core.expires import with_expires
from wstunnel.core.headers import client_response_headers
from wstunnel.net.compress import GzipBody, encode_answer
from wstunnel.net.fastwrite import direct_writer
from wstunnel.net.requestlog import RequestRecord
from wstunnel.net.throttle import Drained, Throttle
from wstunnel.wire.bodies import LAST_CHUNK, chunk
from wstunnel.wire.errors import reason_phrase
from wstunnel.wire.framing import BodyMode, ResponsePlan, head_bytes, http_date, plan_response
from wstunnel.wire.response import ResponseHead

__all__ = ["CONTINUE", "AnswerWriter"]

CONTINUE = head_bytes(100, b"Continue", ())


class AnswerWriter:
    """
    Writes one connection's answers, one request at a time: :meth:`begin`
    names the request's record, which counts ``$bytes_sent``,
    ``$body_bytes_sent`` and ``$status``.  ``plan`` is the head written
    for it (None while the client has seen nothing of the answer).
    """

    __slots__ = ("write", "record", "plan", "_transport", "_clock", "_throttle", "_backlog", "_gzip")

    def __init__(self, transport: ITransport, clock: IReactorTime, record: RequestRecord) -> None:
        self.write = direct_writer(transport)
        self.record = record
        self.plan: ResponsePlan | None = None
        self._transport = transport
        self._clock = clock
        self._throttle: Throttle | None = None
        self._backlog: Throttle | None = None
        self._gzip: GzipBody | None = None

    def begin(self, record: RequestRecord) -> None:
        self.record = record
        self.plan = None
        self._gzip = None

    @property
    def held(self) -> bool:
        """The previous answer is still unread: the next request waits for it."""
        return self._backlog is not None

    def send(self, data: bytes) -> None:
        """Every write to the client before a tunnel, counted where it is written."""
        self.record.sent += len(data)
        self.write(data)

    def informational(self, response: ResponseHead, method: bytes) -> None:
        headers = client_response_headers(response, request_method=method, date=http_date(self._clock.seconds()))
        self.send(head_bytes(response.status, response.reason, headers))

    def relay(self, response: ResponseHead, keep_alive: bool) -> None:
        """The upstream's answer head, rewritten by the location's rules."""
        record = self.record
        status = record.status = response.status
        now = self._clock.seconds()
        headers = self._relayed(response, http_date(now))
        location = record.location
        if location is not None and not location.relays_plainly:
            headers, self._gzip = encode_answer(record, status, headers, now)
        self._head(status, response.reason or reason_phrase(status).encode(), headers, keep_alive)

    def follow(self, upstream: IPushProducer, timeout: float, on_stall: Callable[[], None]) -> None:
        """The upstream's body is read at the client's pace; ``on_stall`` after ``timeout`` paused."""
        self._throttle = Throttle(upstream, self._clock, timeout, on_stall)
        self._transport.registerProducer(self._throttle, True)

    def own(self, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> None:
        """A whole answer wstunnel makes itself (errors, redirects, status pages)."""
        all_headers = [
            (b"Server", b"wstunnel"),
            (b"Date", http_date(self._clock.seconds())),
            *headers,
            (b"Content-Length", str(len(body)).encode()),
            *self._added(status),
        ]
        self.record.status = status
        all_headers, self._gzip = encode_answer(self.record, status, all_headers, self._clock.seconds())
        plan = self._head(status, reason_phrase(status).encode("ascii"), all_headers, keep_alive)
        if self._gzip is not None:
            self.data(body)
            self.end()
        elif body and plan.mode is not BodyMode.NONE:
            self.send(body)
            self.record.body_bytes += len(body)

    def file_head(self, status: int, headers: Sequence[tuple[bytes, bytes]], keep_alive: bool) -> ResponsePlan:
        """
        The head of a file's answer (Content-Length is among ``headers``),
        with the location's expires, add_header and gzip as nginx's filters
        apply them in turn, and one Vary whoever asked for it.  Queued with the
        body that follows (:meth:`queue`), so that the two leave in one
        segment rather than the body waiting for the head's ACK.
        """
        now = self._clock.seconds()
        date = http_date(now)
        all_headers = [(b"Server", b"wstunnel"), (b"Date", date), *headers]
        rv, location = self.record.vars, self.record.location
        if location is not None and location.response.expires is not None and rv is not None:
            all_headers = with_expires(all_headers, location.response.expires, status, date, rv)
        all_headers += self._added(status)
        self.record.status = status
        all_headers, self._gzip = encode_answer(self.record, status, all_headers, now)
        if all_headers.count(VARY) > 1:
            all_headers.remove(VARY)
        return self._head(status, reason_phrase(status).encode("ascii"), all_headers, keep_alive, queued=True)

    @property
    def compressing(self) -> bool:
        """The answer's body passes through gzip: no byte of it may bypass :meth:`queue`."""
        return self._gzip is not None

    def queue(self, data: bytes) -> None:
        """A file's body, through Twisted's queue: its drain is what asks a pull producer for more."""
        if self._gzip is not None:
            data = self._gzip.chunk(data)
        self.record.body_bytes += len(data)
        assert self.plan is not None
        if self.plan.mode is BodyMode.CHUNKED:
            pieces = chunk(data)
            self.record.sent += len(pieces[0]) + len(data) + 2
            self._transport.writeSequence(pieces)
        else:
            self.record.sent += len(data)
            self._transport.write(data)

    def switching(self, response: ResponseHead) -> None:
        """A valid 101, rewritten by the location's rules; after it the bytes are the tunnel's."""
        date = http_date(self._clock.seconds())
        self.send(head_bytes(101, response.reason or b"Switching Protocols", self._relayed(response, date)))
        self.record.status = 101

    def _added(self, status: int) -> list[tuple[bytes, bytes]]:
        """The add_header of the request's location, else its server's; none before a server is chosen."""
        rv = self.record.vars
        if rv is None:
            return []
        entries = rv.location.response.add_headers if rv.location is not None else rv.server.add_headers
        return added_headers(entries, status, rv)

    def _relayed(self, response: ResponseHead, date: bytes) -> list[tuple[bytes, bytes]]:
        record = self.record
        location = record.location
        assert record.head is not None
        return client_response_headers(
            response,
            request_method=record.head.method,
            date=date,
            rules=location.response if location is not None else None,
            rv=record.vars,
        )

    def _head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool, queued: bool = False
    ) -> ResponsePlan:
        head = self.record.head
        plan = plan_response(
            status,
            reason,
            headers,
            request_method=head.method if head is not None else b"GET",
            client_version=head.http_version if head is not None else b"1.1",
            keep_alive=keep_alive,
        )
        self.plan = plan
        if queued and plan.mode is not BodyMode.NONE:
            self.record.sent += len(plan.head)
            self._transport.write(plan.head)
        else:
            self.send(plan.head)
        return plan

    def data(self, data: bytes) -> None:
        plan = self.plan
        assert plan is not None
        mode = plan.mode
        if not data or mode is BodyMode.NONE:
            return
        if self._gzip is not None:
            data = self._gzip.chunk(data)
        self.record.body_bytes += len(data)
        if mode is BodyMode.CHUNKED:
            pieces = chunk(data)
            self.record.sent += len(pieces[0]) + len(data) + 2
            self._transport.writeSequence(pieces)
        else:
            self.send(data)

    def end(self) -> None:
        gzip, self._gzip = self._gzip, None
        if gzip is not None:
            self.data(gzip.finish())
        if self.plan is not None and self.plan.mode is BodyMode.CHUNKED:
            self.send(LAST_CHUNK)

    def release(self, on_drained: Callable[[], None]) -> None:
        """
        The upstream is released.  An answer still over the client's write
        buffer mark keeps its throttle (and send_timeout): as in nginx, the
        next request is read only once the client has read this one, so a
        client that pipelines and never reads cannot make us buffer an
        answer per request.  ``on_drained`` runs when it has.
        """
        throttle = self._throttle
        if throttle is not None and throttle.paused:
            self._throttle = None
            self._backlog = throttle
            throttle.retarget(Drained(on_drained))

    def stop(self) -> None:
        """The upstream's body no longer follows the client's pace."""
        if self._throttle is not None:
            self._throttle.revoke()
            self._throttle = None
            self._transport.unregisterProducer()

    def drop_backlog(self) -> None:
        if self._backlog is not None:
            self._backlog.revoke()
            self._backlog = None
            self._transport.unregisterProducer()
