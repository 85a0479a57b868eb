"""net.runtime.Forwarding: everything a proxy_pass location's requests read, found with one lookup."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock

from wstunnel.config.loader import load_config
from wstunnel.net.runtime import Runtime

CONF = """
upstream pooled { server 127.0.0.1:9001; keepalive 4; }
server {
    listen 127.0.0.1:8080;
    resolver 127.0.0.1;
    location /pooled/ { proxy_pass http://pooled; }
    location /plain/ { proxy_pass http://127.0.0.1:8000; }
    location /dynamic/ { proxy_pass http://$arg_to; }
}
"""


def _runtime(tmp_path: Path) -> Runtime:
    path = tmp_path / "t.conf"
    path.write_text(CONF)
    return Runtime.build(load_config(str(path), resolve=lambda host, port: [host]))


def test_a_forwarding_holds_its_groups_balancer_and_pool(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    for location in runtime.config.servers[0].locations:
        forwarding = runtime.forwarding(location)
        name = location.proxy_pass.upstream.name  # type: ignore[union-attr]
        assert forwarding.balancer is runtime.balancer(name)
        assert forwarding.pool is runtime.pools.get(name)
    pooled = runtime.config.servers[0].locations[0]
    assert runtime.forwarding(pooled).pool is not None


def test_the_connector_is_bound_once_per_reactor(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    forwarding = runtime.forwarding(runtime.config.servers[0].locations[1])
    first, second = MemoryReactorClock(), MemoryReactorClock()
    connect = forwarding.connect(first, first)
    assert forwarding.connect(first, first) is connect
    other = forwarding.connect(second, second)
    assert other is not connect
    other(runtime.config.servers[0].locations[1].proxy_pass.upstream.peers[0], object())  # type: ignore[union-attr, arg-type]
    assert [(host, port) for host, port, *_ in second.tcpClients] == [("127.0.0.1", 8000)]
    assert not first.tcpClients
