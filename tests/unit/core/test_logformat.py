"""log_format rendering: the predefined combined format, escaping, log-only variables."""

from __future__ import annotations

import time

import pytest

from wstunnel.core.attempts import UpstreamRecord
from wstunnel.config.logformats import combined_format, compile_log_format
from wstunnel.core.logformat import LogEntry, bare_vars, render_line
from wstunnel.config.model import Config, Server, Source
from wstunnel.wire.request import ConnInfo, RequestHead

SRC = Source("test.conf", 1)
WHEN = 1795273676.25  # 2026-11-21 15:07:56.25 UTC
SERVER = Server(("example.com",), (), (), SRC)
CONFIG = Config("test.conf", (), (SERVER,), {}, {}, ())


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def entry(target=b"/combined", headers=(), status=200, sent=2, remote="127.0.0.1", upstream=None, version=b"1.0"):
    conn = ConnInfo(remote, 40000, "127.0.0.1", 8080)
    head = RequestHead(b"GET", target, version, tuple(headers))
    return LogEntry(conn, head, bare_vars(CONFIG, SERVER, conn, head), WHEN - 1.5, WHEN, status, sent, upstream)


def line(text: str, e: LogEntry, escape: str = "default") -> str:
    return render_line(compile_log_format("t", escape, text, SRC, ()), e)


def test_combined_matches_nginx() -> None:
    assert render_line(combined_format(SRC), entry()) == (
        '127.0.0.1 - - [21/Nov/2026:15:07:56 +0000] "GET /combined HTTP/1.0" 200 2 "-" "-"'
    )


def test_combined_with_headers() -> None:
    e = entry(b"/chat/", [(b"Referer", b"http://example.com/"), (b"User-Agent", b"Mozilla/5.0 (X11)")],
              status=101, sent=0, remote="::1", version=b"1.1")
    assert render_line(combined_format(SRC), e) == (
        '::1 - - [21/Nov/2026:15:07:56 +0000] "GET /chat/ HTTP/1.1" 101 0 "http://example.com/" "Mozilla/5.0 (X11)"'
    )


def test_default_escaping_applies_to_values_only() -> None:
    e = entry(b'/escape/"1', [(b"Referer", b'a"b'), (b"User-Agent", b"agent\\\x01")])
    assert line('"$request" "$http_referer" $http_user_agent \\', e) == (
        '"GET /escape/\\x221 HTTP/1.0" "a\\x22b" agent\\x5C\\x01 \\'
    )


def test_json_and_none_escaping() -> None:
    e = entry(headers=[(b"User-Agent", b'a"b\\c\n\x01')])
    assert line('{"ua":"$http_user_agent","ref":"$http_referer"}', e, "json") == (
        '{"ua":"a\\"b\\\\c\\n\\u0001","ref":""}'
    )
    assert line("$http_user_agent|$http_referer", e, "none") == 'a"b\\c\n\x01|-'


def test_time_and_size_variables() -> None:
    assert line("$status $body_bytes_sent $request_time $msec $time_iso8601 $remote_user", entry(status=7)) == (
        "007 2 1.500 1795273676.250 2026-11-21T15:07:56+00:00 -"
    )


def test_upstream_variables_are_dashes_without_an_upstream() -> None:
    fields = "$upstream_addr $upstream_status $upstream_connect_time $upstream_header_time $upstream_response_time"
    assert line(fields, entry()) == "- - - - -"
    record = UpstreamRecord()
    first = record.begin("127.0.0.1:1", WHEN - 1.0)
    first.status, first.ended = 504, WHEN - 0.5
    second = record.begin("unix:/run/a.sock", WHEN - 0.5)
    second.connected, second.header, second.ended, second.status = WHEN - 0.499, WHEN - 0.25, WHEN, 200
    assert line(fields, entry(upstream=record)) == (
        "127.0.0.1:1, unix:/run/a.sock 504, 200 -, 0.001 -, 0.250 0.500, 0.500"
    )


def test_request_variables_for_a_request_refused_before_routing() -> None:
    e = entry(b"bad target", [(b"Host", b"h")])
    assert line("$remote_addr $uri $http_host $server_name $request", e) == (
        "127.0.0.1 - h example.com GET bad target HTTP/1.0"
    )
