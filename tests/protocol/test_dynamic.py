"""
``proxy_pass`` with variables through the real client protocol, with a
lookup the test answers (net/resolve.py's Lookup seam) on a
MemoryReactorClock: nothing is dialled before the name is known,
``resolver_timeout`` is a 504, answers are kept for their TTL or
``valid=``, waiting requests share one query, a client that leaves stops
the wait, and every address of an answer is a peer.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.logger import capturedLogs, formatEvent

from support import MemoryProxy, load_text, log_fields
from wstunnel.net.resolve import Answer, ResolveError

CONF = """
log_format up '$upstream_addr|$status';
server {{
    listen 127.0.0.1:8080;
    access_log {log} up;
    resolver 127.0.0.1:5353 {valid};
    resolver_timeout 5s;
    location / {{ proxy_pass http://$http_x_to:9000; }}
}}
"""


def get(to: str = "app.test") -> bytes:
    return b"GET /x HTTP/1.1\r\nHost: a\r\nX-To: " + to.encode() + b"\r\n\r\n"


class Proxy(MemoryProxy):
    """The config, its lookups held by the test: ``asked`` lists each name and its Deferred."""

    def __init__(self, tmp_path: Path, valid: str = "") -> None:
        self.log = tmp_path / "access.log"
        super().__init__(load_text(tmp_path / "t.conf", CONF.format(log=self.log, valid=valid)))
        self.asked: list[tuple[str, Deferred]] = []
        self.runtime.targets.resolvers.make_lookup = lambda settings, reactor: self._lookup

    def _lookup(self, name: str, timeout: float) -> Deferred:
        query: Deferred = Deferred()
        self.asked.append((name, query))
        return query

    def resolve(self, *addresses: str, ttl: float = 30, index: int = -1) -> None:
        self.asked[index][1].callback(Answer(addresses, ttl))

    def lines(self) -> list[list[str]]:
        return log_fields(self.log)


def test_nothing_is_dialled_until_the_name_is_resolved(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.connect_client(get())
    assert [name for name, _ in proxy.asked] == ["app.test"]
    assert proxy.dialled() == []
    proxy.resolve("10.0.0.7")
    assert proxy.dialled() == [("10.0.0.7", 9000)]
    _, upstream = proxy.upstream()
    assert upstream.value().startswith(b"GET /x HTTP/1.1\r\nHost: app.test:9000\r\n")


def test_a_resolver_that_does_not_answer_in_time_is_a_504(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    with capturedLogs() as events:
        proxy.connect_client(get())
        proxy.reactor.advance(4.9)
        assert proxy.ct.value() == b""
        proxy.reactor.advance(0.1)
    assert proxy.ct.value().startswith(b"HTTP/1.1 504 ")
    assert proxy.dialled() == []
    assert any("app.test could not be resolved (110: Operation timed out)" in formatEvent(e) for e in events)
    proxy.asked[0][1].callback(Answer(("10.0.0.7",), 30))  # too late: nothing happens
    assert proxy.dialled() == []


def test_a_name_not_found_is_a_502(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.connect_client(get())
    proxy.asked[0][1].errback(ResolveError(3, "Host not found"))
    assert proxy.ct.value().startswith(b"HTTP/1.1 502 ")
    assert proxy.lines() == [["-", "502"]]


def test_an_answer_is_kept_for_its_ttl(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.connect_client(get())
    proxy.resolve("10.0.0.7", ttl=10)
    proxy.reactor.advance(9)
    proxy.connect_client(get("APP.test"))
    assert len(proxy.asked) == 1
    assert proxy.dialled()[-1] == ("10.0.0.7", 9000)
    proxy.reactor.advance(1)
    proxy.connect_client(get())
    assert len(proxy.asked) == 2


def test_valid_overrides_the_ttl(tmp_path) -> None:
    proxy = Proxy(tmp_path, valid="valid=100s")
    proxy.connect_client(get())
    proxy.resolve("10.0.0.7", ttl=1)
    proxy.reactor.advance(99)
    proxy.connect_client(get())
    assert len(proxy.asked) == 1
    proxy.reactor.advance(1)
    proxy.connect_client(get())
    assert len(proxy.asked) == 2


def test_requests_waiting_for_one_name_share_the_query(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.connect_client(get())
    proxy.connect_client(get())
    assert len(proxy.asked) == 1
    proxy.resolve("10.0.0.7")
    assert proxy.dialled() == [("10.0.0.7", 9000), ("10.0.0.7", 9000)]


def test_a_client_that_leaves_while_the_name_is_resolved_is_a_499(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    client, _ = proxy.connect_client(get())
    client.connectionLost(ConnectionRefusedError())
    proxy.resolve("10.0.0.7")
    assert proxy.dialled() == []
    assert proxy.lines() == [["-", "499"]]


def test_every_address_of_the_answer_is_a_peer(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.connect_client(get())
    proxy.resolve("10.0.0.7", "10.0.0.8")
    proxy.refuse()
    assert proxy.dialled() == [("10.0.0.7", 9000), ("10.0.0.8", 9000)]
    proxy.answer(b"200 OK", b"ok")
    assert proxy.lines() == [["10.0.0.7:9000, 10.0.0.8:9000", "200"]]


def test_a_literal_address_is_not_resolved(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.connect_client(get("10.1.2.3"))
    assert proxy.asked == []
    assert proxy.dialled() == [("10.1.2.3", 9000)]


def test_a_cached_answer_is_used_at_once(tmp_path) -> None:
    proxy = Proxy(tmp_path)
    proxy.runtime.targets.resolvers.make_lookup = lambda settings, reactor: (
        lambda name, timeout: succeed(Answer(("10.0.0.9",), 60))
    )
    proxy.connect_client(get())
    assert proxy.dialled() == [("10.0.0.9", 9000)]
