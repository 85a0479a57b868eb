"""auth_request in core.dispatch and core.access: the subrequest as a decision, the verdict from its answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from wstunnel.config.loader import load_config
from wstunnel.config.model import Config, ConfigErrors
from wstunnel.core.dispatch import Authorize, Decision, Forward, Refuse, Respond, prepare
from wstunnel.core.headers import header_plan
from wstunnel.core.routing import Router
from wstunnel.wire.request import ConnInfo, RequestHead

CONF = """
server {
    listen 127.0.0.1:8080;
    location / {
        auth_request /auth;
        auth_request_set $who "$upstream_http_x_user/$upstream_status/$uri";
        proxy_set_header X-Who $who;
        proxy_pass http://127.0.0.1:9001;
    }
    location = /auth { proxy_pass http://127.0.0.1:9002/check; proxy_set_header X-Uri $request_uri; }
    location /any/ { satisfy any; allow 127.0.0.2; deny all; auth_request /auth; proxy_pass http://127.0.0.1:9001; }
    location /ret/ { auth_request /no; proxy_pass http://127.0.0.1:9001; }
    location = /no { return 401; }
}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("auth") / "proxy.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def decide(config: Config, target: bytes, client: str = "127.0.0.5", *headers: tuple[bytes, bytes]) -> Decision:
    head = RequestHead(b"POST", target, b"1.1", ((b"Host", b"a.test"), (b"Content-Length", b"3"), *headers))
    return prepare(
        config=config,
        router=Router(config),
        binding=config.bindings[0],
        conn=ConnInfo(remote_addr=client, remote_port=1, server_addr="127.0.0.1", server_port=8080),
        tls=None,
        head=head,
        pooled=(),
        plans=lambda location: header_plan(location, config),
    )


def test_the_subrequest_is_a_bodiless_get_with_the_request_headers(config: Config) -> None:
    decision = decide(config, b"/app?x=1", "127.0.0.5", (b"Cookie", b"s=1"), (b"Upgrade", b"websocket"))
    assert isinstance(decision, Authorize)
    sub = decision.subrequest
    assert isinstance(sub, Forward) and sub.location.path == "/auth" and not sub.has_body
    request = sub.request
    assert request.method == b"GET" and request.target == b"/check"
    sent = dict(request.headers)
    assert sent[b"Cookie"] == b"s=1" and sent[b"X-Uri"] == b"/app?x=1"
    assert b"Content-Length" not in sent and b"Upgrade" not in sent


def test_a_2xx_verdict_sets_the_variables_and_forwards(config: Config) -> None:
    decision = decide(config, b"/app")
    assert isinstance(decision, Authorize)
    after = decision.verdict(204, ((b"X-User", b"alice"),))
    assert isinstance(after, Forward) and after.request.method == b"POST"
    assert dict(after.request.headers)[b"X-Who"] == b"alice/204//app"


@pytest.mark.parametrize(
    "status, headers, expected, challenge",
    [
        (401, ((b"WWW-Authenticate", b"Bearer"),), 401, b"Bearer"),
        (401, (), 401, None),
        (403, (), 403, None),
        (302, (), 500, None),
        (101, (), 500, None),
        (504, (), 500, None),
    ],
)
def test_other_verdicts(config: Config, status: int, headers, expected: int, challenge: bytes | None) -> None:
    decision = decide(config, b"/app")
    assert isinstance(decision, Authorize)
    after = decision.verdict(status, headers)
    if isinstance(after, Respond):
        assert (after.status, dict(after.headers).get(b"WWW-Authenticate")) == (expected, challenge)
    else:
        assert isinstance(after, Refuse) and (after.error.status, challenge) == (expected, None)


def test_satisfy_any_skips_the_subrequest_for_an_allowed_address(config: Config) -> None:
    assert isinstance(decide(config, b"/any/", "127.0.0.2"), Forward)
    decision = decide(config, b"/any/", "127.0.0.5")
    assert isinstance(decision, Authorize)
    after = decision.verdict(403, ())
    assert isinstance(after, Refuse) and after.error.status == 403


def test_a_location_that_answers_itself_is_the_subrequest(config: Config) -> None:
    decision = decide(config, b"/ret/")
    assert isinstance(decision, Authorize)
    assert isinstance(decision.subrequest, Respond) and decision.subrequest.status == 401


@pytest.mark.parametrize(
    "line, message",
    [
        ("auth_request auth;", 'invalid URI "auth" in "auth_request" directive'),
        ("auth_request_set user $x;", 'invalid variable name "user"'),
        ("auth_request_set $u $nosuch;", 'unknown "nosuch" variable'),
    ],
)
def test_mistakes(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "nginx.conf"
    path.write_text(f"server {{\nlisten 127.0.0.1:8080;\n{line}\n}}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_config(str(path), resolve=lambda host, port: [host])
    assert [str(e) for e in caught.value.errors] == [f"{path}:3: {message}"]
