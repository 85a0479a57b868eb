"""
log_not_found: a missing file is refused with nginx's "open() ... failed
(2: No such file or directory)" logged at error level, or not logged at all
under ``log_not_found off``, which a location may set apart from its server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_files import decide
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Refuse

CONF = """
server {
    listen 127.0.0.1:8080;
    root /srv;
    location /quiet/ { log_not_found off; }
}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("log_not_found") / "files.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


@pytest.mark.parametrize("target, level", [(b"/missing.txt", "error"), (b"/quiet/missing.txt", "")])
def test_a_missing_file_is_logged_as_log_not_found_says(config: Config, target: bytes, level: str) -> None:
    decision = decide(config, target)
    assert isinstance(decision, Refuse)
    assert decision.error.status == 404
    assert decision.error.level == level
    assert 'failed (2: No such file or directory)' in decision.error.detail


def test_a_forbidden_file_is_still_logged(config: Config) -> None:
    decision = decide(config, b"/locked")
    assert isinstance(decision, Refuse)
    assert (decision.error.status, decision.error.level) == (403, "info")
    assert decision.error.detail == 'open() "/srv/locked" failed'
