"""limit_conn_zone, limit_req_zone and their directives read into RateLimits, with nginx's inheritance and errors."""

from __future__ import annotations

from pathlib import Path

from support import config_errors, load_text

ZONES = """
limit_conn_zone $binary_remote_addr zone=addr:1m;
limit_req_zone $binary_remote_addr zone=one:64k rate=30r/m sync;
"""


def locations(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    config = load_text(tmp_path / "t.conf", ZONES + body)
    return {loc.path: loc.limits for loc in config.servers[0].locations}


def test_zones_are_sized_in_states_and_rates_in_milli_requests(tmp_path: Path) -> None:
    found = locations(tmp_path, """
        server { listen 127.0.0.1:8080;
            location / { limit_conn addr 3; limit_req zone=one burst=5 delay=2; proxy_pass http://127.0.0.1:9; }
        }""")
    limits = found["/"]
    (zone, number), = limits.conns
    assert (zone.name, zone.slots, number) == ("addr", 16384, 3)
    (bucket, burst, delay), = limits.reqs
    assert (bucket.name, bucket.slots, bucket.rate, burst, delay) == ("one", 512, 500, 5000, 2000)
    assert limits.conn_status == limits.req_status == 503


def test_lists_inherit_all_or_nothing_and_scalars_one_by_one(tmp_path: Path) -> None:
    found = locations(tmp_path, """
        limit_conn addr 10;
        limit_conn_status 429;
        server { listen 127.0.0.1:8080;
            limit_req zone=one nodelay;
            location / { proxy_pass http://127.0.0.1:9; }
            location /tight { limit_conn addr 1; limit_req_status 444; proxy_pass http://127.0.0.1:9; }
            location /quiet { limit_conn_dry_run on; wstunnel_tunnel_rate 64k; proxy_pass http://127.0.0.1:9; }
        }""")
    assert [n for _, n in found["/"].conns] == [10] and found["/"].reqs[0][2] == -1
    assert [n for _, n in found["/tight"].conns] == [1]
    assert (found["/tight"].conn_status, found["/tight"].req_status) == (429, 444)
    assert found["/quiet"].conn_dry_run and found["/quiet"].tunnel_rate == 65536
    assert found["/quiet"].conns == found["/"].conns


def test_a_location_under_no_limit_has_none(tmp_path: Path) -> None:
    found = locations(tmp_path, "server { listen 127.0.0.1:8080; location / { proxy_pass http://127.0.0.1:9; } }")
    assert found["/"] is None


def test_a_zone_may_be_named_before_it_is_declared(tmp_path: Path) -> None:
    config = load_text(tmp_path / "t.conf", """
        server { listen 127.0.0.1:8080; location / { limit_conn late 1; proxy_pass http://127.0.0.1:9; } }
        limit_conn_zone $remote_addr zone=late:32k;""")
    assert config.servers[0].locations[0].limits.conns[0][0].name == "late"


def test_bad_limits_fail_at_their_line_with_the_directive(tmp_path: Path) -> None:
    errors = config_errors(tmp_path, """http {
        limit_conn_zone $remote_addr zone=small:16k;
        limit_conn_zone $remote_addr zone=addr:1m;
        limit_conn_zone $remote_addr zone=addr:1m;
        limit_req_zone $remote_addr zone=addr:1m rate=1r/s;
        limit_req_zone $remote_addr zone=r:1m rate=1r/h;
        limit_req_zone $remote_addr zone=r2:1m;
        server { listen 127.0.0.1:8080;
            limit_conn nowhere 1;
            limit_conn addr 0;
            limit_conn_status 302;
            limit_req_log_level debug;
            location / { limit_req zone=r burst=x; limit_conn addr 1; limit_conn addr 2; proxy_pass http://127.0.0.1:9; }
        }
    }""")
    assert errors == [
        'FILE:2: zone "small" is too small',
        'FILE:4: limit_conn_zone "addr" is already bound to key "$remote_addr"',
        'FILE:5: the shared memory zone "addr" is already declared for a different use',
        'FILE:6: invalid rate "rate=1r/h"',
        'FILE:7: invalid number of arguments in "limit_req_zone" directive',
        'FILE:10: invalid number of connections "0"',
        'FILE:11: value must be between 400 and 599 in "limit_conn_status" directive',
        'FILE:12: invalid value "debug" in "limit_req_log_level" directive',
        'FILE:13: invalid burst value "burst=x"',
        'FILE:13: "limit_conn" directive is duplicate',
        'FILE:9: unknown limit_conn_zone "nowhere"',
    ]
