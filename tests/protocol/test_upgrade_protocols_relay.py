"""
proxy_upgrade_protocols through the real client and upstream protocols: an
upgrade the config does not allow never reaches the upstream, a 101 to it
anyway is a 502, and an allowed one tunnels only on the token offered.
"""

from __future__ import annotations

from pathlib import Path

from support import MemoryProxy, load_text, switch_answer, upgrade_request

CONF = """
server {{
    listen 127.0.0.1:8080;
    location / {{
        proxy_pass http://127.0.0.1:9000;
        {extra}
    }}
}}
"""

FOO = b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"
NEXT = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
FOO_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"


def proxy(tmp_path: Path, extra: str = "") -> MemoryProxy:
    return MemoryProxy(load_text(tmp_path / "t.conf", CONF.format(extra=extra)))


def header_lines(sent: bytes) -> list[bytes]:
    return [line.lower() for line in sent.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]]


def test_an_echoed_foo_is_a_502_by_default(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(FOO + NEXT)
    upstream, ut = p.upstream()
    sent = ut.value()
    assert sent.startswith(b"GET /x HTTP/1.1\r\n")
    lines = header_lines(sent)
    assert not [line for line in lines if line.startswith(b"upgrade:")]
    assert b"connection: close" in lines
    assert b"foo" not in sent.lower()
    upstream.dataReceived(FOO_101)
    assert client.value().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert client.disconnecting and ut.disconnecting
    assert b"/admin" not in ut.value(), "the client's next request never reaches the upstream"


def test_a_plain_answer_to_a_refused_offer_is_relayed_then_the_connection_closes(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(FOO + NEXT)
    p.answer(b"200 OK", b"plain")
    assert client.value().startswith(b"HTTP/1.1 200 OK\r\n") and client.value().endswith(b"plain")
    assert b"Connection: close\r\n" in client.value()
    assert client.disconnecting
    assert p.dialled() == [("127.0.0.1", 9000)], "the bytes after the refused switch are not a request"


def test_an_allowed_foo_tunnels(tmp_path: Path) -> None:
    p = proxy(tmp_path, "proxy_upgrade_protocols websocket foo;")
    _, client = p.connect_client(FOO)
    upstream, ut = p.upstream()
    lines = header_lines(ut.value())
    assert b"upgrade: foo" in lines and b"connection: upgrade" in lines
    upstream.dataReceived(FOO_101 + b"hello")
    assert client.value().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert client.value().endswith(b"\r\n\r\nhello")
    ut.clear()
    p.client.dataReceived(b"raw bytes")
    assert ut.value() == b"raw bytes"


def test_an_allowed_foo_tunnels_on_the_offered_token_in_any_case(tmp_path: Path) -> None:
    p = proxy(tmp_path, "proxy_upgrade_protocols FOO;")
    _, client = p.connect_client(FOO)
    upstream, _ = p.upstream()
    upstream.dataReceived(FOO_101.replace(b"Upgrade: foo", b"Upgrade: Foo"))
    assert client.value().startswith(b"HTTP/1.1 101 ")


def test_a_101_naming_another_token_is_a_502(tmp_path: Path) -> None:
    p = proxy(tmp_path, "proxy_upgrade_protocols websocket foo bar;")
    _, client = p.connect_client(FOO)
    upstream, ut = p.upstream()
    upstream.dataReceived(FOO_101.replace(b"Upgrade: foo", b"Upgrade: bar") + b"smuggled")
    assert client.value().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"smuggled" not in client.value()
    assert client.disconnecting and ut.disconnecting


def test_an_offer_keeps_only_its_allowed_tokens(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    p.connect_client(upgrade_request("/chat").replace(b"Upgrade: websocket", b"Upgrade: foo, websocket"))
    _, ut = p.upstream()
    assert b"upgrade: websocket" in header_lines(ut.value())


def test_websocket_still_tunnels_by_default(tmp_path: Path) -> None:
    p = proxy(tmp_path)
    _, client = p.connect_client(upgrade_request("/chat"))
    upstream, ut = p.upstream()
    upstream.dataReceived(switch_answer(ut.value().split(b"\r\n\r\n")[0]))
    assert client.value().startswith(b"HTTP/1.1 101 ")


def test_websocket_is_refused_where_the_list_leaves_it_out(tmp_path: Path) -> None:
    p = proxy(tmp_path, "proxy_upgrade_protocols foo;")
    _, client = p.connect_client(upgrade_request("/chat"))
    upstream, ut = p.upstream()
    head = ut.value().split(b"\r\n\r\n")[0]
    assert not [line for line in header_lines(head) if line.startswith(b"upgrade:")]
    upstream.dataReceived(switch_answer(head))
    assert client.value().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
