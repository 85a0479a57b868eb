"""
``listen`` parameters: nginx's checks and wording at FILE:LINE, the
options each address ends up with, and the sockets made with them
(read back with getsockopt, and ``ss`` for the backlog).
"""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from support import config_errors, load_text
from wstunnel.app.service import bind_socket
from wstunnel.config.model import ListenOptions
from wstunnel.net.runtime import Runtime


@pytest.mark.parametrize(
    "params, message",
    [
        ("ipv6only=maybe", 'invalid parameter "ipv6only=maybe"'),
        ("backlog=x", 'invalid backlog "backlog=x"'),
        ("backlog=0", 'invalid backlog "backlog=0"'),
        ("so_keepalive=x", 'invalid so_keepalive value: "x"'),
        ("so_keepalive=::", 'invalid so_keepalive value: "::"'),
        ("so_keepalive=1:2:3:4", 'invalid so_keepalive value: "1:2:3:4"'),
        ("so_keepalive=0::", 'invalid so_keepalive value: "0::"'),
        ("so_keepalive=::0", 'invalid so_keepalive value: "::0"'),
        ("fastopen=x", 'invalid fastopen "fastopen=x"'),
        ("setfib=1", 'invalid parameter "setfib=1"'),
        ("quic", 'invalid parameter "quic"'),
        ("sndbuf=64k", '"listen" parameter "sndbuf=64k" is not supported by wstunnel'),
    ],
)
def test_parameter_errors(tmp_path, params, message) -> None:
    assert config_errors(tmp_path, f"server {{\n listen 127.0.0.1:8080 {params};\n}}\n") == [f"FILE:2: {message}"]


def test_options_are_written_once_per_address(tmp_path) -> None:
    """As nginx: ``duplicate listen options for ADDR``, on the second listen that writes any."""
    text = """
    server { listen 127.0.0.1:8080 backlog=5; }
    server { listen 127.0.0.1:8080; }
    server { listen 127.0.0.1:8080 reuseport; }
    """
    assert config_errors(tmp_path, text) == ["FILE:3: duplicate listen options for 127.0.0.1:8080"]


def test_options_of_an_address(tmp_path) -> None:
    config = load_text(tmp_path / "nginx.conf", """
    server { listen 127.0.0.1:8080 default_server backlog=7 so_keepalive=30m::10 deferred fastopen=3 reuseport; }
    server { listen 127.0.0.1:8080 http2; }
    server { listen [::1]:8081 ipv6only=off so_keepalive=off; }
    server { listen 127.0.0.1:8082 http2; listen 127.0.0.1:8083 so_keepalive=on; }
    """)
    options = {(b.host, b.port): b.options for b in config.bindings}
    assert options == {
        ("127.0.0.1", 8080): ListenOptions(
            backlog=7, reuseport=True, so_keepalive=True, keepalive_timers=(1800, None, 10), deferred=True,
            fastopen=3, bind=True),
        ("::1", 8081): ListenOptions(ipv6only=False, so_keepalive=False, bind=True),
        ("127.0.0.1", 8082): ListenOptions(),
        ("127.0.0.1", 8083): ListenOptions(so_keepalive=True, bind=True),
    }


def test_http2_is_a_notice(tmp_path) -> None:
    path = tmp_path / "nginx.conf"
    config = load_text(path, "server {\n listen 127.0.0.1:8080 http2;\n}\n")
    assert config.notices == (
        f'{path}:2: "listen ... http2": wstunnel serves HTTP/1.1 only, its ALPN offers "http/1.1"',)


def test_bind_and_socket_options_give_the_address_its_own_socket(tmp_path) -> None:
    """A wildcard listen takes the specific addresses of its port, except those with ``bind`` or an option."""
    config = load_text(tmp_path / "nginx.conf", """
    server { listen 8080; listen 127.0.0.1:8080 bind; listen 127.0.0.2:8080; listen 127.0.0.3:8080 backlog=9; }
    """)
    sockets = [(b.host, b.port) for b in Runtime.build(config).sockets]
    assert sockets == [("0.0.0.0", 8080), ("127.0.0.1", 8080), ("127.0.0.3", 8080)]


def _get(sock: socket.socket, level: int, option: int) -> int:
    return sock.getsockopt(level, option)


def test_a_listening_socket_with_every_option() -> None:
    options = ListenOptions(backlog=7, reuseport=True, so_keepalive=True, keepalive_timers=(1800, 20, 10),
                            deferred=True, fastopen=3, bind=True)
    with bind_socket("127.0.0.1", 0, options, defer=30) as listener:
        assert _get(listener, socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert _get(listener, socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0
        assert _get(listener, socket.IPPROTO_TCP, socket.TCP_FASTOPEN) == 3
        assert _backlog(listener.getsockname()[1]) == 7
        listener.setblocking(True)
        with socket.create_connection(listener.getsockname()) as client:
            client.sendall(b"x")  # TCP_DEFER_ACCEPT holds a connection that sent nothing
            accepted, _ = listener.accept()
            with accepted:
                assert [
                    _get(accepted, socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    _get(accepted, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    _get(accepted, socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    _get(accepted, socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                ] == [1, 1800, 20, 10]


def test_defaults_leave_the_system_settings() -> None:
    with bind_socket("127.0.0.1", 0) as listener:
        assert _get(listener, socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert _get(listener, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        assert _get(listener, socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0
        assert _backlog(listener.getsockname()[1]) == 511


@pytest.mark.parametrize("ipv6only, expected", [(True, 1), (False, 0)])
def test_ipv6only_is_set_before_bind(monkeypatch, ipv6only, expected) -> None:
    """
    Linux makes a socket bound to a specific IPv6 address IPv6-only
    whatever was asked, so the option is read as it is set, before bind.
    """
    calls = []

    class Recording(socket.socket):
        def setsockopt(self, *args) -> None:  # type: ignore[override]
            calls.append(args)
            super().setsockopt(*args)

    monkeypatch.setattr(socket, "socket", Recording)
    with bind_socket("::1", 0, ListenOptions(ipv6only=ipv6only)):
        assert (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, expected) in calls


def test_the_service_binds_with_the_options(tmp_path, proxy_services) -> None:
    service, port = proxy_services("server { listen 127.0.0.1:0 backlog=13 so_keepalive=on reuseport; }")
    listener = service.ports[0].socket
    assert _get(listener, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert _get(listener, socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    assert _backlog(port) == 13


def _backlog(port: int) -> int:
    """A listening socket's backlog: ``ss`` shows it as Send-Q."""
    ss = shutil.which("ss")
    assert ss is not None, "ss (iproute2) is needed to read a listen backlog"
    out = subprocess.run([ss, "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    (line,) = out.splitlines()
    return int(line.split()[2])


def test_a_reload_retunes_a_kept_socket(tmp_path, proxy_services, free_port) -> None:
    """The address keeps its socket (no connection refused) and takes the new backlog, keepalive and deferral."""
    service, _ = proxy_services(f"server {{ listen 127.0.0.1:{free_port} backlog=13 deferred; }}")
    (before,) = service.ports
    conf = f"server {{ listen 127.0.0.1:{free_port} backlog=34 so_keepalive=on; }}"
    assert service.apply(load_text(tmp_path / "reloaded.conf", conf))
    (after,) = service.ports
    assert after is before
    assert _backlog(free_port) == 34
    assert _get(after.socket, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert _get(after.socket, socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0
