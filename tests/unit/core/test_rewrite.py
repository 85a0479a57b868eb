"""
The rewrite module per request (core.rewrite through core.dispatch.prepare):
the phases, the flags, ``if`` with an injected filesystem, ``set``, the
search limit, the URI sent upstream, and the ``rewrite_log`` lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from decide_support import decide_for
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Decision, Forward, Refuse, Respond
from wstunnel.core.rewrite import FileCheck, no_files

CONF = """
server {
    listen 127.0.0.1:8080;
    set $who world;
    rewrite ^/old/(.*)$ /new/$1 last;
    location /new/ { proxy_pass http://127.0.0.1:9001/x/; }
    location /b/ { rewrite ^/b/(.*)$ /c/$1 break; proxy_pass http://127.0.0.1:9001/x/; }
    location /keep/ { rewrite ^/keep/(.*)$ /keep/k/$1 break; proxy_pass http://127.0.0.1:9001; }
    location /v/ { rewrite ^/v/(.*)$ /w/$1 break; proxy_pass http://127.0.0.1:9001/$1; }
    location /empty { rewrite ^ ""; }
    location /loop { rewrite ^ /loop last; }
    location /if/ {
        if ($arg_b) { proxy_pass http://127.0.0.1:9002; }
        proxy_pass http://127.0.0.1:9001/plain/;
    }
    location /f {
        rewrite_log on;
        if (-f /srv/$arg_p) { return 200 "file"; }
        if (!-d /srv/$arg_p) { return 200 "not a dir"; }
        return 200 "dir";
    }
    location /who { return 200 "$who $unset"; }
    location /never { set $unset x; return 204; }
    location /req { rewrite ^/req(.*)$ /new$1 last; }
    location /q/ { rewrite ^/q/(.*)$ /new/q?v=$1 last; }
    location = /status { stub_status; }
}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("rewrite") / "proxy.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def decide(config: Config, target: bytes, files: FileCheck = no_files, notes: list[str] | None = None) -> Decision:
    notice = notes.append if notes is not None else lambda text: None
    return decide_for(config, target, files=files, notice=notice)


def sent(config: Config, target: bytes) -> bytes:
    decision = decide(config, target)
    assert isinstance(decision, Forward), decision
    return decision.request.target


def test_a_server_rewrite_runs_before_the_search(config: Config) -> None:
    assert sent(config, b"/old/a%20b?q=1") == b"/x/a%20b?q=1"


def test_break_sends_the_new_uri_whole_past_a_uri_part(config: Config) -> None:
    assert sent(config, b"/b/y?q=2") == b"/c/y?q=2"


def test_break_without_a_uri_part_sends_the_new_uri(config: Config) -> None:
    assert sent(config, b"/keep/z?a") == b"/keep/k/z?a"


def test_a_uri_part_with_variables_wins_after_break(config: Config) -> None:
    assert sent(config, b"/v/abc") == b"/abc"


def test_a_decoded_capture_cannot_break_the_request_line(config: Config) -> None:
    assert sent(config, b"/q/a%20b%0Dc%3F") == b"/x/q?v=a%20b%0Dc?"


def test_request_uri_stays_what_the_client_sent(config: Config) -> None:
    decision = decide(config, b"/req/x?y=1")
    assert isinstance(decision, Forward)
    assert decision.vars.get("request_uri") == "/req/x?y=1"
    assert (decision.vars.get("uri"), decision.vars.get("args")) == ("/new/x", "y=1")
    assert decision.location.path == "/new/"


def test_a_zero_length_uri_is_a_500(config: Config) -> None:
    decision = decide(config, b"/empty")
    assert isinstance(decision, Refuse) and decision.error.status == 500


def test_ten_searches_then_a_500(config: Config) -> None:
    decision = decide(config, b"/loop")
    assert isinstance(decision, Refuse) and decision.error.status == 500
    assert "rewrite or internal redirection cycle" in decision.error.detail


def test_a_true_if_serves_the_request_with_its_block(config: Config) -> None:
    through_if = decide(config, b"/if/x?b=1")
    plain = decide(config, b"/if/x")
    assert isinstance(through_if, Forward) and isinstance(plain, Forward)
    assert through_if.location.proxy_pass.upstream.name == "127.0.0.1:9002"
    assert through_if.request.target == b"/if/x?b=1"
    assert plain.request.target == b"/plain/x"


def test_file_tests_ask_the_injected_function(config: Config) -> None:
    asked: list[tuple[str, str]] = []

    def files(test: str, path: str) -> bool:
        asked.append((test, path))
        return path == "/srv/d" and test == "-d"

    answers = [decide(config, b"/f?p=" + name, files) for name in (b"a", b"d")]
    assert [a.body for a in answers if isinstance(a, Respond)] == [b"not a dir", b"dir"]
    assert asked == [("-f", "/srv/a"), ("-d", "/srv/a"), ("-f", "/srv/d"), ("-d", "/srv/d")]


def test_a_variable_read_before_its_set_is_empty(config: Config) -> None:
    answer = decide(config, b"/who")
    assert isinstance(answer, Respond) and answer.body == b"world "


def test_rewrite_log_is_off_by_default(config: Config) -> None:
    notes: list[str] = []
    decide(config, b"/old/z", notes=notes)
    assert notes == []


def test_rewrite_log_on_at_a_location(tmp_path: Path) -> None:
    path = tmp_path / "proxy.conf"
    path.write_text(
        "server {\nlisten 127.0.0.1:8080;\nrewrite_log on;\n"
        "location / { rewrite ^/a/(.*)$ /b/$1?x=1; rewrite ^/zz /q redirect; proxy_pass http://127.0.0.1:9001; }\n}\n"
    )
    config = load_config(str(path), resolve=lambda host, port: [host])
    notes: list[str] = []
    decide(config, b"/a/c?y=2", notes=notes)
    assert notes[:4] == [
        '"^/a/(.*)$" matches "/a/c"',
        'rewritten data: "/b/c", args: "x=1&y=2"',
        '"^/zz" does not match "/b/c"',
        '"^/a/(.*)$" does not match "/b/c"',
    ]


def test_a_status_page_still_answers_after_the_phases(config: Config) -> None:
    assert decide(config, b"/status").__class__.__name__ == "StatusPage"
