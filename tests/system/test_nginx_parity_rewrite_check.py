"""
``nginx -t`` as the oracle for the rewrite module's directives (issue 13):
each line below, in a location or a server, is refused by nginx 1.22 with
the message wstunnel gives at the same line, or accepted by both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import config_errors, write_config
from test_checker import nginx_test
from wstunnel.config.directives import EXTENSIONS, TABLE
from wstunnel.config.loader import load_config
from wstunnel.config.model import ConfigErrors
from wstunnel.config import walk

SERVER = (
    "server {{\nlisten 127.0.0.1:8080;\nset $a 1;\n{body}\n"
    "location / {{ proxy_pass http://127.0.0.1:9000; }}\n}}\n"
)
LOCATION = "server {{\nlisten 127.0.0.1:8080;\nset $a 1;\nlocation / {{\n{body}\n}}\n}}\n"

REFUSED = [
    (LOCATION, "if ($a) { if ($a) { return 200; } }"),
    (LOCATION, "if ($a) { proxy_set_header X y; }"),
    (LOCATION, "if ($a) { proxy_pass http://127.0.0.1:1/x; }"),
    (LOCATION, "if ($a) { client_max_body_size 1k; }"),
    (LOCATION, "set $host 1;"),
    (LOCATION, "set a b;"),
    (LOCATION, 'if ($a ~ "(") { }'),
    (LOCATION, "rewrite ^ /x foo;"),
    (LOCATION, "rewrite ^( /x;"),
    (LOCATION, "if ($a =) { }"),
    (LOCATION, "if ($a == b) { }"),
    (LOCATION, "if (-q $a) { }"),
    (LOCATION, "if ($a x b c) { }"),
    (LOCATION, "if (a) { }"),
    (LOCATION, "if ($a) { rewrite_log on; rewrite_log on; }"),
    (LOCATION, "rewrite_log maybe;"),
    (LOCATION, "break 1;"),
    (SERVER, "if ($a) { proxy_pass http://127.0.0.1:1; }"),
    (SERVER, "if ($a) { add_header X 1; }"),
    (SERVER, "if ($a) { location /x { } }"),
]

ACCEPTED = [
    (LOCATION, "if ($a) { proxy_pass http://127.0.0.1:1; add_header X 1; access_log off; return 200; }"),
    (LOCATION, "if ($late) { return 200 $late; } proxy_pass http://127.0.0.1:1;"),
    (LOCATION, "if ($http_x !~* ^(?<word>[a-z]+)$) { set $b $word; } proxy_pass http://127.0.0.1:1;"),
    (LOCATION, "if (!-f /x/$uri) { rewrite ^/(.*)$ /index.php?q=$1 last; } proxy_pass http://127.0.0.1:1;"),
    (LOCATION, "rewrite_log on; rewrite ^ https://x.test$request_uri? permanent;"),
    (SERVER, "if ($a = x) { set $late 1; rewrite ^ /y break; break; return 404; }"),
]


def _nginx_error(tmp_path: Path, text: str) -> str | None:
    """nginx's message for ``text`` without its place; None when it accepts it."""
    result = nginx_test(tmp_path, text)
    if result.returncode == 0:
        return None
    found = re.search(r"\[emerg\] [^:]*: (.*?)(?: in \S+:\d+)?$", result.stderr, re.MULTILINE)
    assert found is not None, result.stderr
    return found.group(1)


@pytest.mark.parametrize(("frame", "body"), REFUSED)
def test_refused_as_nginx_refuses(tmp_path: Path, frame: str, body: str) -> None:
    text = frame.format(body=body)
    line = 4 if frame is SERVER else 5
    ours, theirs = config_errors(tmp_path, text)[0], _nginx_error(tmp_path, text)
    assert theirs is not None
    if theirs.startswith("pcre2_compile() failed:"):
        # Python's re words its reasons differently from PCRE2.
        ours, theirs = ours.split(":", 3)[2], theirs.split(":", 1)[0]
        assert ours.strip() == theirs
    else:
        assert ours == f"FILE:{line}: {theirs}"


@pytest.mark.parametrize(("frame", "body"), ACCEPTED)
def test_accepted_as_nginx_accepts(tmp_path: Path, frame: str, body: str) -> None:
    text = frame.format(body=body) + "server {\nlisten 127.0.0.1:8081;\nset $late 1;\nreturn 204;\n}\n"
    assert _nginx_error(tmp_path, text) is None
    load_config(write_config(tmp_path, text))


@pytest.mark.parametrize(("where", "frame"), [(walk.SERVER, SERVER), (walk.LOCATION, LOCATION)])
def test_what_an_if_block_accepts_is_what_nginx_accepts(tmp_path: Path, where: str, frame: str) -> None:
    """Every directive of the table that nginx has, inside an ``if`` of a server and of a location."""
    names = sorted(name for name, entry in TABLE.items() if where in entry.contexts and name not in EXTENSIONS)
    assert len(names) > 20
    differ = []
    for index, name in enumerate(names):
        text = frame.format(body=f"if ($a) {{ {name} x; }}")
        place = tmp_path / str(index)
        place.mkdir()
        nginx_refuses = "is not allowed here" in (_nginx_error(place, text) or "")
        try:
            load_config(write_config(place, text))
            ours = []
        except ConfigErrors as exc:
            ours = [str(error) for error in exc.errors]
        if nginx_refuses != any("is not allowed here" in error for error in ours):
            differ.append(name)
    assert differ == []
