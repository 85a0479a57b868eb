"""
core.redirect through core.dispatch.prepare: one count of internal
redirects for a request however it is redirected (rewrite ... last,
try_files, a named location, index), ten allowed and the eleventh a 500;
``$request_uri`` stays the client's while the target moves on.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from decide_support import decide_for, redirect_chain
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Decision, Forward, Refuse, Respond, ServeFile
from wstunnel.core.redirect import MAX_REDIRECTS


CONF = """
server {
    listen 127.0.0.1:8080;
    root /srv;
    location /loop/ { try_files /none @app; }
    location @app { rewrite ^ /loop/again last; }
    location /named/ { try_files /none @named; }
    location @named { try_files /none @named; }
    location /files/ { try_files /none /kept/page.txt; }
    location /kept/ { }
    location /args/ { try_files /none /p/?q=$uri; }
    location /p/ { proxy_pass http://127.0.0.1:9; }
    %s
    %s
}
""" % (redirect_chain("ten", MAX_REDIRECTS), redirect_chain("eleven", MAX_REDIRECTS + 1))


class Disk:
    """One file, /srv/kept/page.txt."""

    def stat(self, path: str) -> os.stat_result:
        if path != "/srv/kept/page.txt":
            raise FileNotFoundError(2, "No such file or directory")
        return os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, 5, 0, 1_700_000_000, 0))

    def listdir(self, path: str) -> list[str]:
        return []


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("redirect") / "redirect.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def decide(config: Config, target: bytes) -> Decision:
    return decide_for(config, target, host=b"r.test", fs=Disk())


def test_try_files_into_a_rewrite_and_back_is_one_count_that_ends_in_a_500(config: Config) -> None:
    decision = decide(config, b"/loop/x")
    assert isinstance(decision, Refuse) and decision.error.status == 500
    assert "cycle" in decision.error.detail
    assert decision.vars is not None and decision.vars.redirects == MAX_REDIRECTS + 1


def test_a_named_location_that_names_itself_ends_in_a_500(config: Config) -> None:
    decision = decide(config, b"/named/x")
    assert isinstance(decision, Refuse) and decision.error.status == 500


def test_ten_mixed_redirects_are_allowed_and_the_eleventh_is_a_500(config: Config) -> None:
    reached = decide(config, b"/ten0?a=b")
    assert isinstance(reached, Respond) and reached.status == 200
    assert reached.body == b"reached /ten10 /ten0?a=b"
    stuck = decide(config, b"/eleven0")
    assert isinstance(stuck, Refuse) and stuck.error.status == 500


def test_a_try_files_jump_keeps_the_clients_request_uri_and_moves_the_target(config: Config) -> None:
    served = decide(config, b"/files/x?q=1")
    assert isinstance(served, ServeFile) and served.path == "/srv/kept/page.txt"
    assert served.vars.get("request_uri") == "/files/x?q=1"
    assert served.vars.get("uri") == "/kept/page.txt"
    assert served.vars.target.request_uri == "/kept/page.txt?q=1"
    assert served.vars.redirects == 1


def test_arguments_a_redirect_makes_never_carry_a_byte_a_request_line_cannot(config: Config) -> None:
    decision = decide(config, b"/args/a%20b%0D%0AX:%20y")
    assert isinstance(decision, Forward), decision
    assert decision.request.target == b"/p/?q=/args/a%20b%0D%0AX:%20y"
