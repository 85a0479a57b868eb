"""``return`` at server and location level: the decision each form gets (core.dispatch.prepare)."""

from __future__ import annotations

from pathlib import Path

import pytest

from decide_support import decide_for
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config, ConfigErrors
from wstunnel.core.dispatch import Close, Decision, Forward, Respond
from wstunnel.wire.errors import error_page

CONF = """
server {
    listen 127.0.0.1:8080;
    server_name redirect.test;
    return 301 https://$host$request_uri;
    location / { proxy_pass http://127.0.0.1:9001; }
}
server {
    listen 127.0.0.1:8080;
    server_name a.test;
    location /ok { return 200 "ok $uri"; }
    location /rel { return 302 /elsewhere; }
    location /nf { return 404; }
    location /gone { return 410 "gone"; }
    location /empty { return 204; }
    location /close { return 444; }
    location /url { return https://example.test/; }
    location /scheme { return $scheme://x.test$uri; }
    location /first { return 201 a; return 202 b; }
    location /page { return 418 "tea"; stub_status; }
    location ~ ^/cap/(\\w+) { return 200 $1; }
    location /args { return 302 https://x.test$uri$is_args$query_string; }
    location /app { proxy_pass http://127.0.0.1:9001; }
}
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "proxy.conf"
    path.write_text(text)
    return load_config(str(path), resolve=lambda host, port: [host])


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load(tmp_path_factory.mktemp("return"), CONF)


def decide(config: Config, target: bytes, host: bytes = b"a.test") -> Decision:
    return decide_for(config, target, host=host)


def respond(config: Config, target: bytes, host: bytes = b"a.test") -> Respond:
    decision = decide(config, target, host)
    assert isinstance(decision, Respond)
    return decision


def test_a_server_return_answers_before_any_location(config: Config) -> None:
    answer = respond(config, b"/a?b=1", b"redirect.test")
    assert answer.status == 301 and answer.location is None
    assert dict(answer.headers)[b"Location"] == b"https://redirect.test/a?b=1"
    assert answer.body == error_page(301)


def test_a_code_with_text_sends_the_rendered_text(config: Config) -> None:
    answer = respond(config, b"/ok/x")
    assert (answer.status, answer.body) == (200, b"ok /ok/x")
    assert answer.headers == ((b"Content-Type", b"text/plain"),)
    assert answer.location is not None and answer.location.path == "/ok"
    assert respond(config, b"/gone").body == b"gone"


def test_a_relative_redirect_is_made_absolute(config: Config) -> None:
    answer = respond(config, b"/rel")
    assert answer.status == 302
    assert dict(answer.headers)[b"Location"] == b"http://a.test:8080/elsewhere"


def test_a_bare_code_gets_its_page_from_400_and_an_empty_body_below(config: Config) -> None:
    answer = respond(config, b"/nf")
    assert (answer.status, answer.body) == (404, error_page(404))
    assert respond(config, b"/empty").body == b""


def test_444_closes_without_an_answer(config: Config) -> None:
    decision = decide(config, b"/close")
    assert isinstance(decision, Close) and decision.location is not None


def test_a_url_alone_is_a_302(config: Config) -> None:
    assert dict(respond(config, b"/url").headers)[b"Location"] == b"https://example.test/"
    answer = respond(config, b"/scheme/y")
    assert (answer.status, dict(answer.headers)[b"Location"]) == (302, b"http://x.test/scheme/y")


def test_is_args_and_query_string_rebuild_the_query(config: Config) -> None:
    assert dict(respond(config, b"/args?a=1").headers)[b"Location"] == b"https://x.test/args?a=1"
    assert dict(respond(config, b"/args").headers)[b"Location"] == b"https://x.test/args"


def test_the_first_return_of_a_level_is_the_one_that_runs(config: Config) -> None:
    assert respond(config, b"/first").status == 201


def test_return_runs_before_a_status_page(config: Config) -> None:
    assert respond(config, b"/page").status == 418


def test_captures_reach_the_text(config: Config) -> None:
    assert respond(config, b"/cap/word").body == b"word"


def test_a_location_without_return_still_forwards(config: Config) -> None:
    assert isinstance(decide(config, b"/app"), Forward)


def test_controls_in_a_redirect_are_escaped(config: Config) -> None:
    answer = respond(config, b"/a%0d%0aSet-Cookie:x", b"redirect.test")
    assert dict(answer.headers)[b"Location"] == b"https://redirect.test/a%0d%0aSet-Cookie:x"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("return abc;", 'invalid return code "abc"'),
        ("return 1000;", 'invalid return code "1000"'),
        ("return /x;", 'invalid return code "/x"'),
        ('return 200 "$nope";', 'unknown "nope" variable'),
    ],
)
def test_bad_returns_fail_at_their_line(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, f"server {{\n    listen 127.0.0.1:8080;\n    {line}\n}}\n")
    assert message in str(caught.value) and "proxy.conf:3" in str(caught.value)


def test_return_is_not_allowed_at_http_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match='"return" directive is not allowed here'):
        load(tmp_path, "http {\n    return 200;\n    server { listen 127.0.0.1:8080; }\n}\n")
