"""net.upload.Upload: a request body read out of the held bytes and sent on, within client_max_body_size."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wstunnel.config.model import ClientLimits
from wstunnel.net.requestlog import RequestRecord
from wstunnel.net.upload import Upload, body_reader, expects_continue
from wstunnel.wire.bodies import ChunkedBody, LengthBody
from wstunnel.wire.errors import RequestError
from wstunnel.wire.heads import HeadGate, HeadLimits
from wstunnel.wire.request import RequestHead

LIMITS = HeadLimits.for_buffers(4, 8192)
# What an upload reads of its location: the two timeouts.
LOCATION = SimpleNamespace(client=ClientLimits(), timeouts=SimpleNamespace(send=60.0))


class _Upstream:
    def __init__(self) -> None:
        self.transport = StringTransport()
        self.body: list[bytes] = []
        self.ended = False

    def send_body(self, data: bytes) -> None:
        self.body.append(data)

    def end_body(self) -> None:
        self.ended = True


def started(reader: LengthBody | ChunkedBody) -> tuple[Upload, _Upstream]:
    upload, upstream = Upload(reader), _Upstream()
    upload.start(upstream, StringTransport(), Clock(), LOCATION, lambda: None, lambda: None)  # type: ignore[arg-type]
    return upload, upstream


def gate(data: bytes) -> HeadGate:
    held = HeadGate(LIMITS, request=True)
    held.push(data)
    return held


def test_a_body_goes_upstream_and_what_follows_stays_held() -> None:
    upload, upstream = started(LengthBody(5))
    held, record = gate(b"helloGET / HTTP/1.1\r\n"), RequestRecord(started=0.0)
    assert upload.pull(held, record)
    assert upstream.body == [b"hello"] and upstream.ended and upload.complete and upload.to is None
    assert record.fed == 5 and held.take_rest() == b"GET / HTTP/1.1\r\n"
    assert upstream.transport.producer is None


def test_a_partial_body_is_counted_and_waits() -> None:
    upload, upstream = started(LengthBody(5))
    record = RequestRecord(started=0.0)
    assert not upload.pull(gate(b"hel"), record)
    assert record.fed == 3 and not upstream.ended and upload.to is upstream


def test_the_size_limit_holds_as_bytes_arrive() -> None:
    upload, _ = started(ChunkedBody(LIMITS.total + 1024))
    upload.limit(3)
    with pytest.raises(RequestError) as refused:
        upload.pull(gate(b"4\r\nabcd\r\n"), RequestRecord(started=0.0))
    assert refused.value.status == 413


def test_an_unread_body_ends_the_connection_but_an_empty_one_does_not() -> None:
    assert Upload(LengthBody(0)).unread(b"next") == b"next"
    assert Upload(LengthBody(2)).unread(b"ab") is None
    assert Upload(ChunkedBody(1024)).unread(b"0\r\n\r\nnext") == b"next"
    assert Upload(ChunkedBody(1024)).unread(b"1\r\na\r\n") is None


def test_readers_and_expectations_follow_the_head() -> None:
    chunked = RequestHead(b"POST", b"/", b"1.1", ((b"Transfer-Encoding", b"chunked"), (b"Expect", b"100-continue")))
    assert isinstance(body_reader(chunked, LIMITS), ChunkedBody) and expects_continue(chunked)
    old = RequestHead(b"POST", b"/", b"1.0", ((b"Content-Length", b"3"), (b"Expect", b"100-continue")))
    assert isinstance(body_reader(old, LIMITS), LengthBody) and not expects_continue(old)
