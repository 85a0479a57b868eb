"""
The Prometheus exposition after real events, read back by the reference
parser: every family with its type, and the values the exchange and the
client protocol counted as the events happened.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from wstunnel.obs.metrics import FAMILIES, Stats, status_page
from support import MemoryProxy, load_text, upgrade_request

CONF = """
upstream backend { server 127.0.0.1:9001; }
server {
    listen 127.0.0.1:8080;
    location / { proxy_pass http://backend; }
}
"""
GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
BAD_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: bm90IHRoZSBhY2NlcHQ=\r\n\r\n"
)


def _exposition(stats: Stats) -> dict:
    headers, body = status_page("metrics", stats)
    assert headers == [(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")]
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def _samples(family) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_the_exposition_after_a_refused_connect_an_invalid_101_and_an_answer(tmp_path: Path) -> None:
    memory = MemoryProxy(load_text(tmp_path / "t.conf", CONF))
    memory.connect_client()  # one connection that sends nothing: accepted all the same

    _, refused = memory.connect_client(GET)
    memory.refuse()
    assert refused.value().startswith(b"HTTP/1.1 502 ")

    _, upgrade = memory.connect_client(upgrade_request())
    upstream, _ = memory.upstream()
    upstream.dataReceived(BAD_101)
    assert upgrade.value().startswith(b"HTTP/1.1 502 ")

    _, answered = memory.connect_client(GET)
    upstream, _ = memory.upstream()
    upstream.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert answered.value().startswith(b"HTTP/1.1 200 ")

    families = _exposition(memory.factory.registry.stats)
    assert {name: family.type for name, family in families.items()} == {
        name.removesuffix("_total"): kind for name, (kind, _) in FAMILIES.items()
    }
    assert _samples(families["wstunnel_upstream_failures"]) == {
        ("wstunnel_upstream_failures_total", (("peer", "127.0.0.1:9001"),)): 2.0
    }
    assert _samples(families["wstunnel_upstream_invalid_101"]) == {("wstunnel_upstream_invalid_101_total", ()): 1.0}
    assert _samples(families["wstunnel_requests"]) == {("wstunnel_requests_total", ()): 3.0}
    assert _samples(families["wstunnel_responses"]) == {
        ("wstunnel_responses_total", (("class", "2xx"),)): 1.0,
        ("wstunnel_responses_total", (("class", "5xx"),)): 2.0,
    }
    assert _samples(families["wstunnel_upgrades"]) == {
        ("wstunnel_upgrades_total", (("outcome", "refused"),)): 1.0
    }
    assert _samples(families["wstunnel_connections_accepted"]) == {("wstunnel_connections_accepted_total", ()): 4.0}
    assert _samples(families["wstunnel_tunnels_open"]) == {("wstunnel_tunnels_open", ()): 0.0}
    assert _samples(families["wstunnel_workers"]) == {("wstunnel_workers", ()): 1.0}


def test_failures_are_counted_per_peer_and_labels_survive_the_parser() -> None:
    stats = Stats(list, dict)
    stats.upstream_failed("10.0.0.1:80")
    stats.upstream_failed("10.0.0.1:80")
    stats.upstream_failed('we"ird')
    families = _exposition(stats)
    assert _samples(families["wstunnel_upstream_failures"]) == {
        ("wstunnel_upstream_failures_total", (("peer", "10.0.0.1:80"),)): 2.0,
        ("wstunnel_upstream_failures_total", (("peer", 'we"ird'),)): 1.0,
    }
    assert _samples(families["wstunnel_upstream_invalid_101"]) == {}
