"""
The installed ``twistd wstunnel`` in a subprocess, driven by signals the
way an operator (or systemd, or logrotate) drives it: SIGHUP reloads,
SIGTERM drains and exits 0, SIGUSR1 reopens logs, and worker processes
share the listening addresses and are replaced when they die.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from twistd_support import subprocess_env

STEP = 10.0  # the longest one step may take (startup included)


class Twistd:
    """A running ``twistd -n wstunnel``; its output lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, twistd: str, conf: Path) -> "Twistd":
        proc = await asyncio.create_subprocess_exec(
            twistd, "-n", "--pidfile=", "wstunnel", "--config", str(conf),
            cwd=conf.parent, env=subprocess_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(proc)

    async def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` matches of ``pattern`` in the output, waiting for more lines as needed."""
        regex = re.compile(pattern)

        async def scan() -> list[re.Match[str]]:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                line = await self.proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"twistd exited before {pattern!r}:\n" + "".join(self.lines))
                self.lines.append(line.decode(errors="replace"))

        return await asyncio.wait_for(scan(), STEP)

    def signal(self, number: int) -> None:
        self.proc.send_signal(number)

    async def exit_code(self) -> int:
        rest, _ = await asyncio.wait_for(self.proc.communicate(), STEP)
        self.lines.append(rest.decode(errors="replace"))
        return self.proc.returncode  # type: ignore[return-value]

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def run(scenario) -> defer.Deferred:  # type: ignore[no-untyped-def]
    """An asyncio scenario on the shared loop, from a Twisted test."""
    return defer.Deferred.fromFuture(asyncio.ensure_future(scenario))


async def tagged_echo(tag: str):  # type: ignore[no-untyped-def]
    async def handler(connection) -> None:  # type: ignore[no-untyped-def]
        async for message in connection:
            await connection.send(f"{tag}:{message}")

    return await serve(handler, "127.0.0.1", 0)


async def ask(ws, text: str) -> str:  # type: ignore[no-untyped-def]
    await ws.send(text)
    return await asyncio.wait_for(ws.recv(), STEP)


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


PROXY_CONF = """\
worker_shutdown_timeout {shutdown};
http {{
    server {{
        listen 127.0.0.1:{port};
        {extra}
        location / {{ proxy_pass http://127.0.0.1:{backend}; }}
    }}
}}
"""


@pytest_twisted.ensureDeferred
async def test_sighup_reloads_without_dropping_the_tunnel(twistd: str, tmp_path: Path, free_port: int) -> None:
    async def scenario() -> None:
        a, b = await tagged_echo("A"), await tagged_echo("B")
        conf = tmp_path / "ws.conf"
        conf.write_text(PROXY_CONF.format(shutdown="1s", port=free_port, extra="", backend=a.sockets[0].getsockname()[1]))
        proxy = await Twistd.start(twistd, conf)
        try:
            await proxy.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b")
            async with connect(ws_url(free_port), proxy=None) as old:
                assert await ask(old, "1") == "A:1"
                second = free_loopback_port()
                conf.write_text(PROXY_CONF.format(
                    shutdown="1s", port=free_port, extra=f"listen 127.0.0.1:{second};",
                    backend=b.sockets[0].getsockname()[1],
                ))  # fmt: skip
                proxy.signal(signal.SIGHUP)
                await proxy.wait_for("configuration reloaded")
                assert await ask(old, "2") == "A:2"  # the open tunnel runs on
                async with connect(ws_url(free_port), proxy=None) as new:
                    assert await ask(new, "3") == "B:3"  # new connections follow the new routes
                async with connect(ws_url(second), proxy=None) as added:
                    assert await ask(added, "4") == "B:4"  # and the new listener
                conf.write_text("http {\n    nonsense on;\n}\n")
                proxy.signal(signal.SIGHUP)
                await proxy.wait_for(rf"reload failed, keeping the running configuration: {re.escape(str(conf))}:2: ")
                async with connect(ws_url(free_port), proxy=None) as after:
                    assert await ask(after, "5") == "B:5"
                assert await ask(old, "6") == "A:6"
            proxy.signal(signal.SIGTERM)
            assert await proxy.exit_code() == 0
            assert "Traceback" not in "".join(proxy.lines)
        finally:
            await proxy.kill()
            a.close()
            b.close()

    await run(scenario())


@pytest_twisted.ensureDeferred
async def test_sigterm_lets_a_tunnel_run_until_the_timeout_then_exits_0(
    twistd: str, tmp_path: Path, free_port: int
) -> None:
    async def scenario() -> None:
        backend = await tagged_echo("A")
        conf = tmp_path / "ws.conf"
        conf.write_text(PROXY_CONF.format(shutdown="1s", port=free_port, extra="",
                                          backend=backend.sockets[0].getsockname()[1]))
        proxy = await Twistd.start(twistd, conf)
        try:
            await proxy.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b")
            async with connect(ws_url(free_port), proxy=None) as ws:
                assert await ask(ws, "before") == "A:before"
                proxy.signal(signal.SIGTERM)
                signalled = time.monotonic()
                await proxy.wait_for("shutting down: waiting up to 1.0s for 1 connections")
                with pytest.raises(OSError):
                    await asyncio.open_connection("127.0.0.1", free_port)  # no longer accepting
                assert await ask(ws, "during") == "A:during"  # the tunnel still works
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), STEP)
                assert time.monotonic() - signalled >= 0.9
            assert await proxy.exit_code() == 0
            assert "Traceback" not in "".join(proxy.lines)
        finally:
            await proxy.kill()
            backend.close()

    await run(scenario())


LOG_CONF = """\
http {{
    server {{
        listen 127.0.0.1:{port};
        access_log {log};
        location = /status {{ stub_status; }}
    }}
}}
"""


async def fetch(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), STEP)
    writer.close()
    return data


@pytest_twisted.ensureDeferred
async def test_sigusr1_reopens_the_access_log_after_a_rename(twistd: str, tmp_path: Path, free_port: int) -> None:
    async def scenario() -> None:
        log = tmp_path / "access.log"
        conf = tmp_path / "ws.conf"
        conf.write_text(LOG_CONF.format(port=free_port, log=log))
        proxy = await Twistd.start(twistd, conf)
        try:
            await proxy.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b")
            assert (await fetch(free_port, "/status?first")).startswith(b"HTTP/1.1 200 OK")
            log.rename(tmp_path / "access.log.1")
            proxy.signal(signal.SIGUSR1)
            await proxy.wait_for("log files reopened")
            assert (await fetch(free_port, "/status?second")).startswith(b"HTTP/1.1 200 OK")
            proxy.signal(signal.SIGTERM)
            assert await proxy.exit_code() == 0
        finally:
            await proxy.kill()
        assert "/status?first" in (tmp_path / "access.log.1").read_text()
        assert "/status?second" not in (tmp_path / "access.log.1").read_text()
        assert "/status?second" in log.read_text()

    await run(scenario())


WORKERS_CONF = """\
worker_processes 2;
worker_shutdown_timeout 1s;
http {{
    server {{
        listen 127.0.0.1:{port};
        location = /metrics {{ wstunnel_metrics; }}
        location = /status {{ stub_status; }}
    }}
}}
"""


def socket_fds(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


async def spread(port: int, pids: list[int], count: int = 20) -> tuple[list[int], list]:
    """Open ``count`` idle connections; how many each worker accepted."""
    before = {pid: socket_fds(pid) for pid in pids}
    writers = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(count)]

    async def accepted() -> list[int]:
        while True:
            gained = [socket_fds(pid) - before[pid] for pid in pids]
            if sum(gained) >= count:
                return gained
            await asyncio.sleep(0.02)  # polling /proc, bounded by wait_for

    return await asyncio.wait_for(accepted(), STEP), writers


async def poll_metrics(port: int, wanted: str) -> str:
    async def scrape() -> str:
        while True:
            text = (await fetch(port, "/metrics")).decode()
            if wanted in text:
                return text
            await asyncio.sleep(0.1)  # workers publish once a second; bounded by wait_for

    return await asyncio.wait_for(scrape(), STEP)


@pytest_twisted.ensureDeferred
async def test_two_workers_both_accept_and_a_killed_worker_is_replaced(
    twistd: str, tmp_path: Path, free_port: int
) -> None:
    async def scenario() -> None:
        conf = tmp_path / "ws.conf"
        conf.write_text(WORKERS_CONF.format(port=free_port))
        proxy = await Twistd.start(twistd, conf)
        writers: list = []
        try:
            started = await proxy.wait_for(r"started worker process (\d+) \(#(\d)\)", 2)
            pids = [int(m.group(1)) for m in started]
            await proxy.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b", 2)
            gained, writers = await spread(free_port, pids)
            assert all(n > 0 for n in gained), gained
            text = await poll_metrics(free_port, "wstunnel_workers 2\n")
            assert re.search(r"wstunnel_connections_accepted_total (\d+)", text)
            for w in writers:
                w.close()
            os.kill(pids[0], signal.SIGKILL)
            replaced = await proxy.wait_for(r"started worker process (\d+) \(#0\)", 2)
            new_pid = int(replaced[1].group(1))
            await proxy.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b", 3)
            gained, writers = await spread(free_port, [new_pid, pids[1]])
            assert all(n > 0 for n in gained), gained
            proxy.signal(signal.SIGTERM)
            assert await proxy.exit_code() == 0
            assert "Traceback" not in "".join(proxy.lines)
        finally:
            for w in writers:
                w.close()
            await proxy.kill()

    await run(scenario())
