"""
Loading the upstream directives (server parameters, balancing methods,
proxy_next_upstream*) and log_format: values, inheritance and errors.
"""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config
from wstunnel.config.model import Balancing, NextUpstream, Peer, VarRef


def resolve(host, port):
    return {"two.test": ["10.0.0.1", "10.0.0.2"]}.get(host, [host])


@pytest.fixture
def load(tmp_path):
    return lambda text: load_config(write_config(tmp_path, text), resolve=resolve)


@pytest.fixture
def errors(tmp_path):
    return lambda text: config_errors(tmp_path, text, resolve=resolve)


def test_server_parameters_become_peer_fields(load):
    config = load(
        """
        upstream u {
            server 127.0.0.1:81 weight=5 max_fails=3 fail_timeout=30s max_conns=100;
            server two.test:82 down;
            server [::1]:83 backup;
            server unix:/run/app.sock weight=2;
        }
        """
    )
    assert config.upstreams["u"].peers == (
        Peer("127.0.0.1", 81, "127.0.0.1:81", weight=5, max_fails=3, fail_timeout=30.0, max_conns=100),
        Peer("10.0.0.1", 82, "two.test:82", down=True),
        Peer("10.0.0.2", 82, "two.test:82", down=True),
        Peer("::1", 83, "[::1]:83", backup=True),
        Peer("/run/app.sock", 0, "unix:/run/app.sock", weight=2, unix=True),
    )
    assert config.upstreams["u"].peers[-1].address == "unix:/run/app.sock"
    assert config.upstreams["u"].balancing == Balancing()


@pytest.mark.parametrize(
    "line, balancing",
    [
        ("least_conn;", Balancing("least_conn")),
        ("ip_hash;", Balancing("ip_hash")),
        ("random;", Balancing("random")),
        ("random two;", Balancing("random", two=True)),
        ("random two least_conn;", Balancing("random", two=True)),
    ],
)
def test_balancing_methods(load, line, balancing):
    config = load(f"upstream u {{\n {line}\n server 127.0.0.1;\n}}\n")
    assert config.upstreams["u"].balancing == balancing


def test_hash_key_is_a_compiled_template(load):
    config = load("upstream u {\n hash $remote_addr$uri consistent;\n server 127.0.0.1;\n}\n")
    balancing = config.upstreams["u"].balancing
    assert balancing.method == "hash" and balancing.consistent
    assert balancing.key.parts == (VarRef("remote_addr"), VarRef("uri"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("upstream u {\n server 127.0.0.1 weight=0;\n}\n", 'FILE:2: invalid parameter "weight=0"'),
        ("upstream u {\n server 127.0.0.1 weight=x;\n}\n", 'FILE:2: invalid parameter "weight=x"'),
        ("upstream u {\n server 127.0.0.1 max_fails=-1;\n}\n", 'FILE:2: invalid parameter "max_fails=-1"'),
        ("upstream u {\n server 127.0.0.1 fail_timeout=1x;\n}\n", 'FILE:2: invalid parameter "fail_timeout=1x"'),
        ("upstream u {\n server 127.0.0.1 max_conns=;\n}\n", 'FILE:2: invalid parameter "max_conns="'),
        ("upstream u {\n server 127.0.0.1 sticky;\n}\n", 'FILE:2: invalid parameter "sticky"'),
        ("upstream u {\n server 127.0.0.1 backup=1;\n}\n", 'FILE:2: invalid parameter "backup=1"'),
        ("upstream u {\n server 127.0.0.1 resolve;\n}\n",
         'FILE:2: upstream server parameter "resolve" is not supported by wstunnel'),
        ("upstream u {\n server 127.0.0.1 slow_start=10s;\n}\n",
         'FILE:2: upstream server parameter "slow_start=10s" is not supported by wstunnel'),
        ("upstream u {\n ip_hash;\n server 127.0.0.1;\n server 127.0.0.2 backup;\n}\n",
         'FILE:4: balancing method "ip_hash" does not support parameter "backup"'),
        ("upstream u {\n server 127.0.0.2 backup;\n hash $uri;\n}\n",
         'FILE:2: balancing method "hash" does not support parameter "backup"'),
        ("upstream u {\n least_conn;\n ip_hash;\n server 127.0.0.1;\n}\n",
         "FILE:3: load balancing method redefined (first at line 2)"),
        ("upstream u {\n ip_hash;\n ip_hash;\n server 127.0.0.1;\n}\n", 'FILE:3: "ip_hash" directive is duplicate'),
        ("upstream u {\n hash $uri ring;\n server 127.0.0.1;\n}\n", 'FILE:2: invalid parameter "ring"'),
        ("upstream u {\n hash $nosuch;\n server 127.0.0.1;\n}\n", 'FILE:2: unknown "nosuch" variable'),
        ("upstream u {\n random least_conn;\n server 127.0.0.1;\n}\n", 'FILE:2: invalid parameter "least_conn"'),
        ("upstream u {\n least_conn x;\n server 127.0.0.1;\n}\n",
         'FILE:2: invalid number of arguments in "least_conn" directive'),
        ("least_conn;\n", 'FILE:1: "least_conn" directive is not allowed here'),
    ],
)
def test_upstream_parameter_errors(errors, text, message):
    assert errors(text) == [message]


def test_next_upstream_defaults_and_inheritance(load):
    config = load(
        """
        proxy_next_upstream error timeout http_502 non_idempotent;
        server {
            proxy_next_upstream_tries 2;
            location /a { proxy_pass http://127.0.0.1; }
            location /b { proxy_pass http://127.0.0.1; proxy_next_upstream off; proxy_next_upstream_timeout 1500ms; }
        }
        server { listen 8001; location /c { proxy_pass http://127.0.0.1; } }
        """
    )
    a, b = config.servers[0].locations
    conditions = frozenset({"error", "timeout", "http_502", "non_idempotent"})
    assert a.next_upstream == NextUpstream(conditions, 2, 0.0)
    assert b.next_upstream == NextUpstream(frozenset(), 2, 1.5)
    assert config.servers[1].locations[0].next_upstream == NextUpstream(conditions, 0, 0.0)
    assert NextUpstream().conditions == {"error", "timeout"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("proxy_next_upstream error http_501;\n", 'FILE:1: invalid value "http_501" in "proxy_next_upstream" directive'),
        ("proxy_next_upstream_tries x;\n", 'FILE:1: "proxy_next_upstream_tries" directive invalid value'),
        ("proxy_next_upstream_timeout 1q;\n", 'FILE:1: "proxy_next_upstream_timeout" directive invalid value'),
        ("proxy_next_upstream error;\nproxy_next_upstream timeout;\n", 'FILE:2: "proxy_next_upstream" directive is duplicate'),
    ],
)
def test_next_upstream_errors(errors, text, message):
    assert errors(text) == [message]


def test_off_wins_as_in_nginx(load):
    config = load("proxy_next_upstream error off;\nserver { location / { proxy_pass http://127.0.0.1; } }\n")
    assert config.servers[0].locations[0].next_upstream.conditions == frozenset()


def test_log_format_is_compiled_and_usable_by_access_log(load):
    config = load(
        """
        log_format up escape=json '$remote_addr "$upstream_addr" '
                                  '$upstream_status $request_time';
        access_log /tmp/x.log up;
        server { location / { proxy_pass http://127.0.0.1; } }
        """
    )
    fmt = config.log_formats["up"]
    assert fmt.escape == "json"
    assert fmt.template.text == '$remote_addr "$upstream_addr" $upstream_status $request_time'
    assert set(config.log_formats) == {"combined", "up"}
    assert config.servers[0].locations[0].access_logs[0].format == "up"


@pytest.mark.parametrize(
    "text, message",
    [
        ("log_format combined '$status';\n", 'FILE:1: duplicate "log_format" name "combined"'),
        ("log_format a '$status';\nlog_format a '$status';\n", 'FILE:2: duplicate "log_format" name "a"'),
        ("log_format a escape=xml '$status';\n", 'FILE:1: unknown log format escaping "xml"'),
        ("log_format a escape=json;\n", 'FILE:1: invalid number of arguments in "log_format" directive'),
        ("log_format a '$bogus';\n", 'FILE:1: unknown "bogus" variable'),
        ("access_log /x later;\nlog_format later '$status';\n", 'FILE:1: unknown log format "later"'),
        ("server { log_format a '$status'; }\n", 'FILE:1: "log_format" directive is not allowed here'),
    ],
)
def test_log_format_errors(errors, text, message):
    assert errors(text) == [message]
