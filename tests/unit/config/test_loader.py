import ipaddress
import os
import re
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import ROOT, config_errors, write_config
from wstunnel.config import directives, servers
from wstunnel.config.loader import IGNORED_DIRECTIVES, load_config, resolve_host
from wstunnel.obs.logs import every_error_log
from wstunnel.config.model import AccessLog, Config, ConfigErrors, ErrorLog, Source, Template, Timeouts, VarRef

EXAMPLES = ROOT / "doc" / "examples"

FAKE_DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "backend.test": ["10.0.0.1", "10.0.0.2", "10.0.0.1"],
    "other.test": ["10.0.1.1"],
}


def fake_resolve(host, port):
    if host in FAKE_DNS:
        return list(dict.fromkeys(FAKE_DNS[host]))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    return [host]


@pytest.fixture
def write(tmp_path):
    return lambda text, name="nginx.conf": write_config(tmp_path, text, name)


@pytest.fixture
def load(write):
    def load(text, name="nginx.conf"):
        return load_config(write(text, name), resolve=fake_resolve)

    return load


@pytest.fixture
def errors(tmp_path):
    """Every error message of a config that must fail, with FILE replaced by its path."""
    return lambda text, name="nginx.conf": config_errors(tmp_path, text, name, resolve=fake_resolve)


def only_location(config: Config):
    (server,) = config.servers
    (location,) = server.locations
    return location


PROXY = """
server {
    listen 8080;
    location / {
        proxy_pass http://127.0.0.1:9000;
    }
}
"""

# -- the seed configurations ---------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["howto-chat.conf", "map-connection-upgrade.conf", "conf.d-websocket.conf", "nginx.conf"]
)
def test_seed_examples_load(name):
    config = load_config(str(EXAMPLES / name))
    assert config.bindings
    location = config.bindings[0].default.locations[0]
    assert location.proxy_pass is not None
    assert location.proxy_pass.upstream.peers
    assert location.http_version == "1.1"
    assert [h.name for h in location.set_headers][-2:] == ["Upgrade", "Connection"]


def test_howto_chat_example():
    config = load_config(str(EXAMPLES / "howto-chat.conf"))
    (binding,) = config.bindings
    assert (binding.host, binding.port) == ("127.0.0.1", 8080)
    location = binding.default.locations[0]
    assert (location.path, location.exact) == ("/chat/", False)
    assert location.proxy_pass.proxy_host == "backend"
    assert location.proxy_pass.uri is None
    assert [(h.name, h.value.text) for h in location.set_headers] == [
        ("Upgrade", "$http_upgrade"),
        ("Connection", "upgrade"),
    ]
    assert location.set_headers[1].value.is_literal


def test_map_example_defines_connection_upgrade():
    config = load_config(str(EXAMPLES / "map-connection-upgrade.conf"))
    mapdef = config.maps["connection_upgrade"]
    assert mapdef.source_template.parts == (VarRef("http_upgrade"),)
    assert {k: v.text for k, v in mapdef.exact.items()} == {"": "close"}
    assert mapdef.default.text == "upgrade"


def test_conf_d_example_is_a_snippet_with_an_upstream():
    config = load_config(str(EXAMPLES / "conf.d-websocket.conf"), resolve=fake_resolve)
    (binding,) = config.bindings
    assert (binding.host, binding.port) == ("0.0.0.0", 8080)
    assert binding.default.names == ("test.enzhico.net",)
    location = binding.default.locations[0]
    upstream = location.proxy_pass.upstream
    assert upstream.name == "websocket" and not upstream.implicit
    assert [(p.host, p.port, p.name) for p in upstream.peers] == [
        ("127.0.0.1", 8282, "localhost:8282"),
        ("::1", 8282, "localhost:8282"),
    ]
    assert location.timeouts == Timeouts(read=300.0, send=300.0)
    assert [h.name for h in location.set_headers] == [
        "Host", "X-Real-IP", "X-Forwarded-For", "Upgrade", "Connection",
    ]


def test_whole_nginx_conf_example():
    config = load_config(str(EXAMPLES / "nginx.conf"))
    assert config.error_logs == (ErrorLog("stderr", "info", Source(str(EXAMPLES / "nginx.conf"), 7)),)
    assert set(config.maps) == {"connection_upgrade"}
    assert set(config.upstreams) == {"backend"}


# -- whole file and snippet ----------------------------------------------------------


def test_whole_nginx_conf(load):
    config = load(
        """
        user www-data;
        worker_processes 4;
        pid /run/nginx.pid;
        error_log /var/log/wstunnel.log warn;
        events { worker_connections 768; multi_accept on; use epoll; }
        http {
            sendfile on;
            tcp_nopush on;
            tcp_nodelay on;
            types_hash_max_size 2048;
            include mime.types;
            default_type application/octet-stream;
            types { text/html html; }
            proxy_temp_path /tmp/proxy 1 2;
            client_body_temp_path /tmp/body;
        """
        + PROXY
        + "}\n"
    )
    assert config.error_logs == (ErrorLog("/var/log/wstunnel.log", "warn", Source(config.path, 4)),)
    assert only_location(config).proxy_pass.proxy_host == "127.0.0.1:9000"
    ignored = [n.split(": ", 1)[1] for n in config.notices]
    assert sorted(n.split(":", 1)[0] for n in ignored if "has no effect in wstunnel:" in n) == sorted(
        f'"{d}" has no effect in wstunnel'
        for d in ["sendfile", "tcp_nopush", "tcp_nodelay", "types_hash_max_size", "proxy_temp_path", "client_body_temp_path"]
    )
    assert sorted(n for n in ignored if "has no effect in wstunnel:" not in n) == sorted(
        f'directive "{d}" has no effect in wstunnel and is ignored'
        for d in ["user", "pid", "multi_accept", "use"]
    ) + ["mime.types not found, wstunnel's built-in copy of nginx 1.22's is used"]
    assert f'{config.path}:1: directive "user" has no effect in wstunnel and is ignored' in config.notices


def test_conf_d_snippet_mixes_main_and_http_directives(load):
    config = load("worker_processes auto;\nerror_log stderr;\nproxy_read_timeout 5s;\n" + PROXY)
    assert only_location(config).timeouts.read == 5.0
    assert config.error_logs == (ErrorLog("stderr", "error", Source(config.path, 2)),)


def test_server_at_top_level_of_a_whole_file_is_not_allowed(errors):
    assert errors("http {\n}\nserver {\n}\n") == ['FILE:3: "server" directive is not allowed here']


def test_empty_config_has_no_bindings(load):
    config = load("")
    assert config.bindings == () and config.servers == ()


# -- includes ------------------------------------------------------------------------


def test_include_is_relative_to_the_including_file(write, load):
    write("upstream backend { server 127.0.0.1:8000; }\n", "conf.d/sub/up.conf")
    write("include sub/up.conf;\nserver { location / { proxy_pass http://backend; } }\n", "conf.d/site.conf")
    config = load("http {\n    include conf.d/site.conf;\n}\n")
    assert only_location(config).proxy_pass.upstream.name == "backend"
    assert config.upstreams["backend"].source.file.endswith("conf.d/sub/up.conf")


def test_include_falls_back_to_the_main_file_directory(write, load):
    write("proxy_set_header X-Snippet yes;\n", "snippets/headers.conf")
    write("server { location / { include snippets/headers.conf; proxy_pass http://127.0.0.1; } }\n",
          "sites/default")
    config = load("http { include sites/*; }\n")
    assert [h.name for h in only_location(config).set_headers] == ["X-Snippet"]


def test_include_glob_is_sorted_and_may_match_nothing(write, load):
    write("server { listen 8002; }\n", "conf.d/b.conf")
    write("server { listen 8001; }\n", "conf.d/a.conf")
    write("not a config\n", "conf.d/readme.txt")
    config = load("http {\n include conf.d/*.conf;\n include empty.d/*.conf;\n}\n")
    assert [s.listens[0].port for s in config.servers] == [8001, 8002]


def test_include_may_appear_inside_a_map(write, load):
    write("websocket ws;\n", "keys.conf")
    config = load("map $http_upgrade $kind {\n include keys.conf;\n default plain;\n}\n")
    assert config.maps["kind"].exact["websocket"].text == "ws"


def test_include_lines_point_into_the_included_file(tmp_path, write, errors):
    write("# one\n# two\nflv;\n", "bad.conf")
    assert errors("include bad.conf;\n") == [f'{tmp_path}/bad.conf:3: "flv" is not supported by wstunnel']


def test_missing_include_names_the_file(write):
    path = write("# first line\ninclude nothere.conf;\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(path, resolve=fake_resolve)
    (error,) = info.value.errors
    assert error.source == Source(path, 2)
    assert error.message == f'open() "{os.path.dirname(path)}/nothere.conf" failed (No such file or directory)'


def test_include_mime_types_falls_back_to_the_built_in_table_when_missing(load):
    config = load("http {\n    include /nonexistent/mime.types;\n" + PROXY + "}\n")
    assert config.notices == (
        f"{config.path}:2: mime.types not found, wstunnel's built-in copy of nginx 1.22's is used",
    )


def test_include_cycle(tmp_path, write, errors):
    write("include nginx.conf;\n", "loop.conf")
    assert errors("include loop.conf;\n") == [f'{tmp_path}/loop.conf:1: include cycle: "FILE" includes itself']


def test_same_file_may_be_included_twice(write, load):
    write("proxy_set_header X-Common 1;\n", "common.conf")
    config = load(
        "server { location /a { include common.conf; proxy_pass http://127.0.0.1; }\n"
        "         location /b { include common.conf; proxy_pass http://127.0.0.1; } }\n"
    )
    assert [[h.name for h in loc.set_headers] for loc in config.servers[0].locations] == [["X-Common"]] * 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("include a b;\n", 'FILE:1: invalid number of arguments in "include" directive'),
        ("include a { }\n", 'FILE:1: directive "include" is not terminated by ";"'),
    ],
)
def test_include_syntax(errors, text, message):
    assert errors(text) == [message]


def test_missing_main_file():
    with pytest.raises(ConfigErrors) as info:
        load_config("/nonexistent/wstunnel.conf")
    assert [str(e) for e in info.value.errors] == [
        'open() "/nonexistent/wstunnel.conf" failed (No such file or directory)'
    ]


# -- syntax --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("server {\n    listen 80\n}\n", 'FILE:3: unexpected "}"'),
        ("server {\n    listen 80;\n", 'FILE:2: unexpected end of file, expecting "}"'),
        ("server {\n}\n}\n", 'FILE:3: unexpected "}"'),
        ("pid x;\n;\n", 'FILE:2: unexpected ";"'),
        ("{\n}\n", 'FILE:1: unexpected "{"'),
        ("events {}\nworker_processes 1", 'FILE:2: unexpected end of file, expecting ";" or "}"'),
    ],
)
def test_syntax_errors(errors, text, message):
    assert errors(text) == [message]


def test_comments_and_quotes(load):
    config = load(
        """
        # a comment
        server { # another
            listen "8080"; # trailing
            location '/a b/' { proxy_pass http://127.0.0.1; proxy_set_header "X-A" 'a;b # c'; }
        }
        """
    )
    location = only_location(config)
    assert location.path == "/a b/"
    assert location.set_headers[0].value.text == "a;b # c"


# -- the directive table -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("ssi on;\n", '"ssi" is not supported by wstunnel'),
        ("random_index on;\n", '"random_index" is not supported by wstunnel'),
        ("server {\n flv;\n}\n", '"flv" is not supported by wstunnel'),
        ("server {\n ssl_early_data on;\n}\n", '"ssl_early_data" is not supported by wstunnel'),
        ("server {\n location / {\n mirror /m;\n }\n}\n", '"mirror" is not supported by wstunnel'),
        ("upstream u {\n server 127.0.0.1;\n zone u 64k;\n}\n", '"zone" is not supported by wstunnel'),
        ("events {\n worker_aio_requests 1;\n}\n", '"worker_aio_requests" is not supported by wstunnel'),
        ("frobnicate 1;\n", 'unknown directive "frobnicate"'),
    ],
)
def test_unimplemented_directives_are_errors(errors, text, message):
    (error,) = errors(text)
    line = text[: text.index(message.split('"')[1])].count("\n") + 1
    assert error == f"FILE:{line}: {message}"


@pytest.mark.parametrize(
    "text, message",
    [
        ("server {\n proxy_pass http://a;\n}\n", 'FILE:2: "proxy_pass" directive is not allowed here'),
        ("proxy_pass http://a;\n", 'FILE:1: "proxy_pass" directive is not allowed here'),
        ("server {\n map $a $b { }\n}\n", 'FILE:2: "map" directive is not allowed here'),
        ("server {\n upstream u { server a; }\n}\n", 'FILE:2: "upstream" directive is not allowed here'),
        ("server {\n server { }\n}\n", 'FILE:2: "server" directive is not allowed here'),
        ("listen 80;\n", 'FILE:1: "listen" directive is not allowed here'),
        ("location / { }\n", 'FILE:1: "location" directive is not allowed here'),
        ("server {\n worker_processes 1;\n}\n", 'FILE:2: "worker_processes" directive is not allowed here'),
        ("server {\n events { }\n}\n", 'FILE:2: "events" directive is not allowed here'),
        ("worker_connections 5;\n", 'FILE:1: "worker_connections" directive is not allowed here'),
        ("http {\n pid x;\n}\n", 'FILE:2: "pid" directive is not allowed here'),
        ("events {\n proxy_read_timeout 5;\n}\n", 'FILE:2: "proxy_read_timeout" directive is not allowed here'),
        ("upstream u {\n server 127.0.0.1;\n proxy_pass http://a;\n}\n",
         'FILE:3: "proxy_pass" directive is not allowed here'),
        ("http {\n http { }\n}\n", 'FILE:2: "http" directive is not allowed here'),
    ],
)
def test_wrong_context(errors, text, message):
    assert errors(text) == [message]


@pytest.mark.parametrize(
    "text, message",
    [
        ("worker_processes;\n", 'invalid number of arguments in "worker_processes" directive'),
        ("worker_processes 1 2;\n", 'invalid number of arguments in "worker_processes" directive'),
        ("error_log a b c;\n", 'invalid number of arguments in "error_log" directive'),
        ("map $a { }\n", 'invalid number of arguments in "map" directive'),
        ("upstream { server a; }\n", 'invalid number of arguments in "upstream" directive'),
        ("server x { }\n", 'invalid number of arguments in "server" directive'),
        ("server { listen; }\n", 'invalid number of arguments in "listen" directive'),
        ("server { server_name; }\n", 'invalid number of arguments in "server_name" directive'),
        ("server { location { } }\n", 'invalid number of arguments in "location" directive'),
        ("server { location = / x { } }\n", 'invalid number of arguments in "location" directive'),
        ("server { location / { proxy_pass; } }\n", 'invalid number of arguments in "proxy_pass" directive'),
        ("server { location / { proxy_pass a b; } }\n", 'invalid number of arguments in "proxy_pass" directive'),
        ("proxy_http_version;\n", 'invalid number of arguments in "proxy_http_version" directive'),
        ("proxy_set_header X;\n", 'invalid number of arguments in "proxy_set_header" directive'),
        ("proxy_set_header X a b;\n", 'invalid number of arguments in "proxy_set_header" directive'),
        ("proxy_read_timeout 1 2;\n", 'invalid number of arguments in "proxy_read_timeout" directive'),
        ("send_timeout;\n", 'invalid number of arguments in "send_timeout" directive'),
        ("access_log;\n", 'invalid number of arguments in "access_log" directive'),
        ("upstream u { server; }\n", 'invalid number of arguments in "server" directive'),
        ("events { worker_connections; }\n", 'invalid number of arguments in "worker_connections" directive'),
        ("sendfile;\n", 'invalid number of arguments in "sendfile" directive'),
        ("events x { }\n", 'invalid number of arguments in "events" directive'),
    ],
)
def test_wrong_argument_count(errors, text, message):
    assert errors(text) == [f"FILE:1: {message}"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("server;\n", 'directive "server" has no opening "{"'),
        ("events;\n", 'directive "events" has no opening "{"'),
        ("map $a $b;\n", 'directive "map" has no opening "{"'),
        ("pid x { }\n", 'directive "pid" is not terminated by ";"'),
        ("proxy_read_timeout 5 { }\n", 'directive "proxy_read_timeout" is not terminated by ";"'),
        ("types;\n", 'directive "types" has no opening "{"'),
    ],
)
def test_block_or_not(errors, text, message):
    assert errors(text) == [f"FILE:1: {message}"]


@pytest.mark.parametrize(
    "text, line, name",
    [
        ("worker_processes 1;\nworker_processes 2;\n", 2, "worker_processes"),
        ("events { }\nevents { }\n", 2, "events"),
        ("http { }\nhttp { }\n", 2, "http"),
        ("events {\n worker_connections 1;\n worker_connections 2;\n}\n", 3, "worker_connections"),
        ("pid a;\npid b;\n", 2, "pid"),
        ("server { location / {\n proxy_pass http://127.0.0.1;\n proxy_pass http://127.0.0.2;\n} }\n", 3, "proxy_pass"),
        ("proxy_http_version 1.1;\nproxy_http_version 1.0;\n", 2, "proxy_http_version"),
        ("proxy_read_timeout 1;\nproxy_read_timeout 2;\n", 2, "proxy_read_timeout"),
        ("server {\n send_timeout 1;\n send_timeout 2;\n}\n", 3, "send_timeout"),
        ("sendfile on;\nsendfile off;\n", 2, "sendfile"),
    ],
)
def test_duplicates(errors, text, line, name):
    assert errors(text) == [f'FILE:{line}: "{name}" directive is duplicate']


def test_same_setting_at_different_levels_is_not_a_duplicate(load):
    config = load("proxy_read_timeout 1;\nserver {\n proxy_read_timeout 2;\n location / { proxy_read_timeout 3; } }\n")
    assert only_location(config).timeouts.read == 3.0


def test_every_mistake_is_reported(errors):
    assert errors(
        """
        flv;
        server {
            listen 80 backlog=0;
            location ~ \\.php($ { }
            location / {
                proxy_pass ftp://a;
                proxy_set_header X $nosuch;
            }
        }
        upstream u { server 127.0.0.1 weight=0; }
        """
    ) == [
        'FILE:1: "flv" is not supported by wstunnel',
        'FILE:3: invalid backlog "backlog=0"',
        'FILE:4: pcre2_compile() failed: missing ), unterminated subpattern at position 5 in "\\.php($"',
        'FILE:6: invalid URL prefix in "ftp://a"',
        'FILE:10: invalid parameter "weight=0"',
        'FILE:7: unknown "nosuch" variable',
    ]


def test_ignored_directive_list_is_published():
    assert {"pid", "user", "sendfile", "tcp_nopush", "tcp_nodelay", "proxy_temp_path"} <= IGNORED_DIRECTIVES
    assert "deny" not in IGNORED_DIRECTIVES


# -- main and events -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("worker_processes 0;\n", 'invalid value "0" in "worker_processes" directive'),
        ("worker_processes many;\n", 'invalid value "many" in "worker_processes" directive'),
        ("events { worker_connections -1; }\n", 'invalid value "-1" in "worker_connections" directive'),
        ("events { worker_connections 0; }\n", 'invalid value "0" in "worker_connections" directive'),
    ],
)
def test_worker_values(errors, text, message):
    assert errors(text) == [f"FILE:1: {message}"]


# -- error_log and access_log --------------------------------------------------------


def test_error_log_everywhere_with_levels(load):
    config = load(
        "error_log stderr;\nhttp {\n error_log logs/http.log debug;\n server {\n"
        " error_log /abs.log notice;\n location / { error_log stderr crit; } } }\n"
    )
    base = os.path.dirname(config.path)

    def listed(logs):
        return [(e.path, e.level, e.source.line) for e in logs]

    (server,) = config.servers
    assert listed(config.error_logs) == [("stderr", "error", 1)]
    assert listed(server.error_logs) == [("/abs.log", "notice", 5)]
    assert listed(server.locations[0].error_logs) == [("stderr", "crit", 6)]
    assert f"{base}/logs/http.log" not in [e.path for e in every_error_log(config)], "replaced at every level below"


def test_error_log_lists_are_inherited_whole_by_levels_without_one(load):
    config = load(
        "error_log stderr warn;\nhttp {\n error_log a.log info;\n error_log a.log debug;\n"
        " server { location /x { } location /y { error_log b.log; error_log c.log crit; } }\n"
        " server { listen 8081; error_log d.log; location / { } } }\n"
    )
    base = os.path.dirname(config.path)
    one, two = config.servers
    assert [(e.path, e.level) for e in config.error_logs] == [("stderr", "warn")]
    assert [(e.path, e.level) for e in one.error_logs] == [(f"{base}/a.log", "debug")], "one file once, lowest level"
    assert one.locations[0].error_logs == one.error_logs
    assert [(e.path, e.level) for e in one.locations[1].error_logs] == [(f"{base}/b.log", "error"),
                                                                       (f"{base}/c.log", "crit")]
    assert [e.path for e in two.locations[0].error_logs] == [f"{base}/d.log"]


def test_without_http_error_logs_requests_use_the_main_ones(load):
    config = load("error_log stderr info;\n" + PROXY)
    assert only_location(config).error_logs == config.error_logs


def test_error_log_default_is_stderr(load):
    config = load(PROXY)
    assert config.error_logs == (ErrorLog("stderr", "error", Source(config.path, 0)),)


@pytest.mark.parametrize(
    "text, message",
    [
        ("error_log stderr loud;\n", 'invalid log level "loud"'),
        ("error_log syslog:server=x;\n", '"syslog:" error logs are not supported by wstunnel'),
        ("error_log memory:32m debug;\n", '"memory:" error logs are not supported by wstunnel'),
        ("access_log off extra;\n", 'invalid parameter "extra"'),
        ("access_log /x main;\n", 'unknown log format "main"'),
        ("access_log /x combined buffer=32k;\n", 'access_log parameter "buffer=32k" is not supported by wstunnel'),
        ("access_log syslog:server=x;\n", '"syslog:" access logs are not supported by wstunnel'),
        ("access_log /var/log/$host.log;\n", "variables in access_log paths are not supported by wstunnel"),
    ],
)
def test_log_errors(errors, text, message):
    assert errors(text) == [f"FILE:1: {message}"]


def test_access_log_default_is_stdout_combined(load):
    config = load(PROXY)
    assert only_location(config).access_logs == (AccessLog("stdout", "combined", Source(config.path, 0)),)


def test_access_log_inheritance(load):
    config = load(
        """
        access_log /var/log/http.log;
        access_log logs/second.log combined;
        server {
            location /inherit { proxy_pass http://127.0.0.1; }
            location /own { access_log stdout; proxy_pass http://127.0.0.1; }
            location /off { access_log off; proxy_pass http://127.0.0.1; }
        }
        server {
            listen 8001;
            access_log off;
            location /offserver { proxy_pass http://127.0.0.1; }
            location /back { access_log stderr; proxy_pass http://127.0.0.1; }
        }
        """
    )
    base = os.path.dirname(config.path)
    inherit, own, off = config.servers[0].locations
    assert [(a.path, a.format, a.source.line) for a in inherit.access_logs] == [
        ("/var/log/http.log", "combined", 1),
        (f"{base}/logs/second.log", "combined", 2),
    ]
    assert [a.path for a in own.access_logs] == ["stdout"]
    assert off.access_logs == ()
    offserver, back = config.servers[1].locations
    assert offserver.access_logs == ()
    assert [a.path for a in back.access_logs] == ["stderr"]


# -- map -----------------------------------------------------------------------------


def test_map_keys(load):
    config = load(
        """
        map $http_x $m {
            default   fallback;
            ''        empty;
            WebSocket ws-$remote_addr;
            "quoted key" q;
            \\default  literal-default;
            \\~tilde  literal-tilde;
        }
        """
    )
    mapdef = config.maps["m"]
    assert mapdef.variable == "m"
    assert mapdef.source == Source(config.path, 1)
    assert {k: v.text for k, v in mapdef.exact.items()} == {
        "": "empty",
        "websocket": "ws-$remote_addr",
        "quoted key": "q",
        "default": "literal-default",
        "~tilde": "literal-tilde",
    }
    assert mapdef.exact["websocket"].parts == ("ws-", VarRef("remote_addr"))
    assert mapdef.default.text == "fallback"


def test_map_without_default_defaults_to_empty(load):
    config = load("map $http_x $m { a b; }\n")
    assert config.maps["m"].default == Template("", ("",))


def test_map_variable_name_is_lower_cased(load):
    config = load("map $http_x $Conn_Up { a b; }\nproxy_set_header C $conn_up;\n" + PROXY)
    assert "conn_up" in config.maps


def test_maps_may_be_used_before_they_are_defined_and_chain(load):
    config = load(
        "proxy_set_header C $outer;\n"
        + PROXY
        + "map $inner $outer { default x; }\nmap $http_upgrade $inner { default $remote_addr; }\n"
    )
    assert only_location(config).set_headers[0].value.parts == (VarRef("outer"),)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("map $a $b {\n default x;\n default y;\n}\n", 3, "duplicate default map parameter"),
        ("map $a $b {\n k x;\n K y;\n}\n", 3, 'conflicting parameter "k"'),
        ("map $a $b {\n k;\n}\n", 2, "invalid number of the map parameters"),
        ("map $a $b {\n k x y;\n}\n", 2, "invalid number of the map parameters"),
        ("map $a $b {\n k { }\n}\n", 2, "invalid number of the map parameters"),
        ("map $a b {\n}\n", 1, 'invalid variable name "b"'),
        ("map $a $b-c {\n}\n", 1, 'invalid variable name "$b-c"'),
        ("map $a $b {\n}\nmap $c $b {\n}\n", 3, 'the duplicate "b" variable'),
        ("map $a $host {\n}\n", 1, 'the duplicate "host" variable'),
        ("map $a $http_x {\n}\n", 1, 'the duplicate "http_x" variable'),
        ("map $nosuch $b {\n}\n", 1, 'unknown "nosuch" variable'),
        ("map $a $b {\n k $nosuch;\n}\n", 2, 'unknown "nosuch" variable'),
        ("map $a $b {\n default $nosuch;\n}\n", 2, 'unknown "nosuch" variable'),
        ("map $http_x $b {\n default $b;\n}\n", 1, "cycle in map variables: $b -> $b"),
        ("map $c $b {\n}\nmap $b $c {\n}\n", 1, "cycle in map variables: $b -> $c -> $b"),
    ],
)
def test_map_errors(errors, text, line, message):
    text = text.replace("map $a ", "map $http_a ")
    assert errors(text) == [f"FILE:{line}: {message}"]


# -- upstream ------------------------------------------------------------------------


def test_upstream_servers_resolve_to_peers(load):
    config = load(
        """
        upstream backend {
            server backend.test:8000;
            server [::1]:9000;
            server 192.0.2.7;
            server localhost:8282;
        }
        server { location / { proxy_pass http://backend/; } }
        """
    )
    upstream = config.upstreams["backend"]
    assert [(p.host, p.port, p.name, p.address) for p in upstream.peers] == [
        ("10.0.0.1", 8000, "backend.test:8000", "10.0.0.1:8000"),
        ("10.0.0.2", 8000, "backend.test:8000", "10.0.0.2:8000"),
        ("::1", 9000, "[::1]:9000", "[::1]:9000"),
        ("192.0.2.7", 80, "192.0.2.7", "192.0.2.7:80"),
        ("127.0.0.1", 8282, "localhost:8282", "127.0.0.1:8282"),
        ("::1", 8282, "localhost:8282", "[::1]:8282"),
    ]
    assert upstream.source == Source(config.path, 1) and not upstream.implicit
    proxy = only_location(config).proxy_pass
    assert proxy.upstream is upstream and proxy.uri == "/" and proxy.proxy_host == "backend"


def test_upstream_defined_after_use_and_in_an_included_file(write, load):
    write("upstream late { server 127.0.0.1:7000; }\n", "late.conf")
    config = load("server { location / { proxy_pass http://late; } }\ninclude late.conf;\n")
    assert only_location(config).proxy_pass.upstream.peers[0].port == 7000


def test_upstream_names_are_case_insensitive(load):
    config = load("upstream Backend { server 127.0.0.1; }\nserver { location / { proxy_pass http://backend; } }\n")
    assert only_location(config).proxy_pass.upstream.name == "Backend"
    assert set(config.upstreams) == {"Backend"}


def test_unused_upstreams_are_resolved_too(errors):
    assert errors("upstream u {\n server nowhere.test;\n}\n") == [
        'FILE:2: host not found in upstream "nowhere.test"'
    ]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("upstream u {\n}\n", 1, "no servers are inside upstream"),
        ("upstream u {\n server unix:;\n}\n", 2, 'no path in "unix:"'),
        ("upstream u {\n server a:99999;\n}\n", 2, 'invalid port in "a:99999"'),
        ("upstream u {\n server a:;\n}\n", 2, 'invalid port in "a:"'),
        ("upstream u {\n server ::1;\n}\n", 2, 'IPv6 address in "::1" must be written in brackets'),
        ("upstream u {\n server [::1;\n}\n", 2, 'invalid IPv6 address in "[::1"'),
        ("upstream u {\n server [zz]:80;\n}\n", 2, 'invalid IPv6 address in "[zz]:80"'),
        ("upstream u {\n server :80;\n}\n", 2, 'no host in ":80"'),
        ("upstream u {\n server a.test;\n}\n", 2, 'host not found in upstream "a.test"'),
        ("upstream u { server 127.0.0.1; }\nupstream U { server 127.0.0.1; }\n", 2, 'duplicate upstream "U"'),
    ],
)
def test_upstream_errors(errors, text, line, message):
    assert errors(text) == [f"FILE:{line}: {message}"]


# -- proxy_pass ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, name, peers, uri, proxy_host",
    [
        ("http://127.0.0.1:9000", "127.0.0.1:9000", [("127.0.0.1", 9000)], None, "127.0.0.1:9000"),
        ("http://127.0.0.1", "127.0.0.1", [("127.0.0.1", 80)], None, "127.0.0.1"),
        ("http://127.0.0.1:80/", "127.0.0.1:80", [("127.0.0.1", 80)], "/", "127.0.0.1"),
        ("http://backend.test:8080/app/", "backend.test:8080", [("10.0.0.1", 8080), ("10.0.0.2", 8080)],
         "/app/", "backend.test:8080"),
        ("HTTP://[::1]:8080/x?y=1", "[::1]:8080", [("::1", 8080)], "/x?y=1", "[::1]:8080"),
        ("http://localhost?x", "localhost", [("127.0.0.1", 80), ("::1", 80)], "?x", "localhost"),
    ],
)
def test_proxy_pass_implicit_upstreams(load, url, name, peers, uri, proxy_host):
    config = load(f"server {{\n location / {{\n proxy_pass {url};\n }}\n}}\n")
    proxy = only_location(config).proxy_pass
    assert proxy.scheme == "http"
    assert proxy.upstream.implicit and proxy.upstream.name == name
    assert [(p.host, p.port) for p in proxy.upstream.peers] == peers
    assert proxy.uri == uri and proxy.proxy_host == proxy_host
    assert proxy.source == Source(config.path, 3) == proxy.upstream.source
    assert config.upstreams[name] is proxy.upstream


def test_implicit_upstream_is_shared(load):
    config = load(
        "server {\n location /a { proxy_pass http://127.0.0.1:9000; }\n"
        " location /b { proxy_pass http://127.0.0.1:9000/b/; }\n location /c { } }\n"
    )
    a, b, c = config.servers[0].locations
    assert a.proxy_pass.upstream is b.proxy_pass.upstream
    assert c.proxy_pass is None


@pytest.mark.parametrize(
    "url, message",
    [
        ("$scheme://a", 'variables in "proxy_pass" are not supported by wstunnel'),
        ("https://$host", 'variables in an "https" proxy_pass are not supported by wstunnel'),
        ("ftp://a", 'invalid URL prefix in "ftp://a"'),
        ("127.0.0.1:80", 'invalid URL prefix in "127.0.0.1:80"'),
        ("http://", 'no host in ""'),
        ("http:///x", 'no host in ""'),
        ("http://a:0", 'invalid port in "a:0"'),
        ("http://a:http", 'invalid port in "a:http"'),
        ("http://unix:/tmp/s:/", "unix domain sockets are not supported by wstunnel"),
        ("http://u:p@a/", 'user information in "http://u:p@a/" is not supported'),
        ("http://backend:8080", 'upstream "backend" may not have port 8080'),
        ("http://backend:80/", 'upstream "backend" may not have port 80'),
        ("http://nowhere.test:81", 'host not found in upstream "nowhere.test:81"'),
    ],
)
def test_proxy_pass_errors(errors, url, message):
    text = f"upstream backend {{ server 127.0.0.1; }}\nserver {{\n location / {{\n proxy_pass {url};\n }}\n}}\n"
    assert errors(text) == [f"FILE:4: {message}"]


# -- proxy_http_version, proxy_set_header, timeouts -------------------------------------


def test_proxy_http_version_default_and_inheritance(load):
    config = load(
        "proxy_http_version 1.0;\nserver {\n location /a { proxy_pass http://127.0.0.1; }\n"
        " location /b { proxy_http_version 1.1; proxy_pass http://127.0.0.1; } }\n"
        "server { listen 8001; location /c { } }\n"
    )
    a, b = config.servers[0].locations
    assert (a.http_version, b.http_version) == ("1.0", "1.1")
    assert load(PROXY).servers[0].locations[0].http_version == "1.1"


def test_proxy_http_version_values(errors):
    assert errors("proxy_http_version 2;\n") == [
        'FILE:1: invalid value "2" in "proxy_http_version" directive, it must be "1.0" or "1.1"'
    ]


def test_proxy_set_header_all_or_nothing_inheritance(load):
    config = load(
        """
        proxy_set_header X-Http-Level 1;
        proxy_set_header X-Http-Two 2;
        server {
            location /inherits-http { }
        }
        server {
            listen 8001;
            proxy_set_header X-Srv $server_name;
            location /inherits-server { }
            location /own { proxy_set_header X-Loc $host; }
            location /cleared { proxy_set_header X-Srv ""; }
        }
        """
    )
    names = [[h.name for h in loc.set_headers] for s in config.servers for loc in s.locations]
    assert names == [["X-Http-Level", "X-Http-Two"], ["X-Srv"], ["X-Loc"], ["X-Srv"]]
    cleared = config.servers[1].locations[2].set_headers[0]
    assert cleared.value == Template("", ("",)) and cleared.source == Source(config.path, 11)
    inherited = config.servers[1].locations[0].set_headers[0]
    assert inherited.value.parts == (VarRef("server_name"),) and inherited.source.line == 8


def test_inherited_header_lists_are_shared_objects(load):
    config = load("proxy_set_header A 1;\nserver {\n location /a { }\n location /b { } }\n")
    a, b = config.servers[0].locations
    assert a.set_headers is b.set_headers


@pytest.mark.parametrize(
    "text, message",
    [
        ('proxy_set_header "X Y" 1;\n', 'invalid header name "X Y"'),
        ('proxy_set_header "" 1;\n', 'invalid header name ""'),
        ('proxy_set_header X: 1;\n', 'invalid header name "X:"'),
        ('proxy_set_header X "a\nb";\n', 'invalid value for header "X": CR, LF and NUL are not allowed'),
        ("proxy_set_header X $nosuch;\n", 'unknown "nosuch" variable'),
        ('proxy_set_header X "${host";\n', 'the closing bracket in "host" variable is missing'),
    ],
)
def test_proxy_set_header_errors(errors, text, message):
    assert errors(text) == [f"FILE:1: {message}"]


def test_timeouts_inherit_one_by_one(load):
    config = load(
        """
        proxy_connect_timeout 5s;
        proxy_read_timeout 1h;
        server {
            proxy_send_timeout 500ms;
            send_timeout 2m;
            location / {
                proxy_read_timeout 30;
            }
            location /b { }
        }
        """
    )
    a, b = config.servers[0].locations
    assert a.timeouts == Timeouts(connect=5.0, read=30.0, send=0.5, client_send=120.0)
    assert b.timeouts == Timeouts(connect=5.0, read=3600.0, send=0.5, client_send=120.0)
    assert load(PROXY).servers[0].locations[0].timeouts == Timeouts()


@pytest.mark.parametrize("name", ["proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout", "send_timeout"])
def test_timeout_errors(errors, name):
    assert errors(f"{name} 5x;\n") == [f'FILE:1: "{name}" directive invalid time value "5x"']


# -- server, listen, server_name, location -------------------------------------------


@pytest.mark.parametrize(
    "listen, host, port",
    [
        ("8080", "0.0.0.0", 8080),
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("*:8080", "0.0.0.0", 8080),
        ("[::]:8080", "::", 8080),
        ("[::1]", "::1", 80),
        ("127.0.0.2", "127.0.0.2", 80),
        ("other.test:81", "10.0.1.1", 81),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("0", "0.0.0.0", 0),
    ],
)
def test_listen_forms(load, listen, host, port):
    config = load(f"server {{\n listen {listen};\n}}\n")
    (binding,) = config.bindings
    assert (binding.host, binding.port) == (host, port)
    assert config.servers[0].listens[0].source == Source(config.path, 2)


def test_listen_host_name_with_several_addresses(load):
    config = load("server { listen localhost:8080; }\n")
    assert [(b.host, b.port) for b in config.bindings] == [("127.0.0.1", 8080), ("::1", 8080)]


@pytest.mark.parametrize(
    "listen, message",
    [
        ("80 http3", 'invalid parameter "http3"'),
        ("80 rcvbuf=1k", '"listen" parameter "rcvbuf=1k" is not supported by wstunnel'),
        ("80 default_server fastopen=x", 'invalid fastopen "fastopen=x"'),
        ("80 backlog=10k", 'invalid backlog "backlog=10k"'),
        ("127.0.0.1:65536", 'invalid port in "127.0.0.1:65536" of the "listen" directive'),
        ("65536", 'invalid port in "65536" of the "listen" directive'),
        ("a:b", 'invalid port in "a:b" of the "listen" directive'),
        ("::1", 'IPv6 address in "::1" must be written in brackets of the "listen" directive'),
        ("unix:/tmp/s", "unix domain sockets are not supported by wstunnel"),
        ("nowhere.test:80", 'host not found in "nowhere.test:80" of the "listen" directive'),
    ],
)
def test_listen_errors(errors, listen, message):
    assert errors(f"server {{\n listen {listen};\n}}\n") == [f"FILE:2: {message}"]


@pytest.mark.parametrize("euid, port", [(0, 80), (1000, 8000)])
def test_default_listen_follows_nginx(load, monkeypatch, euid, port):
    monkeypatch.setattr(servers.os, "geteuid", lambda: euid)
    config = load("server {\n}\n")
    (listen,) = config.servers[0].listens
    assert (listen.host, listen.port, listen.default_server) == ("0.0.0.0", port, False)
    assert listen.source == Source(config.path, 1)


def test_bindings_group_servers_and_pick_defaults(load):
    config = load(
        """
        server { listen 8080; server_name a; }
        server { listen 8080; listen 127.0.0.1:8081 default_server; server_name b; }
        server { listen 8080 default_server; listen 127.0.0.1:8081; server_name c; }
        server { listen [::]:8080 default; server_name d; }
        """
    )
    a, b, c, d = config.servers
    assert [(x.host, x.port, x.default, x.servers) for x in config.bindings] == [
        ("0.0.0.0", 8080, c, (a, b, c)),
        ("127.0.0.1", 8081, b, (b, c)),
        ("::", 8080, d, (d,)),
    ]
    assert d.listens[0].default_server


def test_first_server_is_the_default_without_default_server(load):
    config = load("server { listen 8080; server_name a; }\nserver { listen 8080; server_name b; }\n")
    assert config.bindings[0].default.names == ("a",)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("server {\n listen 80 default_server;\n}\nserver {\n listen 80 default_server;\n}\n", 5,
         "a duplicate default server for 0.0.0.0:80"),
        ("server {\n listen [::]:80 default_server;\n}\nserver {\n listen [::]:80 default_server;\n}\n", 5,
         "a duplicate default server for [::]:80"),
        ("server {\n listen 80;\n listen *:80;\n}\n", 3, "a duplicate listen 0.0.0.0:80"),
    ],
)
def test_binding_errors(errors, text, line, message):
    assert errors(text) == [f"FILE:{line}: {message}"]


def test_server_names(load):
    config = load(
        "server { server_name Example.COM www.example.com; server_name *.Example.org _ \"\"; }\nserver { listen 8001; }\n"
    )
    assert config.servers[0].names == ("example.com", "www.example.com", "*.example.org", "_", "")
    assert config.servers[0].name == "example.com"
    assert config.servers[1].names == ("",)


@pytest.mark.parametrize(
    "name, message",
    [
        ("~^www\\d+", 'regular expression server names are not supported by wstunnel: "~^www\\d+"'),
        (".example.com", 'server name ".example.com" is not supported by wstunnel (only exact names and "*.suffix")'),
        ("www.example.*", 'server name "www.example.*" is not supported by wstunnel (only exact names and "*.suffix")'),
        ("w*.example.com", 'server name "w*.example.com" is not supported by wstunnel (only exact names and "*.suffix")'),
        ("*.*.example.com", 'server name "*.*.example.com" is not supported by wstunnel (only exact names and "*.suffix")'),
        ("$hostname", 'variables in "server_name" are not supported by wstunnel: "$hostname"'),
    ],
)
def test_server_name_errors(errors, name, message):
    assert errors(f"server {{\n server_name ok {name};\n}}\n") == [f"FILE:2: {message}"]


def test_locations(load):
    config = load(
        """
        server {
            location / { }
            location = / { }
            location =/exact { }
            location /chat/ { }
        }
        """
    )
    assert [(loc.path, loc.exact, loc.source.line) for loc in config.servers[0].locations] == [
        ("/", False, 2), ("/", True, 3), ("/exact", True, 4), ("/chat/", False, 5),
    ]


@pytest.mark.parametrize(
    "location, message",
    [
        ("!= /x", 'invalid location modifier "!="'),
    ],
)
def test_location_errors(errors, location, message):
    assert errors(f"server {{\n location {location} {{ }}\n}}\n") == [f"FILE:2: {message}"]


def test_nested_and_duplicate_locations(errors):
    assert errors(
        "server {\n location /a {\n  location /b { }\n }\n location /a { }\n location = /a { }\n"
        " location = /a { }\n}\n"
    ) == [
        'FILE:3: location "/b" is outside location "/a"',
        'FILE:5: duplicate location "/a"',
        'FILE:7: duplicate location "/a"',
    ]


# -- resolving -----------------------------------------------------------------------


def test_resolve_host_uses_the_system_resolver_for_literals():
    assert resolve_host("127.0.0.1", 80) == ["127.0.0.1"]
    assert resolve_host("::1", 80) == ["::1"]


def test_default_resolver_is_used(write):
    config = load_config(write("server { location / { proxy_pass http://127.0.0.1:9; } }\n"))
    assert config.servers[0].locations[0].proxy_pass.upstream.peers[0].address == "127.0.0.1:9"


# -- fuzzing: any statement list loads or fails with located ConfigErrors ------------

WORDS = ["server", "location", "listen", "proxy_pass", "map", "upstream", "http", "events",
         "proxy_set_header", "access_log", "error_log", "include", "deny", "types", "/", "=",
         "80", "8080", "http://127.0.0.1", "http://backend", "$host", "$nosuch", "''", "off",
         "default", "1s", "x"]


def statements(depth=2):
    word = st.sampled_from(WORDS)
    leaf = st.tuples(word, st.lists(word, max_size=3)).map(lambda t: f"{t[0]} {' '.join(t[1])};")
    if depth == 0:
        return leaf
    block = st.tuples(word, st.lists(word, max_size=2), st.lists(statements(depth - 1), max_size=3)).map(
        lambda t: f"{t[0]} {' '.join(t[1])} {{ {' '.join(t[2])} }}"
    )
    return st.one_of(leaf, block)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(statements(), max_size=5))
def test_fuzzed_configs_load_or_report_located_errors(write, monkeypatch, stmts):
    monkeypatch.setattr(servers.os, "geteuid", lambda: 1000)
    path = write("\n".join(stmts) + "\n")
    try:
        config = load_config(path, resolve=fake_resolve)
    except ConfigErrors as exc:
        assert exc.errors
        for error in exc.errors:
            assert error.source is not None and error.source.line >= 1, str(error)
            assert str(error).startswith(f"{error.source.file}:{error.source.line}: ")
    else:
        assert isinstance(config, Config)


def test_reference_documents_every_directive_and_ignored_directive():
    reference = (EXAMPLES.parent / "configuration.md").read_text()
    for name in set(directives.TABLE) | set(directives.UPSTREAM_TABLE) | IGNORED_DIRECTIVES:
        assert re.search(rf"(`|### |, |/ ){re.escape(name)}\b", reference), name
