"""
Deterministic tests of the operations parts: the PROXY header parser, the
metrics exposition and merging, the connection limit's warning rate, the
drain's timeline on a fake clock, and the new directives.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs

from wstunnel.app.lifecycle import FINAL_GRACE, Drain
from wstunnel.net.limits import ConnectionLimit
from wstunnel.config.loader import load_config
from wstunnel.obs.metrics import Stats, merge, prometheus_text, series, stub_status_text
from wstunnel.config.model import ConfigErrors
from wstunnel.wire.proxyproto import V2_SIGNATURE, ProxyHeader, ProxyHeaderError, ProxyHeaderParser, is_trusted
from wstunnel.net.registry import Registry

# -- PROXY protocol ---------------------------------------------------------------

V1 = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 443\r\n"


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


V2_TCP4 = v2(1, 0x11, bytes([192, 0, 2, 1, 10, 0, 0, 1]) + struct.pack("!HH", 1234, 80))
V2_TCP6 = v2(1, 0x21, ipaddress.IPv6Address("2001:db8::7").packed + bytes(16) + struct.pack("!HH", 9, 80) + b"\x01\x00\x00")
V2_LOCAL = v2(0, 0x00, b"")


@pytest.mark.parametrize("header,source", [
    (V1, ("2001:db8::1", 65535)),
    (b"PROXY TCP4 192.0.2.1 10.0.0.1 0 80\r\n", ("192.0.2.1", 0)),
    (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None),
    (b"PROXY UNKNOWN\r\n", None),
    (V2_TCP4, ("192.0.2.1", 1234)),
    (V2_TCP6, ("2001:db8::7", 9)),
    (V2_LOCAL, None),
])  # fmt: skip
def test_headers_parse_whole_and_byte_by_byte(header: bytes, source) -> None:
    assert ProxyHeaderParser().feed(header + b"GET") == (ProxyHeader(source), b"GET")
    parser = ProxyHeaderParser()
    for i in range(len(header) - 1):
        assert parser.feed(header[i : i + 1]) is None
    assert parser.feed(header[-1:] + b"rest") == (ProxyHeader(source), b"rest")


@pytest.mark.parametrize("data,message", [
    (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
    (b"PROXX", "no PROXY protocol header"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "invalid address"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "invalid address"),
    (b"PROXY TCP4 ::1 ::1 1 2\r\n", "invalid address"),
    (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "invalid PROXY v1 header"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "invalid PROXY v1 header"),
    (b"PROXY " + b"x" * 120, "longer than 107 bytes"),
    (V2_SIGNATURE[:6] + b"x", "no PROXY protocol header"),
    (V2_SIGNATURE + b"\x12\x11\x00\x00", "version/command"),
    (V2_SIGNATURE + b"\x22\x11\x00\x00", "version/command"),
    (V2_SIGNATURE + b"\x21\x11\xff\xff", "too long"),
    (v2(1, 0x11, b"\x01\x02"), "too short"),
])  # fmt: skip
def test_malformed_headers_are_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        ProxyHeaderParser().feed(data)


@given(st.binary(max_size=300))
def test_parser_never_fails_other_than_with_a_header_error(data: bytes) -> None:
    try:
        result = ProxyHeaderParser().feed(data)
    except ProxyHeaderError:
        return
    assert result is None or isinstance(result[0], ProxyHeader)


def test_trusted_sources() -> None:
    nets = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert is_trusted("10.1.2.3", nets)
    assert is_trusted("::ffff:10.1.2.3", nets)
    assert is_trusted("2001:db8::5", nets)
    assert not is_trusted("192.0.2.1", nets)
    assert not is_trusted("10.1.2.3", ())


# -- metrics -----------------------------------------------------------------------


class FakeClient:
    def __init__(self, activity: str, tunnel_bytes=None) -> None:
        self.activity = activity
        self.tunnel_bytes = tunnel_bytes


def test_snapshot_counts_states_and_live_tunnel_bytes() -> None:
    clients = [FakeClient("reading"), FakeClient("waiting"), FakeClient("writing", (10, 20))]
    stats = Stats(lambda: clients, lambda: {"backend": [("10.0.0.1:80", True), ("10.0.0.2:80", False)]})
    stats.accepted(True)
    stats.accepted(False)
    stats.tunnel_opened()
    stats.tunnel_opened()
    stats.tunnel_closed("client_closed", 30.0, 1, 2)
    values = stats.snapshot()
    assert values["wstunnel_connections_active"] == 3
    assert values[series("wstunnel_tunnel_bytes_total", direction="client_to_upstream")] == 11
    assert values[series("wstunnel_tunnel_bytes_total", direction="upstream_to_client")] == 22
    assert values["wstunnel_tunnels_open"] == 1
    assert values[series("wstunnel_upstream_peer_up", upstream="backend", peer="10.0.0.1:80")] == 1
    assert values[series("wstunnel_upstream_peer_up", upstream="backend", peer="10.0.0.2:80")] == 0
    assert values[series("wstunnel_tunnel_duration_seconds_bucket", le="10")] == 0
    assert values[series("wstunnel_tunnel_duration_seconds_bucket", le="60")] == 1
    assert stub_status_text(values) == (
        b"Active connections: 3 \nserver accepts handled requests\n 2 1 0 \n"
        b"Reading: 1 Writing: 1 Waiting: 1 \n"
    )


def test_merge_sums_but_takes_the_largest_per_process_copy() -> None:
    reloads = series("wstunnel_config_reloads_total", result="ok")
    merged = merge([{"a_total": 1, reloads: 2}, {"a_total": 2, reloads: 2}, {reloads: 1}])
    assert merged == {"a_total": 3, reloads: 2}


def test_exposition_format() -> None:
    stats = Stats(list, dict)
    stats.tunnel_opened()
    stats.tunnel_closed("shutdown", 0.5, 0, 0)
    stats.add(series("wstunnel_upstream_failures_total", peer='we"ird\\'))
    text = prometheus_text(stats.snapshot()).decode()
    assert text.endswith("\n")
    assert "# HELP wstunnel_tunnel_duration_seconds Lifetime of ended tunnels.\n" in text
    buckets = [line for line in text.splitlines() if line.startswith("wstunnel_tunnel_duration_seconds_bucket")]
    assert buckets[0] == 'wstunnel_tunnel_duration_seconds_bucket{le="1"} 1'
    assert buckets[-1] == 'wstunnel_tunnel_duration_seconds_bucket{le="+Inf"} 1'
    assert 'wstunnel_upstream_failures_total{peer="we\\"ird\\\\"} 1' in text
    assert "wstunnel_tunnel_duration_seconds_sum 0.5\n" in text
    # Every sample line belongs to the family announced before it.
    family = None
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
        elif not line.startswith("#"):
            assert line.startswith(family), line


def test_an_empty_histogram_has_every_bucket() -> None:
    text = prometheus_text(Stats(list, dict).snapshot()).decode()
    assert 'wstunnel_tunnel_duration_seconds_bucket{le="86400"} 0\n' in text
    assert "wstunnel_tunnel_duration_seconds_count 0\n" in text


# -- limits ------------------------------------------------------------------------


def test_limit_warns_at_most_once_a_second() -> None:
    clock = Clock()
    limit = ConnectionLimit(clock)
    with capturedLogs() as events:
        assert limit.admit(2, 3)
        assert not limit.admit(3, 3)
        assert not limit.admit(3, 3)
        clock.advance(0.5)
        assert not limit.admit(4, 3)
        clock.advance(0.5)
        assert not limit.admit(3, 3)
    assert [e["log_level"] for e in events] == [LogLevel.warn, LogLevel.warn]


# -- drain ---------------------------------------------------------------------------


class DrainingClient(FakeClient):
    def __init__(self, registry: Registry, busy: bool) -> None:
        super().__init__("writing" if busy else "waiting")
        self.registry = registry
        self.busy = busy
        self.calls: list[str] = []

    def drain(self) -> None:
        self.calls.append("drain")
        if not self.busy:
            self.registry.release(self)

    def shut_down(self) -> None:
        self.calls.append("shut_down")

    def abort(self) -> None:
        self.calls.append("abort")
        self.registry.release(self)


def test_drain_closes_idle_at_once_then_closes_then_aborts_the_rest() -> None:
    clock = Clock()
    registry = Registry(clock)
    idle, busy = DrainingClient(registry, False), DrainingClient(registry, True)
    registry.clients |= {idle, busy}
    done = Drain(registry, clock, 10.0).start()
    assert idle.calls == ["drain"] and busy.calls == ["drain"]
    clock.advance(9.9)
    assert not done.called and busy.calls == ["drain"]
    clock.advance(0.1)
    assert busy.calls == ["drain", "shut_down"]
    clock.advance(FINAL_GRACE)
    assert busy.calls == ["drain", "shut_down", "abort"]
    assert done.called


def test_drain_ends_when_the_last_connection_closes() -> None:
    clock = Clock()
    registry = Registry(clock)
    busy = DrainingClient(registry, True)
    registry.clients.add(busy)
    done = Drain(registry, clock, 10.0).start()
    registry.release(busy)
    assert done.called
    assert clock.getDelayedCalls() == []


def test_drain_with_nothing_open_is_done_at_once() -> None:
    assert Drain(Registry(Clock()), Clock(), 10.0).start().called


# -- directives ------------------------------------------------------------------------


def load(tmp_path, text: str):
    path = tmp_path / "ws.conf"
    path.write_text(text)
    return load_config(str(path), resolve=lambda host, port: ["127.0.0.1"])


def test_worker_directives(tmp_path) -> None:
    config = load(tmp_path, "worker_processes 3;\nworker_rlimit_nofile 4096;\nworker_shutdown_timeout 1m;\n"
                            "events { worker_connections 100; }\nserver { listen 127.0.0.1:8080; }\n")
    assert (config.workers.processes, config.workers.connections) == (3, 100)
    assert (config.workers.rlimit_nofile, config.workers.shutdown_timeout) == (4096, 60.0)


def test_worker_defaults(tmp_path) -> None:
    workers = load(tmp_path, "server { listen 127.0.0.1:8080; }\n").workers
    assert (workers.processes, workers.connections, workers.rlimit_nofile, workers.shutdown_timeout) == (
        1, 512, None, 10.0,
    )  # fmt: skip


def test_proxy_protocol_directives(tmp_path) -> None:
    config = load(tmp_path, "set_real_ip_from 10.0.0.0/8;\nreal_ip_header proxy_protocol;\n"
                            "server { listen 127.0.0.1:8080 proxy_protocol; set_real_ip_from 192.0.2.1; }\n"
                            "server { listen 127.0.0.1:8080; server_name b; }\n")
    binding = config.bindings[0]
    assert binding.proxy_protocol and binding.real_ip_proxy_protocol
    assert binding.real_ip_from == (ipaddress.ip_network("192.0.2.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize("text,message", [
    ("worker_rlimit_nofile 0;\n", 'FILE:1: invalid value "0" in "worker_rlimit_nofile" directive'),
    ("worker_shutdown_timeout soon;\n", 'FILE:1: "worker_shutdown_timeout" directive invalid'),
    ("server { listen 8080; location / { stub_status; proxy_pass http://x; } }\n",
     'FILE:1: "proxy_pass" and "stub_status" in one location'),
    ("server { listen 8080; location / { wstunnel_metrics maybe; } }\n",
     'FILE:1: invalid value "maybe" in "wstunnel_metrics" directive'),
    ("server { listen 8080; location / { stub_status; stub_status; } }\n",
     'FILE:1: "stub_status" directive is duplicate'),
    ("set_real_ip_from 10.0.0.300;\n", 'FILE:1: invalid network "10.0.0.300"'),
    ("real_ip_header X-Forwarded-For;\n", '"real_ip_header X-Forwarded-For" is not supported by wstunnel'),
    ("server { location / { set_real_ip_from 10.0.0.1; } }\n", '"set_real_ip_from" directive is not allowed here'),
    ("worker_processes 2;\nserver {\n listen 127.0.0.1:0;\n}\n", 'FILE:3: "listen" port 0 needs "worker_processes 1"'),
])  # fmt: skip
def test_directive_errors(tmp_path, text: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, text)
    path = str(tmp_path / "ws.conf")
    assert any(message.replace("FILE", path) in str(e) for e in caught.value.errors), caught.value
