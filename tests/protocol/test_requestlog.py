"""net.requestlog: a request's record and the access-log line made from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wstunnel.config.loader import load_config
from wstunnel.net.requestlog import RequestRecord, log_request
from wstunnel.net.runtime import Runtime
from wstunnel.wire.heads import head_so_far
from wstunnel.wire.request import ConnInfo, RequestHead

CONN = ConnInfo(remote_addr="127.0.0.1", remote_port=40000, server_addr="127.0.0.1", server_port=8080)
HEAD = RequestHead(b"GET", b"/x", b"1.1", ((b"Host", b"a.test"),))


class _Stats:
    def __init__(self) -> None:
        self.done: list[tuple[int, bool]] = []

    def request_done(self, status: int, upgrade: bool) -> None:
        self.done.append((status, upgrade))


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    conf = tmp_path / "proxy.conf"
    conf.write_text(
        "log_format short '$status $request_length $bytes_sent $body_bytes_sent $connection/$connection_requests "
        "\"$request\"';\n"
        f"server {{ listen 127.0.0.1:8080; access_log {tmp_path}/access.log short; }}\n"
    )
    return Runtime.build(load_config(str(conf), resolve=lambda host, port: [host]))


def _log(record: RequestRecord, runtime: Runtime, stats: _Stats) -> None:
    server = runtime.config.bindings[0].default
    log_request(
        record,
        runtime=runtime,
        conn=CONN,
        default=lambda: server,
        stats=stats,  # type: ignore[arg-type]
        now=lambda: 11.0,
        connection=3,
        requests=2,
    )


def test_a_new_record_counts_nothing() -> None:
    record = RequestRecord(started=5.0)
    assert (record.status, record.sent, record.body_bytes, record.fed) == (0, 0, 0, 0)
    assert record.head is record.so_far is record.location is record.vars is record.upstream is None
    assert record.close_reason is None and not record.close_after


def test_nothing_read_is_not_a_request(runtime: Runtime, tmp_path: Path) -> None:
    stats = _Stats()
    _log(RequestRecord(started=5.0), runtime, stats)
    assert stats.done == [] and not (tmp_path / "access.log").exists()


def test_a_request_is_counted_and_logged_from_its_record(runtime: Runtime, tmp_path: Path) -> None:
    stats = _Stats()
    record = RequestRecord(started=5.0, head=HEAD, status=404, sent=120, body_bytes=80, fed=30)
    _log(record, runtime, stats)
    assert stats.done == [(404, False)]
    assert (tmp_path / "access.log").read_text() == '404 30 120 80 3/2 "GET /x HTTP/1.1"\n'


def test_a_refused_head_is_logged_as_far_as_it_was_read(runtime: Runtime, tmp_path: Path) -> None:
    stats = _Stats()
    so_far = head_so_far(b"GET /y HTTP/1.1\r\nHost: a", buffer_size=1024)
    assert so_far is not None
    _log(RequestRecord(started=5.0, so_far=so_far, status=400, fed=999), runtime, stats)
    assert stats.done == [(400, False)]
    line = (tmp_path / "access.log").read_text()
    assert line.startswith(f"400 {so_far.length} 0 0 3/2 ")
