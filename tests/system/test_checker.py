"""
The configuration checker: what ``--check`` reports on a file (every error
in one pass, the notices of directives wstunnel accepts without needing them,
nginx's directive names) and the ``--dump`` of the configuration read.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from crossplane.analyzer import DIRECTIVES as CROSSPLANE_DIRECTIVES

from nginx_support import find_nginx
from support import config_errors, write_config
from twistd_support import run_twistd
from wstunnel.__main__ import main
from wstunnel.config import tuning
from wstunnel.config.dump import dump
from wstunnel.config.directives import EXTENSIONS, IGNORED_DIRECTIVES, TABLE, UPSTREAM_TABLE
from wstunnel.config.loader import load_config
from wstunnel.config.nginx_names import NGINX_DIRECTIVES
from wstunnel.config.tuning import INSTEAD

NGINX_T_TIMEOUT = 10.0  # seconds nginx -t may take

PROXY = """\
server {
    listen 127.0.0.1:8080;
    location / {
        proxy_pass http://127.0.0.1:9000;
    }
}
"""

COMMENT_BETWEEN_ARGUMENTS = """\
server {
    listen 127.0.0.1:8080   # the address
        default_server;
    location / {
        proxy_set_header X-Mark   # a comment where a value would be
            on;
        proxy_pass http://127.0.0.1:9000;
    }
}
"""


def nginx_test(tmp_path: Path, http_body: str) -> subprocess.CompletedProcess:
    """``nginx -t`` on a whole nginx.conf whose ``http`` block holds ``http_body``."""
    root = tmp_path / "nginx"
    root.mkdir()
    temp = "".join(
        f"{name}_temp_path {root / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        if not re.search(f"^{name}_temp_path", http_body, re.MULTILINE)  # given at http level by the test
    )
    conf = root / "nginx.conf"
    conf.write_text(
        f"pid {root / 'nginx.pid'};\nerror_log {root / 'error.log'};\nevents {{}}\n"
        f"http {{\naccess_log off;\n{temp}{http_body}}}\n"
    )
    return subprocess.run(
        [find_nginx(), "-t", "-p", str(root), "-c", str(conf), "-e", "stderr"],
        capture_output=True, text=True, timeout=NGINX_T_TIMEOUT, check=False,
    )


# -- comments between arguments ------------------------------------------------------


def test_a_comment_between_arguments_is_a_comment(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, COMMENT_BETWEEN_ARGUMENTS))
    (server,) = config.servers
    assert server.listens[0].default_server
    (location,) = server.locations
    assert [(h.name, h.value.text) for h in location.set_headers if h.name == "X-Mark"] == [("X-Mark", "on")]


def test_nginx_also_reads_a_comment_between_arguments_as_a_comment(tmp_path: Path) -> None:
    result = nginx_test(tmp_path, COMMENT_BETWEEN_ARGUMENTS)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_a_quoted_hash_is_still_a_directive_name(tmp_path: Path) -> None:
    assert config_errors(tmp_path, '"#" x;\n' + PROXY) == ['FILE:1: unknown directive "#"']


# -- buffering, caching and tuning: accepted with a notice ---------------------------

TUNING_LINES = [
    "proxy_buffering off;",
    "proxy_request_buffering off;",
    "proxy_buffers 8 16k;",
    "proxy_busy_buffers_size 32k;",
    "proxy_max_temp_file_size 0;",
    "proxy_temp_file_write_size 64k;",
    "client_body_temp_path body 1 2;",
    "proxy_cache off;",
    "proxy_cache_bypass $http_upgrade;",
    "proxy_cache_valid 200 302 10m;",
    "proxy_cache_lock_timeout 5s;",
    "proxy_cache_min_uses 2;",
    "proxy_no_cache $http_pragma $http_authorization;",
    "sendfile on;",
    "tcp_nopush on;",
    "tcp_nodelay off;",
    "types_hash_max_size 2048;",
    "proxy_headers_hash_bucket_size 128;",
    "open_file_cache max=1000 inactive=20s;",
    "open_file_cache_valid 30s;",
    "reset_timedout_connection on;",
    "chunked_transfer_encoding on;",
    "keepalive_disable msie6 safari;",
]


def in_location(line: str) -> str:
    """A server whose one location holds ``line`` on line 4."""
    return (
        f"server {{\n    listen 127.0.0.1:8080;\n    location / {{\n        {line}\n"
        "        proxy_pass http://127.0.0.1:9000;\n    }\n}\n"
    )


def location_with(tmp_path: Path, line: str) -> str:
    return write_config(tmp_path, in_location(line))


@pytest.mark.parametrize("line", TUNING_LINES)
def test_tuning_directives_load_in_a_location_with_one_notice(tmp_path: Path, line: str) -> None:
    path = location_with(tmp_path, line)
    name = line.split()[0]
    config = load_config(path)
    assert config.notices == (f'{path}:4: "{name}" has no effect in wstunnel: {INSTEAD[name]}',)


HTTP_ONLY_TUNING_LINES = [
    "server_names_hash_bucket_size 128;",
    "map_hash_max_size 4096;",
    "variables_hash_bucket_size 128;",
    "proxy_cache_path cache levels=1:2 keys_zone=one:10m;",
]


def test_nginx_accepts_the_tuning_lines_where_wstunnel_does(tmp_path: Path) -> None:
    in_nginx = "\n".join(HTTP_ONLY_TUNING_LINES) + "\n" + in_location("\n        ".join(TUNING_LINES))
    result = nginx_test(tmp_path, in_nginx)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("line", HTTP_ONLY_TUNING_LINES)
def test_http_only_tuning_directives(tmp_path: Path, line: str) -> None:
    name = line.split()[0]
    path = write_config(tmp_path, f"http {{\n    {line}\n{PROXY}}}\n")
    assert load_config(path).notices == (f'{path}:2: "{name}" has no effect in wstunnel: {INSTEAD[name]}',)
    assert config_errors(tmp_path, in_location(line)) == [
        f'FILE:4: "{name}" directive is not allowed here'
    ]


def test_a_published_websocket_config_with_proxy_buffering_off_loads(tmp_path: Path) -> None:
    """The shape of Gradio's documented nginx config: its ``proxy_buffering off`` is what wstunnel does anyway."""
    path = write_config(
        tmp_path,
        """\
        server {
            listen 127.0.0.1:8080;
            server_name example.com;
            location /gradio-demo/ {
                proxy_pass http://127.0.0.1:7860/;
                proxy_buffering off;
                proxy_redirect off;
                proxy_http_version 1.1;
                proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection "upgrade";
                proxy_set_header Host $host;
                proxy_set_header X-Forwarded-Host $host;
                proxy_set_header X-Forwarded-Proto $scheme;
            }
        }
        """,
    )
    assert [n.split(": ", 1)[0] for n in load_config(path).notices] == [f"{path}:6"]


def test_every_tuning_directive_has_its_notice_and_only_those() -> None:
    tuning_names = {name for name, entry in TABLE.items() if entry.handler in tuning.HANDLERS}
    assert tuning_names == set(INSTEAD)
    assert tuning_names <= IGNORED_DIRECTIVES
    assert not tuning_names & {"proxy_pass", "proxy_set_header", "add_header", "deny", "gzip", "expires"}


BAD_TUNING = [
    "sendfile maybe;",
    "proxy_buffers 0 4k;",
    "proxy_buffers 8 abc;",
    "proxy_busy_buffers_size x;",
    "types_hash_max_size 1k;",
    "proxy_cache_lock_age x;",
    "open_file_cache_min_uses x;",
    "proxy_temp_path /tmp/a x;",
    "keepalive_disable chrome;",
    "proxy_buffering;",
    "tcp_nodelay on off;",
]


@pytest.mark.parametrize("line", BAD_TUNING)
def test_tuning_arguments_are_checked_with_nginx_words(tmp_path: Path, line: str) -> None:
    (ours,) = config_errors(tmp_path, f"http {{\n{line}\n{PROXY}}}\n")
    result = nginx_test(tmp_path, f"{line}\n")
    assert result.returncode == 1
    theirs = re.search(r"\[emerg\] [^:]*: (.*) in \S+:\d+$", result.stderr, re.MULTILINE)
    assert theirs is not None, result.stderr
    assert ours == f"FILE:2: {theirs.group(1)}"


def test_chunked_transfer_encoding_off_stays_an_error(tmp_path: Path) -> None:
    assert config_errors(tmp_path, in_location("chunked_transfer_encoding off;")) == [
        'FILE:4: "chunked_transfer_encoding off" is not supported by wstunnel: '
        "a response of unknown length to an HTTP/1.1 client is always sent chunked"
    ]


def test_a_tuning_directive_given_twice_is_a_duplicate(tmp_path: Path) -> None:
    assert config_errors(tmp_path, f"http {{\nsendfile on;\nsendfile off;\n{PROXY}}}\n") == [
        'FILE:3: "sendfile" directive is duplicate'
    ]


def test_python_m_wstunnel_check_prints_the_notice(tmp_path: Path, capsys) -> None:
    path = location_with(tmp_path, "proxy_buffering off;")
    with pytest.raises(SystemExit) as caught:
        main(["--check", "-c", path])
    assert caught.value.code == 0
    assert capsys.readouterr().err.splitlines() == [
        f'wstunnel: [notice] {path}:4: "proxy_buffering" has no effect in wstunnel: {INSTEAD["proxy_buffering"]}',
        f"wstunnel: configuration file {path} test is successful",
    ]


def test_twistd_check_prints_the_notice(twistd: str, tmp_path: Path) -> None:
    path = location_with(tmp_path, "proxy_request_buffering off;")
    result = run_twistd(twistd, tmp_path, "wstunnel", "--check", "--config", path)
    assert (result.returncode, result.stdout) == (0, "")
    (notice, _) = result.stderr.splitlines()
    assert notice.startswith(f'wstunnel: [notice] {path}:4: "proxy_request_buffering" has no effect in wstunnel: ')


# -- nginx's directive names -----------------------------------------------------------


@pytest.mark.parametrize("name", ["proxy_cookie_flags", "ssl_reject_handshake", "keepalive_time", "js_import", "http2"])
def test_recent_nginx_directives_are_known_by_name(name: str) -> None:
    assert name in NGINX_DIRECTIVES


@pytest.mark.parametrize("name", ["ssl_reject_handshake", "proxy_pass_trailers", "js_import", "auth_delay"])
def test_a_real_nginx_directive_is_not_supported_rather_than_unknown(tmp_path: Path, name: str) -> None:
    assert config_errors(tmp_path, f"http {{\n{name} on;\n}}\n") == [f'FILE:2: "{name}" is not supported by wstunnel']


def test_every_directive_wstunnel_takes_from_nginx_is_in_the_list() -> None:
    assert set(TABLE) | set(UPSTREAM_TABLE) <= NGINX_DIRECTIVES | EXTENSIONS
    assert not EXTENSIONS & NGINX_DIRECTIVES


def test_the_list_keeps_every_name_crossplane_knows_but_the_removed_ones() -> None:
    removed = {"spdy_chunk_size", "spdy_headers_comp", "upstream_conf", "proxy_protocol_timeout"}
    assert set(CROSSPLANE_DIRECTIVES) - removed <= NGINX_DIRECTIVES


# -- every error in one pass -----------------------------------------------------------


def test_the_inside_of_a_refused_location_is_checked(tmp_path: Path) -> None:
    assert config_errors(
        tmp_path,
        """\
        server {
            listen 127.0.0.1:8080;
            location ~ \\.php($ {
                frobnicate on;
                proxy_pass http://127.0.0.1:9000;
                location ~* \\.inc$ {
                    sendfile maybe;
                }
            }
            location / {
                proxy_pass http://127.0.0.1:9000;
                flv;
            }
        }
        """,
    ) == [
        'FILE:3: pcre2_compile() failed: missing ), unterminated subpattern at position 5 in "\\.php($"',
        'FILE:4: unknown directive "frobnicate"',
        'FILE:7: invalid value "maybe" in "sendfile" directive, it must be "on" or "off"',
        'FILE:12: "flv" is not supported by wstunnel',
    ]


def test_the_inside_of_refused_blocks_of_every_kind_is_checked(tmp_path: Path) -> None:
    assert config_errors(
        tmp_path,
        """\
        http {
            server {
                listen 127.0.0.1:8080;
                if (bad) {
                    rewrite ^ /x foo;
                }
                location = /a b c {
                    proxy_pass http://127.0.0.1:9000;
                    proxy_buffering maybe;
                }
                upstream inner {
                    server 127.0.0.1:9000 weight=0;
                }
                map $uri $x {
                    ~frobnicate 1;
                }
            }
        }
        server {
            listen 127.0.0.1:8081;
            proxy_pass http://127.0.0.1:9000;
        }
        """,
    ) == [
        'FILE:4: invalid condition "bad"',
        'FILE:5: invalid parameter "foo"',
        'FILE:7: invalid number of arguments in "location" directive',
        'FILE:9: invalid value "maybe" in "proxy_buffering" directive, it must be "on" or "off"',
        'FILE:11: "upstream" directive is not allowed here',
        'FILE:12: invalid parameter "weight=0"',
        'FILE:14: "map" directive is not allowed here',
        'FILE:19: "server" directive is not allowed here',
        'FILE:21: "proxy_pass" directive is not allowed here',
    ]


def test_check_prints_every_error_once_and_fails(tmp_path: Path, capsys) -> None:
    path = write_config(
        tmp_path,
        "server {\n    listen 127.0.0.1:8080;\n    location ~ ^/(ws {\n        ssi on;\n"
        "        proxy_cache_valid;\n    }\n}\n",
    )
    with pytest.raises(SystemExit) as caught:
        main(["--check", "-c", path])
    assert caught.value.code == f"wstunnel: configuration file {path} test failed"
    assert capsys.readouterr().err.splitlines() == [
        f'{path}:3: pcre2_compile() failed: missing ), unterminated subpattern at position 2 in "^/(ws"',
        f'{path}:4: "ssi" is not supported by wstunnel',
        f'{path}:5: invalid number of arguments in "proxy_cache_valid" directive',
    ]


# -- --dump: the configuration read, includes expanded ----------------------------------

DUMPED_MAIN = """\
events { worker_connections 64; }
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    include conf.d/*.conf;
    include mime.types;
    proxy_read_timeout 1h;
}
"""

DUMPED_SITE = """\
upstream backend { server 127.0.0.1:9000; }
server {
    listen 127.0.0.1:8080;   # the public side
    location /chat/ {
        proxy_pass http://backend;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-Odd "a;b # c {d}";
        proxy_buffering off;
    }
}
"""


def write_dumped_config(tmp_path: Path) -> str:
    write_config(tmp_path, DUMPED_SITE, "conf.d/site.conf")
    return write_config(tmp_path, DUMPED_MAIN)


def test_dump_expands_includes_under_nginx_headers(tmp_path: Path) -> None:
    path = write_dumped_config(tmp_path)
    text = dump(path)
    site = str(tmp_path / "conf.d" / "site.conf")
    assert [line for line in text.splitlines() if "configuration file" in line] == [
        f"# configuration file {path}:",
        f"    # configuration file {site}:",
        f"    # configuration file {path}:",
    ]
    assert not re.search(r"^\s*include ", text, re.MULTILINE)
    assert "        proxy_set_header X-Odd 'a;b # c {d}';\n" in text


def test_a_dump_loads_as_the_same_configuration(tmp_path: Path) -> None:
    path = write_dumped_config(tmp_path)
    again = tmp_path / "dumped.conf"
    again.write_text(dump(path))
    original, dumped = load_config(path), load_config(str(again))
    assert dumped.maps["connection_upgrade"].exact == original.maps["connection_upgrade"].exact
    assert dumped.upstreams["backend"].peers == original.upstreams["backend"].peers
    ((before,),), ((after,),) = ([s.locations for s in c.servers] for c in (original, dumped))
    assert [(h.name, h.value.text) for h in after.set_headers] == [(h.name, h.value.text) for h in before.set_headers]
    assert (after.path, after.timeouts) == (before.path, before.timeouts)
    assert len(dumped.notices) == len(original.notices) - 1  # include mime.types is not in the dump


@pytest.mark.parametrize("flag", ["--dump", "-T"])
def test_dump_option_checks_then_prints_on_stdout(tmp_path: Path, capsys, flag: str) -> None:
    path = write_dumped_config(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main([flag, "--check", "-c", path] if flag == "--dump" else [flag, "-c", path])
    assert caught.value.code == 0
    out, err = capsys.readouterr()
    assert out == dump(path)
    assert err.splitlines()[-1] == f"wstunnel: configuration file {path} test is successful"


def test_a_bad_configuration_is_not_dumped(tmp_path: Path, capsys) -> None:
    path = write_config(tmp_path, "ssi on;\n")
    with pytest.raises(SystemExit) as caught:
        main(["--dump", "-c", path])
    assert caught.value.code == f"wstunnel: configuration file {path} test failed"
    assert capsys.readouterr().out == ""


def test_twistd_dump(twistd: str, tmp_path: Path) -> None:
    path = write_dumped_config(tmp_path)
    result = run_twistd(twistd, tmp_path, "wstunnel", "-T", "--config", path)
    assert (result.returncode, result.stdout) == (0, dump(path))
