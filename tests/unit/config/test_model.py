"""config.model's values worked out at load: what a location needs per request."""

from __future__ import annotations

from pathlib import Path

import pytest

from wstunnel.config.loader import load_config
from wstunnel.config.model import Location

CONF = """
upstream app { server 127.0.0.1:9001; }
limit_req_zone $binary_remote_addr zone=z:1m rate=10r/s;
server {
    listen 127.0.0.1:8080;
    root /srv;
    location /plain/ { proxy_pass http://app; proxy_set_header X-A $uri; add_header X-B 1; }
    location ~ ^/re/(.*)$ { proxy_pass http://app/$1; }
    location /rewrites/ { rewrite ^ /plain/ break; proxy_pass http://app; }
    location /allow/ { allow 127.0.0.1; proxy_pass http://app; }
    location /except/ { limit_except GET { deny all; } proxy_pass http://app; }
    location /auth/ { auth_request /check; proxy_pass http://app; }
    location /files/ { }
    location /internal/ { internal; proxy_pass http://app; }
    location /status { stub_status; }
    location /intercept/ { proxy_intercept_errors on; proxy_pass http://app; }
    location /rate/ { limit_rate 10k; proxy_pass http://app; }
    location /limited/ { limit_req zone=z; proxy_pass http://app; }
    location /gzip/ { gzip on; proxy_pass http://app; }
}
"""


@pytest.fixture(scope="module")
def locations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Location]:
    path: Path = tmp_path_factory.mktemp("model") / "proxy.conf"
    path.write_text(CONF)
    config = load_config(str(path), resolve=lambda host, port: [host])
    return {location.path: location for location in config.servers[0].locations}


def test_a_location_that_only_proxies_is_known_at_load(locations: dict[str, Location]) -> None:
    only = {path for path, location in locations.items() if location.proxies_only}
    assert only == {"/plain/", "^/re/(.*)$", "/intercept/", "/rate/", "/limited/", "/gzip/"}


def test_a_location_whose_answers_pass_as_they_come_is_known_at_load(locations: dict[str, Location]) -> None:
    plain = {path for path, location in locations.items() if location.relays_plainly}
    assert not plain & {"/intercept/", "/rate/", "/limited/", "/gzip/"}
    assert {"/plain/", "^/re/(.*)$", "/allow/"} <= plain
