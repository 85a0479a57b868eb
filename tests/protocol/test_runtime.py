"""What a Runtime derives from its config once: per proxy_pass location, the header plan and the connector."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory

from wstunnel.config.loader import load_config
from wstunnel.config.model import Location
from wstunnel.core.headers import header_plan
from wstunnel.net.runtime import Runtime
from wstunnel.net.upstream import UpstreamFactory

CONF = """
upstream app { server unix:/run/app.sock; }
server {
    listen 127.0.0.1:8080;
    location /plain/ { proxy_pass http://127.0.0.1:8000; proxy_set_header X-A "1"; proxy_connect_timeout 3s; }
    location /tls/ { proxy_pass https://127.0.0.1:8443; proxy_connect_timeout 4s; }
    location /unix/ { proxy_pass http://app; }
    location /status { stub_status; }
}
"""


class Listener:
    """An exchange that is never told anything here."""


def _runtime(tmp_path: Path) -> Runtime:
    path = tmp_path / "t.conf"
    path.write_text(CONF)
    return Runtime.build(load_config(str(path)))


def _locations(runtime: Runtime) -> dict[str, Location]:
    return {location.path: location for location in runtime.config.servers[0].locations}


def test_every_proxy_pass_location_has_its_plan_and_nothing_else_has_one(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    locations = _locations(runtime)
    for path in ("/plain/", "/tls/", "/unix/"):
        assert runtime.forwarding(locations[path]).plan == header_plan(locations[path], runtime.config)
    assert len(runtime.forwardings) == 3


def test_connectors_dial_plain_tls_or_unix_under_proxy_connect_timeout(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    locations = _locations(runtime)
    reactor = MemoryReactorClock()
    for path in ("/plain/", "/tls/", "/unix/"):
        location = locations[path]
        connect = runtime.forwarding(location).connector.bind(reactor, reactor)
        connect(location.proxy_pass.upstream.peers[0], Listener())  # type: ignore[union-attr, arg-type]
    plain, tls = reactor.tcpClients
    assert (plain[1], type(plain[2]), plain[3]) == (8000, UpstreamFactory, 3.0)
    assert (tls[1], tls[3]) == (8443, 4.0)
    assert isinstance(tls[2], TLSMemoryBIOFactory)
    [(path, factory, timeout, _)] = reactor.unixClients
    assert (path, type(factory), timeout) == ("/run/app.sock", UpstreamFactory, 60.0)


def test_a_new_runtime_derives_its_own_state(tmp_path: Path) -> None:
    first, second = _runtime(tmp_path), _runtime(tmp_path)
    tls_first = first.forwarding(_locations(first)["/tls/"]).connector
    tls_second = second.forwarding(_locations(second)["/tls/"]).connector
    assert tls_first is not tls_second
