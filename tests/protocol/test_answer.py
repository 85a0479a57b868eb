"""net.answer.AnswerWriter: every byte written to the client before a tunnel, counted into the request's record."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wstunnel.net.answer import CONTINUE, AnswerWriter
from wstunnel.net.requestlog import RequestRecord
from wstunnel.wire.framing import BodyMode, http_date
from wstunnel.wire.request import RequestHead
from wstunnel.wire.response import ResponseHead

NOW = 784111777.0
DATE = http_date(NOW)


def writer(version: bytes = b"1.1", method: bytes = b"GET") -> tuple[AnswerWriter, StringTransport, RequestRecord]:
    transport = StringTransport()
    clock = Clock()
    clock.advance(NOW)
    record = RequestRecord(started=NOW, head=RequestHead(method, b"/", version, ((b"Host", b"a"),)))
    return AnswerWriter(transport, clock, record), transport, record


def test_an_own_answer_has_server_date_and_length_and_is_counted() -> None:
    answer, transport, record = writer()
    answer.own(404, [(b"Content-Type", b"text/html")], b"gone", keep_alive=True)
    assert transport.value() == (
        b"HTTP/1.1 404 Not Found\r\nServer: wstunnel\r\nDate: " + DATE + b"\r\nContent-Type: text/html\r\n"
        b"Content-Length: 4\r\nConnection: keep-alive\r\n\r\ngone"
    )
    assert record.status == 404 and record.body_bytes == 4 and record.sent == len(transport.value())
    assert answer.plan is not None and answer.plan.keep_alive


def test_a_head_request_gets_no_body() -> None:
    answer, transport, record = writer(method=b"HEAD")
    answer.own(200, [], b"page", keep_alive=False)
    assert transport.value().endswith(b"Content-Length: 4\r\nConnection: close\r\n\r\n")
    assert record.body_bytes == 0


def test_a_relayed_body_without_length_is_chunked_and_counted() -> None:
    answer, transport, record = writer()
    answer.relay(ResponseHead(200, b"OK", b"1.1", ((b"Content-Type", b"text/plain"),)), keep_alive=True)
    assert answer.plan is not None and answer.plan.mode is BodyMode.CHUNKED
    head = transport.value()
    answer.data(b"hello")
    answer.data(b"")
    answer.end()
    assert transport.value() == head + b"5\r\nhello\r\n0\r\n\r\n"
    assert record.status == 200 and record.body_bytes == 5 and record.sent == len(transport.value())


def test_informational_and_continue_heads() -> None:
    answer, transport, record = writer()
    answer.send(CONTINUE)
    answer.informational(ResponseHead(103, b"Early Hints", b"1.1", ((b"Link", b"</a.css>"),)), b"GET")
    assert transport.value() == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nServer: wstunnel\r\nDate: " + DATE + b"\r\nLink: </a.css>\r\n\r\n"
    )
    assert record.sent == len(transport.value()) and record.status == 0 and answer.plan is None


def test_a_switch_writes_the_101_and_counts_it() -> None:
    answer, transport, record = writer()
    answer.switching(ResponseHead(101, b"", b"1.1", ((b"Upgrade", b"websocket"), (b"Connection", b"upgrade"))))
    assert transport.value().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nUpgrade: websocket\r\n" in transport.value()
    assert record.status == 101 and record.sent == len(transport.value())


def test_begin_starts_the_next_request_afresh() -> None:
    answer, transport, _ = writer()
    answer.own(204, [], b"", keep_alive=True)
    following = RequestRecord(started=NOW)
    answer.begin(following)
    assert answer.plan is None and answer.record is following
