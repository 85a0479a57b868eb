"""
The twistd plugin: discovery in-process, and the installed ``twistd
wstunnel`` in a subprocess, the way an operator runs it.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest_twisted
from twisted.application.service import IServiceMaker
from twisted.internet import defer
from twisted.plugin import IPlugin, getPlugins
from twisted.scripts.twistd import ServerOptions
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from support import ROOT
from twistd_support import STARTUP_SECONDS, run_twistd, subprocess_env
from wstunnel.app import tap

# Seed 003's conf.d file without its TLS lines, on loopback ports.
SEED_CONF = """\
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
}}
upstream websocket {{
    server 127.0.0.1:{backend};
}}
server {{
    server_name test.enzhico.net;
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://websocket;
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
    }}
}}
"""

BAD_CONF = """\
server {
    listen 127.0.0.1:8080;
    location / {
        flv;
        proxy_pass http://127.0.0.1:8282;
    }
}
"""


def wstunnel_plugins() -> list[IServiceMaker]:
    return [p for p in getPlugins(IServiceMaker) if p.tapname == "wstunnel"]


def test_plugin_is_discovered() -> None:
    # The checkout's plugin, and the installed one too when both are on sys.path.
    plugins = wstunnel_plugins()
    assert plugins
    for plugin in plugins:
        assert plugin.options is tap.Options
        assert plugin.makeService is tap.makeService
        assert plugin.description


def test_plugin_module_holds_only_the_service_maker() -> None:
    import twisted.plugins.wstunnel_plugin as module

    plugins = [v for v in vars(module).values() if IPlugin.providedBy(v)]
    assert plugins == [module.wstunnel]


def test_no_init_files_hide_the_plugin() -> None:
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()


def test_twistd_parses_the_subcommand() -> None:
    config = ServerOptions()
    config.parseOptions(["-n", "wstunnel", "--config", "/srv/ws.conf", "--check"])
    assert config.subCommand == "wstunnel"
    assert config.subOptions["config"] == "/srv/ws.conf"
    assert config.subOptions["check"]


def test_installed_twistd_lists_wstunnel(twistd: str, tmp_path: Path) -> None:
    result = run_twistd(twistd, tmp_path, "--help")
    assert result.returncode == 0
    assert re.search(r"^\s+wstunnel\s+WebSocket", result.stdout, re.MULTILINE)


def test_check_good_config(twistd: str, tmp_path: Path, free_port: int) -> None:
    conf = tmp_path / "ws.conf"
    conf.write_text(SEED_CONF.format(backend=8282, port=free_port))
    result = run_twistd(twistd, tmp_path, "wstunnel", "--check", "--config", str(conf))
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == f"wstunnel: configuration file {conf} test is successful\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws.conf"]


def test_check_bad_config(twistd: str, tmp_path: Path) -> None:
    conf = tmp_path / "ws.conf"
    conf.write_text(BAD_CONF)
    result = run_twistd(twistd, tmp_path, "wstunnel", "--check", "--config", str(conf))
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{conf}:4: ")
    assert "flv" in errors[0]
    assert errors[-1] == f"wstunnel: configuration file {conf} test failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws.conf"]


def test_bad_config_never_starts(twistd: str, tmp_path: Path) -> None:
    conf = tmp_path / "ws.conf"
    conf.write_text(BAD_CONF)
    result = run_twistd(twistd, tmp_path, "-n", "--pidfile=", "wstunnel", "--config", str(conf))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(f"{conf}:4: ")
    assert "listening" not in result.stdout


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def wait_for_line(stream: asyncio.StreamReader, pattern: re.Pattern[str], seen: list[str]) -> None:
    while not pattern.search(seen[-1] if seen else ""):
        line = await stream.readline()
        if not line:
            raise AssertionError("twistd exited before listening:\n" + "".join(seen))
        seen.append(line.decode(errors="replace"))


async def proxy_one_echo(twistd: str, tmp_path: Path, port: int) -> tuple[int, str]:
    async with serve(echo, "127.0.0.1", 0) as backend:
        backend_port = backend.sockets[0].getsockname()[1]
        conf = tmp_path / "ws.conf"
        conf.write_text(SEED_CONF.format(backend=backend_port, port=port))
        proc = await asyncio.create_subprocess_exec(
            twistd, "-n", "--pidfile=", "wstunnel", "--config", str(conf),
            cwd=tmp_path, env=subprocess_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        seen: list[str] = []
        try:
            listening = re.compile(rf"listening on 127\.0\.0\.1:{port}\b")
            await asyncio.wait_for(wait_for_line(proc.stdout, listening, seen), STARTUP_SECONDS)
            async with connect(f"ws://127.0.0.1:{port}/echo", proxy=None, open_timeout=10) as ws:
                await ws.send("hello through wstunnel")
                assert await asyncio.wait_for(ws.recv(), 10) == "hello through wstunnel"
            proc.send_signal(signal.SIGTERM)
            rest, _ = await asyncio.wait_for(proc.communicate(), STARTUP_SECONDS)
            seen.append(rest.decode(errors="replace"))
            return proc.returncode, "".join(seen)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
                print("".join(seen))


@pytest_twisted.ensureDeferred
async def test_twistd_proxies_a_websocket(twistd: str, tmp_path: Path, free_port: int) -> None:
    # Bounded inside proxy_one_echo; the asyncio scenario runs on the shared loop.
    scenario = asyncio.ensure_future(proxy_one_echo(twistd, tmp_path, free_port))
    returncode, output = await defer.Deferred.fromFuture(scenario)
    # Our SIGTERM handler drains and stops the reactor itself, so twistd
    # does not re-raise the signal: a graceful stop exits 0, as nginx does.
    assert returncode == 0
    assert "Server Shut Down." in output
    assert "Traceback" not in output
