from __future__ import annotations

from pathlib import Path

import pytest
from twisted.application.service import IService, MultiService
from twisted.python import usage
from zope.interface.verify import verifyObject

from wstunnel.__main__ import main
from wstunnel.obs.logs import ErrorLogService
from wstunnel.app.service import ProxyService
from wstunnel.app.tap import DEFAULT_CONFIG, Options, makeService

GOOD = """\
events {{ worker_connections 16; }}
http {{
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream backend {{ server 127.0.0.1:8282; }}
    server {{
        listen 127.0.0.1:{port};
        location /chat/ {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}
}}
"""

BAD = """\
server {
    listen 127.0.0.1:8080;
    location / {
        flv;
        proxy_set_header X-Secret $nope;
        proxy_pass http://127.0.0.1:8282;
    }
}
"""


def write(tmp_path: Path, text: str, name: str = "wstunnel.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def options(*args: str) -> Options:
    parsed = Options()
    parsed.parseOptions(list(args))
    return parsed


def test_default_config_path() -> None:
    parsed = options()
    assert DEFAULT_CONFIG == "/etc/wstunnel/wstunnel.conf"
    assert parsed["config"] == DEFAULT_CONFIG
    assert not parsed["check"]


@pytest.mark.parametrize("args", [["--config", "x.conf", "--check"], ["-c", "x.conf", "--check"]])
def test_config_and_check_options(args: list[str]) -> None:
    parsed = options(*args)
    assert parsed["config"] == "x.conf"
    assert parsed["check"]


def test_unknown_option_is_a_usage_error() -> None:
    with pytest.raises(usage.UsageError):
        options("--listen", "80")


def test_missing_config_file_exits(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.conf")
    with pytest.raises(SystemExit) as caught:
        makeService(options("--config", missing))
    assert caught.value.code == f"wstunnel: configuration file {missing} not found (use --config FILE)"


def test_bad_config_exits_with_one_line_per_error(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(SystemExit) as caught:
        makeService(options("--config", path))
    reported = caught.value.code.splitlines()
    assert len(reported) == 2
    assert reported[0].startswith(f"{path}:4: ")
    assert "flv" in reported[0]
    assert reported[1].startswith(f"{path}:5: ")
    assert "nope" in reported[1]


def test_check_good_config(tmp_path: Path, capsys, free_port: int) -> None:
    path = write(tmp_path, GOOD.format(port=free_port))
    with pytest.raises(SystemExit) as caught:
        makeService(options("--check", "--config", path))
    assert caught.value.code == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"wstunnel: configuration file {path} test is successful\n"


def test_check_prints_notices(tmp_path: Path, capsys, free_port: int) -> None:
    path = write(tmp_path, "pid /run/nginx.pid;\n" + GOOD.format(port=free_port))
    with pytest.raises(SystemExit) as caught:
        makeService(options("--check", "--config", path))
    assert caught.value.code == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"wstunnel: [notice] {path}:1: ")
    assert err[-1] == f"wstunnel: configuration file {path} test is successful"


def test_check_bad_config(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(SystemExit) as caught:
        makeService(options("--check", "--config", path))
    assert caught.value.code == f"wstunnel: configuration file {path} test failed"
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 1)[0] for line in err] == [f"{path}:4", f"{path}:5"]


def test_make_service_builds_error_logs_then_proxy(tmp_path: Path, free_port: int) -> None:
    path = write(tmp_path, GOOD.format(port=free_port))
    service = makeService(options("--config", path))
    assert verifyObject(IService, service)
    assert isinstance(service, MultiService)
    assert [type(child) for child in service] == [ErrorLogService, ProxyService]
    assert not service.running


def test_unwritable_error_log_exits(tmp_path: Path, free_port: int) -> None:
    log = tmp_path / "missing-dir" / "error.log"
    path = write(tmp_path, f"error_log {log} info;\n" + GOOD.format(port=free_port))
    with pytest.raises(SystemExit) as caught:
        makeService(options("--config", path))
    assert caught.value.code == f"wstunnel: cannot open error log {log}: No such file or directory"


def test_module_check(tmp_path: Path, capsys, free_port: int) -> None:
    path = write(tmp_path, GOOD.format(port=free_port))
    with pytest.raises(SystemExit) as caught:
        main(["--check", "-c", path])
    assert caught.value.code == 0
    assert "test is successful" in capsys.readouterr().err


def test_module_refuses_to_run_the_proxy(tmp_path: Path, capsys) -> None:
    assert main(["-c", str(tmp_path / "x.conf")]) == 2
    assert "twistd -n wstunnel" in capsys.readouterr().err


def test_module_usage_error(capsys) -> None:
    assert main(["--bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
