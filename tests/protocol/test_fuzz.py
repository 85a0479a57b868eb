"""
Hypothesis against both parsers as the proxy runs them: the client side
(the gate and the body reader inside :class:`ClientProtocol`) and the upstream side
(:class:`UpstreamProtocol`).  Any bytes, split anywhere, must end in a
parse, a 4xx/5xx or a close: never an exception, never a wait past the
header deadline, never an outcome that depends on the split.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionDone

from support import MemoryProxy, load_text, split_at
from wstunnel.net.client import H2_REFUSAL
from wstunnel.wire.upstream import UpstreamRequest
from wstunnel.config.model import Config
from wstunnel.net.upstream import UpstreamProtocol

CONF = """
server {
    listen 127.0.0.1:8080;
    large_client_header_buffers 4 256;
    location / { proxy_pass http://127.0.0.1:9001; }
}
"""

VALID = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET http://h/x HTTP/1.0\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
]
PIECES = [b"\r", b"GET ", b"/ ", b"HTTP/1.1", b"\r\n", b"\n", b"Host: a", b"Content-Length: 2", b"Transfer-Encoding: chunked",
          b" ", b":", b"\x00", b"0\r\n\r\n", b"PRI * HTTP/2.0", b"\r\n\r\n", b"x" * 300]


def _config(tmp: Path) -> Config:
    return load_text(tmp / "fuzz.conf", CONF)


def _drive_client(config: Config, chunks: list[bytes]) -> tuple[bytes, bool, int]:
    proxy = MemoryProxy(config)
    client, transport = proxy.connect_client()
    for piece in chunks:
        if transport.disconnecting:
            break
        client.dataReceived(piece)
    dialled = len(proxy.dialled())
    if not transport.disconnecting and not dialled:
        proxy.reactor.advance(61)  # client_header_timeout: nothing waits longer
        assert transport.disconnecting, "a partial head outlived the header deadline"
    return transport.value(), transport.disconnecting, dialled


def _outcome_ok(written: bytes, closed: bool, dialled: int) -> None:
    if dialled:
        assert written in (b"", b"HTTP/1.1 100 Continue\r\n\r\n")
        return
    assert closed
    if written and written != H2_REFUSAL:
        assert written.startswith(b"HTTP/1.1 ")
        assert 400 <= int(written[9:12]) < 600


_client_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_client_settings
@given(data=st.one_of(st.binary(max_size=600), st.lists(st.sampled_from(PIECES + VALID), max_size=12).map(b"".join)),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_client_parser_on_any_bytes_anysplit_at(tmp_path, data, cuts) -> None:
    config = _config(tmp_path)
    whole = _drive_client(config, [data] if data else [])
    split = _drive_client(config, split_at(data, cuts))
    _outcome_ok(*whole)
    assert split == whole


@_client_settings
@given(index=st.integers(min_value=0, max_value=len(VALID) - 1),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_valid_requests_reach_the_upstream_whatever_thesplit_at(tmp_path, index, cuts) -> None:
    config = _config(tmp_path)
    assert _drive_client(config, split_at(VALID[index], cuts)) == (b"", False, 1)


class _Recorder:
    """An UpstreamListener that writes down what it is told, data merged."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def _add(self, *event) -> None:
        if event[0] == "data" and self.events and self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + event[1])
        else:
            self.events.append(event)

    def upstream_connected(self, upstream) -> None:
        pass

    def upstream_connect_failed(self, reason) -> None:
        self._add("connect-failed")

    def upstream_informational(self, head) -> None:
        self._add("1xx", head.status)

    def upstream_switch(self, head, early) -> None:
        self._add("switch", bytes(early))

    def upstream_head(self, head) -> None:
        self._add("head", head.status, head.headers)

    def upstream_data(self, data) -> None:
        assert data.__class__ is bytes
        self._add("data", data)

    def upstream_end(self) -> None:
        self._add("end")

    def upstream_invalid(self, detail) -> None:
        self._add("invalid")

    def upstream_lost(self, reason) -> None:
        self._add("lost")


REQUEST = UpstreamRequest(method=b"GET", target=b"/", http_version=b"1.1", headers=((b"Host", b"a"),), upgrade=False)
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\nX: y\n\nuntil close",
]


def _drive_upstream(chunks: list[bytes]) -> list[tuple]:
    recorder = _Recorder()
    upstream = UpstreamProtocol(recorder)
    upstream.makeConnection(StringTransport())
    upstream.send_head(REQUEST, 256)
    upstream.end_body()
    for piece in chunks:
        upstream.dataReceived(piece)
    upstream.readConnectionLost()
    upstream.connectionLost(Failure(ConnectionDone()))
    return recorder.events


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=400), st.sampled_from(RESPONSES),
                      st.lists(st.sampled_from(RESPONSES + [b"\r\n", b"0\r\n", b"Content-Length: 1", b"\x00"]),
                               max_size=6).map(b"".join)),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_upstream_parser_on_any_bytes_anysplit_at(data, cuts) -> None:
    whole = _drive_upstream([data] if data else [])
    assert whole and whole[-1][0] in ("end", "invalid", "lost", "switch")
    assert [e for e in whole if e[0] in ("end", "invalid", "lost", "switch")] == [whole[-1]], "one ending"
    assert _drive_upstream(split_at(data, cuts)) == whole
