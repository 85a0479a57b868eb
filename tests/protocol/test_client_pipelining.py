"""
A client that pipelines requests as fast as it can (issue 16): what the
connection holds ahead of the request being served stays within
EARLY_DATA_LIMIT plus the read that crossed it, reading pauses there and
resumes once the answers drain, every request is answered in order, and
nothing of the flood is kept once the connection ends.

What is held is measured from outside: the bytes the client got to send
(it sends only while its transport is read) minus the heads that reached
an upstream.
"""

from __future__ import annotations

import gc
import sys
import types
from pathlib import Path

from support import MemoryProxy, load_text
from wstunnel.net.intake import EARLY_DATA_LIMIT

CONF = """
server {
    listen 127.0.0.1:8080;
    keepalive_requests 10000;
    location / { proxy_pass http://127.0.0.1:9001; }
}
"""

PIECE = 1000  # bytes per read of the client's flood
COUNT = 4000  # pipelined requests: far more than the bound holds


def head(n: int) -> bytes:
    return b"GET /f%05d HTTP/1.1\r\nHost: a\r\n\r\n" % n


HEAD_SIZE = len(head(0))
FLOOD = b"".join(head(n) for n in range(COUNT))
BOUND = EARLY_DATA_LIMIT + PIECE


class Flood:
    """One client connection fed the flood a piece at a time, only while its transport is read."""

    def __init__(self, tmp_path: Path) -> None:
        self.proxy = MemoryProxy(load_text(tmp_path / "t.conf", CONF))
        self.client, self.ct = self.proxy.connect_client()
        self.sent = 0
        self.answered = 0
        self.most = 0  # the most held at any time

    def feed(self) -> None:
        """Send until the proxy stops reading or the flood is all sent; what is held stays bounded."""
        for _ in range(len(FLOOD) // PIECE + 1):
            if self.ct.producerState != "producing" or self.sent == len(FLOOD):
                break
            self.client.dataReceived(FLOOD[self.sent:self.sent + PIECE])
            self.sent = min(self.sent + PIECE, len(FLOOD))
            self.most = max(self.most, self.held())
            assert self.held() <= BOUND

    def held(self) -> int:
        """Bytes sent and not yet part of a head an upstream received."""
        return self.sent - HEAD_SIZE * len(self.proxy.dialled())

    def serve(self, pause_client: bool = False, feed: bool = True) -> None:
        """
        The latest request's upstream connects, the client goes on sending
        meanwhile, then the upstream answers with the request's path;
        ``pause_client``: the client's buffer fills before the answer's body.
        """
        upstream, ut = self.proxy.upstream()
        if feed:
            self.feed()
        path = ut.value().split(b" ")[1]
        upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(path))
        if pause_client:
            self.ct.producer.pauseProducing()
        upstream.dataReceived(path)
        self.answered += 1


def paths(answers: bytes) -> list[bytes]:
    """The bodies of the answers, in the order written."""
    return [part.split(b"\r\n\r\n", 1)[1][:7] for part in answers.split(b"HTTP/1.1 200 OK")[1:]]


def test_a_flood_is_held_to_the_bound_and_every_request_answered_in_order(tmp_path) -> None:
    flood = Flood(tmp_path)
    flood.feed()
    for _ in range(COUNT):
        flood.serve()
        if flood.answered == COUNT:
            break
    assert EARLY_DATA_LIMIT < flood.most <= BOUND, "the bound was reached, and held"
    assert flood.sent == len(FLOOD) and flood.held() == 0
    assert paths(flood.ct.value()) == [b"/f%05d" % n for n in range(COUNT)]


def test_reading_stays_paused_until_the_answer_drains_then_resumes(tmp_path) -> None:
    flood = Flood(tmp_path)
    flood.feed()
    flood.serve()
    assert flood.ct.producerState == "paused" and flood.held() > EARLY_DATA_LIMIT - HEAD_SIZE
    dialled = len(flood.proxy.dialled())
    flood.serve(pause_client=True)
    assert len(flood.proxy.dialled()) == dialled, "the next request waits for the answer to be read"
    flood.ct.producer.resumeProducing()
    assert len(flood.proxy.dialled()) == dialled + 1
    for _ in range(COUNT):
        if flood.ct.producerState == "producing":
            break
        flood.serve(feed=False)
    assert flood.held() <= EARLY_DATA_LIMIT
    flood.feed()
    assert flood.ct.producerState == "paused"


def test_the_served_requests_body_is_not_read_ahead_of_it(tmp_path) -> None:
    flood = Flood(tmp_path)
    body = b"b" * (2 * EARLY_DATA_LIMIT)
    post = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    flood.client.dataReceived(head(0) + post + body[:EARLY_DATA_LIMIT + 1])
    flood.serve(feed=False)
    _, ut = flood.proxy.upstream()
    assert flood.ct.producerState == "producing", "the body streams: it is the request's, not ahead of it"
    flood.client.dataReceived(body[EARLY_DATA_LIMIT + 1:])
    assert ut.value().endswith(body)


_CODE = (type, types.ModuleType, types.FunctionType, types.CodeType, types.MethodType, types.BuiltinFunctionType)


def held_buffers(obj: object, skip: tuple[object, ...]) -> int:
    """The bytes of every bytes or bytearray reachable from ``obj``, not through ``skip``."""
    seen = {id(s) for s in skip}
    todo, total = [obj], 0
    for _ in range(100_000):
        if not todo:
            return total
        item = todo.pop()
        if id(item) in seen or isinstance(item, _CODE):
            continue
        seen.add(id(item))
        if isinstance(item, (bytes, bytearray)):
            total += sys.getsizeof(item)
        else:
            todo.extend(gc.get_referents(item))
    raise AssertionError("more objects than a connection has")


def test_nothing_of_a_flood_is_kept_once_the_connection_ends(tmp_path) -> None:
    flood = Flood(tmp_path)
    flood.feed()
    flood.serve(feed=False)
    flood.serve()
    skip = (flood.proxy.factory, flood.proxy.runtime, flood.ct, flood.proxy.reactor)
    assert held_buffers(flood.client, skip) > EARLY_DATA_LIMIT, "the measure sees the held bytes"
    flood.client.connectionLost(None)
    assert held_buffers(flood.client, skip) < 4096


def test_an_upstream_that_fills_up_on_a_bodys_last_bytes_does_not_stop_the_next_request(tmp_path) -> None:
    flood = Flood(tmp_path)
    flood.client.dataReceived(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
    upstream, ut = flood.proxy.upstream()
    write = ut.write

    def write_then_fill(data: bytes) -> None:
        """The upstream's write buffer passes its mark with this write, as a transport then tells its producer."""
        write(data)
        if ut.producer is not None:
            ut.producer.pauseProducing()

    ut.write = write_then_fill  # type: ignore[method-assign]
    flood.client.dataReceived(b"cd")
    assert ut.value().endswith(b"abcd")
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert flood.ct.value().endswith(b"ok")
    assert flood.ct.producerState == "producing", "the body's pause ended with the body"
    flood.client.dataReceived(head(1))
    assert len(flood.proxy.dialled()) == 2
