"""
The configuration checker: what ``--check`` reports on a file (every error
in one pass, the notices of directives wstunnel accepts without needing them,
nginx's directive names) and the ``--dump`` of the configuration read.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nginx_support import find_nginx
from support import config_errors, write_config
from wstunnel.config.loader import load_config

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
    temp = "".join(f"{name}_temp_path {root / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
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
