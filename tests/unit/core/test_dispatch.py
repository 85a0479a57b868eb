"""core.dispatch.prepare: the decision a request head gets, as a value (no Twisted, no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.wire.request import TLSInfo
from wstunnel.core.dispatch import Decision, Forward, Refuse, Respond, StatusPage, body_framing, prepare
from wstunnel.core.headers import BodyFraming, header_plan
from wstunnel.core.routing import Router
from wstunnel.wire.errors import RequestError, error_page
from wstunnel.wire.request import ConnInfo, RequestHead

CONF = """
upstream app { server 127.0.0.1:9001; keepalive 4; }
upstream other { server 127.0.0.1:9002; }
server {
    listen 127.0.0.1:8080;
    server_name a.test;
    location /app/ { proxy_pass http://app; }
    location /other/ { proxy_pass http://other; client_max_body_size 10; }
    location = /status { stub_status; }
    location /nowhere/ { }
}
server {
    listen 127.0.0.1:8080;
    server_name b.test;
    location / { proxy_pass http://app; }
}
"""
CONN = ConnInfo(remote_addr="127.0.0.1", remote_port=40000, server_addr="127.0.0.1", server_port=8080)
SESSION = TLSInfo(protocol="TLSv1.3", cipher="X", server_name="a.test", client_s_dn="", client_verify="NONE")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("dispatch") / "proxy.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def decide(config: Config, target: bytes, *headers: tuple[bytes, bytes], **kw) -> Decision:
    head = RequestHead(b"GET", target, b"1.1", ((b"Host", b"a.test"), *headers))
    return prepare(
        config=config,
        router=Router(config),
        binding=config.bindings[0],
        conn=kw.pop("conn", CONN),
        tls=kw.pop("tls", None),
        head=head,
        pooled=kw.pop("pooled", {"app"}),
        plans=lambda location: header_plan(location, config),
    )


def test_a_proxied_location_forwards(config: Config) -> None:
    decision = decide(config, b"/app/x?y=1")
    assert isinstance(decision, Forward)
    assert decision.location.path == "/app/"
    assert decision.conn is CONN and decision.vars.conn is CONN
    assert decision.request.target == b"/app/x?y=1"
    assert decision.body is BodyFraming.NONE and not decision.has_body
    assert decision.body_limit == 1024 * 1024 and not decision.close_after


def test_keepalive_upstreams_are_asked_to_keep_the_connection(config: Config) -> None:
    pooled = decide(config, b"/app/").request.headers  # type: ignore[union-attr]
    unpooled = decide(config, b"/app/", pooled=set()).request.headers  # type: ignore[union-attr]
    assert (b"Connection", b"close") not in pooled
    assert (b"Connection", b"close") in unpooled


def test_an_upgrade_closes_the_connection_after_the_answer(config: Config) -> None:
    decision = decide(config, b"/app/", (b"Upgrade", b"websocket"), (b"Connection", b"upgrade"))
    assert isinstance(decision, Forward) and decision.close_after and decision.request.upgrade


def test_the_slash_redirect_is_an_answer_of_our_own(config: Config) -> None:
    decision = decide(config, b"/app?q=1")
    assert isinstance(decision, Respond)
    assert decision.status == 301 and decision.location is None
    assert decision.headers == ((b"Location", b"http://a.test:8080/app/?q=1"), (b"Content-Type", b"text/html"))
    assert decision.body == error_page(301)


def test_stub_status_is_a_status_page(config: Config) -> None:
    decision = decide(config, b"/status")
    assert isinstance(decision, StatusPage) and decision.location.path == "/status"


@pytest.mark.parametrize("target", [b"/unknown", b"/nowhere/x"])
def test_no_proxying_location_is_a_404(config: Config, target: bytes) -> None:
    decision = decide(config, target)
    assert isinstance(decision, Refuse)
    assert decision.error.status == 404 and decision.location is None
    assert decision.vars is not None and decision.vars.server is config.servers[0]  # its add_header


def test_a_bad_target_is_refused_before_routing(config: Config) -> None:
    decision = decide(config, b"/a/../../x")
    assert isinstance(decision, Refuse) and decision.error.status == 400 and decision.conn is CONN


def test_a_declared_body_over_the_limit_is_refused_inside_its_location(config: Config) -> None:
    decision = decide(config, b"/other/", (b"Content-Length", b"11"))
    assert isinstance(decision, Refuse)
    assert decision.error.status == 413 and decision.location is not None
    assert decision.vars is not None and decision.vars.location is decision.location  # its add_header


def test_a_body_within_the_limit_is_forwarded_with_its_length(config: Config) -> None:
    decision = decide(config, b"/other/", (b"Content-Length", b"10"))
    assert isinstance(decision, Forward) and decision.body == 10 and decision.has_body


def test_the_tls_session_joins_the_connection_once_its_rules_pass(config: Config) -> None:
    decision = decide(config, b"/app/", tls=SESSION)
    assert isinstance(decision, Forward) and decision.conn.tls is SESSION and decision.vars.conn.tls is SESSION


def test_a_host_other_than_the_handshakes_is_421_and_keeps_the_connection_as_it_was(config: Config) -> None:
    head = RequestHead(b"GET", b"/", b"1.1", ((b"Host", b"b.test"),))
    router = Router(config)
    decision = prepare(
        config=config, router=router, binding=config.bindings[0], conn=CONN, tls=SESSION, head=head, pooled=(),
        plans=lambda location: header_plan(location, config),
    )
    assert isinstance(decision, Refuse) and decision.error.status == 421 and decision.conn is CONN


def test_plain_http_on_the_tls_port_gets_the_connections_error(config: Config) -> None:
    error = RequestError(400, "plain HTTP")
    decision = decide(config, b"/app/", tls=error)
    assert isinstance(decision, Refuse) and decision.error is error


@pytest.mark.parametrize(
    ("headers", "framing"),
    [
        ((), BodyFraming.NONE),
        (((b"Content-Length", b"0"),), 0),
        (((b"Content-Length", b"7"),), 7),
        (((b"Transfer-Encoding", b"chunked"),), BodyFraming.CHUNKED),
    ],
)
def test_body_framing(headers: tuple, framing: object) -> None:
    assert body_framing(RequestHead(b"POST", b"/", b"1.1", headers)) == framing
