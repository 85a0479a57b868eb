"""
``rewrite_log on`` through the client protocol: nginx's notice lines reach
twisted.logger (the error log's notice level is its info), and the file
tests of ``if`` ask the real filesystem.
"""

from __future__ import annotations

from pathlib import Path

from twisted.logger import LogLevel, capturedLogs

from support import MemoryProxy, load_text

CONF = """
server {
    listen 127.0.0.1:8080;
    location / {
        rewrite_log on;
        if (-d %s) { return 200 "a dir"; }
        rewrite ^/old/(.*)$ /new/$1?x=1 redirect;
        return 200 "none";
    }
}
"""


def proxy(tmp_path: Path) -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "proxy.conf", CONF % (tmp_path / "dir")))


def test_rewrite_log_lines_are_notices(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    with capturedLogs() as events:
        _, transport = p.connect_client(b"GET /old/a?b=2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 302 ")
    assert b"\r\nLocation: http://a.test:8080/new/a?x=1&b=2\r\n" in transport.value()
    notices = [e["text"] for e in events if e.get("log_format") == "{text}" and e["log_level"] is LogLevel.info]
    assert notices == ['"^/old/(.*)$" matches "/old/a"', 'rewritten redirect: "/new/a?x=1&b=2"']


def test_file_tests_ask_the_filesystem(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    _, before = p.connect_client(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    (tmp_path / "dir").mkdir()
    _, after = p.connect_client(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert before.value().endswith(b"none") and after.value().endswith(b"a dir")
