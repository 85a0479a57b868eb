"""
What one request is handed (dispatch.Phases: the file tests of ``if``, the
rewrite_log lines, htpasswd files, the disk) reaches every location an
internal redirect takes it to, here a named location from try_files;
none of them falls back to an empty disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from decide_support import decide_for
from test_redirect import Disk
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Decision, Respond

CONF = """
server {
    listen 127.0.0.1:8080;
    root /srv;
    location /t/ { try_files $uri @flagged; }
    location @flagged {
        if (-f /srv/flag) { return 200 "flag seen"; }
        return 200 "no flag";
    }
}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("phases") / "phases.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def with_flag(test: str, path: str) -> bool:
    return path == "/srv/flag"


def body(decision: Decision) -> bytes:
    assert isinstance(decision, Respond), decision
    return decision.body


def test_a_named_location_from_try_files_sees_the_file_tests(config: Config) -> None:
    assert body(decide_for(config, b"/t/missing", files=with_flag, fs=Disk())) == b"flag seen"
    assert body(decide_for(config, b"/t/missing", fs=Disk())) == b"no flag"
