"""The service tree shared by twistd and the workers (wstunnel.app.assemble)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactor

from wstunnel.app.assemble import load, open_error_logs, proxy_process
from wstunnel.app.service import ProxyService

CONF = """\
pid /run/nginx.pid;
error_log {log} info;
http {{
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:9; }}
    }}
}}
"""


def config_at(tmp_path: Path, port: int, log: str = "error.log"):  # type: ignore[no-untyped-def]
    path = tmp_path / "wstunnel.conf"
    path.write_text(CONF.format(log=tmp_path / log, port=port))
    return load(str(path))


@pytest.mark.parametrize("announce", [True, False])
def test_only_an_announcing_process_logs_the_configuration_notices(tmp_path: Path, free_port: int, announce) -> None:
    config = config_at(tmp_path, free_port)
    assert config.notices
    error_logs = open_error_logs(config, announce=announce)
    error_logs.startService()
    error_logs.stopService()
    assert ("pid" in (tmp_path / "error.log").read_text()) is announce


def test_the_proxy_follows_its_error_logs_through_reloads_and_reopens(tmp_path: Path, free_port: int) -> None:
    config = config_at(tmp_path, free_port)
    error_logs = open_error_logs(config, announce=False)
    tree = proxy_process(config, MemoryReactor(), error_logs)
    first, proxy = list(tree)
    assert first is error_logs and isinstance(proxy, ProxyService)
    assert proxy.log_files == [error_logs]
    for hook in proxy.reload_hooks:
        hook(config_at(tmp_path, free_port, log="after-reload.log"))
    assert (tmp_path / "after-reload.log").exists()
    error_logs.stopService()


def test_an_unopenable_error_log_is_one_line(tmp_path: Path, free_port: int) -> None:
    config = config_at(tmp_path, free_port, log="missing-dir/error.log")
    with pytest.raises(SystemExit) as caught:
        open_error_logs(config, announce=False)
    assert caught.value.code.startswith("wstunnel: cannot open error log ")
