"""
core.dispatch's short path for a location that only proxies
(``Location.proxies_only``): the same Forward as nginx's phases give, which
the same location with an ``allow all`` (an access check, so every phase
runs) shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Forward, Refuse, Respond
from tests.decide_support import decide_for

LOCATIONS = """
    location /plain/ { proxy_pass http://app; proxy_set_header X-U $uri; proxy_set_header X-A $arg_a; EXTRA }
    location ~ ^/re/(?<rest>.*)$ { proxy_pass http://app/$1?r=$rest; EXTRA }
    location /internal/ { internal; proxy_pass http://app; EXTRA }
"""
CONF = """
upstream app { server 127.0.0.1:9001; keepalive 4; }
server {
    listen 127.0.0.1:8080;
    server_name a.test;
    root /srv;
LOCATIONS
}
"""


def _load(tmp_path: Path, extra: str) -> Config:
    path = tmp_path / "proxy.conf"
    path.write_text(CONF.replace("LOCATIONS", LOCATIONS.replace("EXTRA", extra)))
    return load_config(str(path), resolve=lambda host, port: [host])


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Config]:
    short = _load(tmp_path_factory.mktemp("short"), "")
    phases = _load(tmp_path_factory.mktemp("phases"), "allow all;")
    return short, phases


def test_the_short_path_is_taken_only_without_the_access_check(configs: tuple[Config, Config]) -> None:
    short, phases = configs
    assert [location.proxies_only for location in short.servers[0].locations] == [True, True, False]
    assert not any(location.proxies_only for location in phases.servers[0].locations)


@pytest.mark.parametrize("target", [b"/plain/x?a=1", b"/plain/%41b/../c", b"/re/one/two?q=2"])
def test_a_location_that_only_proxies_forwards_as_every_phase_would(
    configs: tuple[Config, Config], target: bytes
) -> None:
    short, phases = configs
    fast, slow = decide_for(short, target), decide_for(phases, target)
    assert isinstance(fast, Forward) and isinstance(slow, Forward)
    assert fast.request == slow.request
    assert (fast.location.path, fast.body, fast.body_limit, fast.close_after) == (
        slow.location.path, slow.body, slow.body_limit, slow.close_after
    )
    assert fast.vars.location is fast.location


def test_what_the_short_path_leaves_to_the_phases_is_answered_as_before(configs: tuple[Config, Config]) -> None:
    short, _ = configs
    redirect = decide_for(short, b"/plain")
    assert isinstance(redirect, Respond) and redirect.status == 301
    internal = decide_for(short, b"/internal/x")
    assert isinstance(internal, Refuse) and internal.error.status == 404
