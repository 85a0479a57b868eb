"""
A full server still serves: the installed ``twistd wstunnel`` with
``worker_connections 512`` and 1,500 idle loopback connections held open
answers a health check on a fresh connection, because idle connections are
closed (the longest idle first) to admit new clients.  nginx 1.22 (whose
default is 512) under the same server block does the same ("reusing
connections").
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from nginx_support import start_nginx
from twistd_support import STARTUP_SECONDS, subprocess_env

LIMIT = 512  # nginx's default, which start_nginx keeps
IDLE = 1500
STEP = 10.0  # the longest one step may take
SERVER = """
    server {{
        listen 127.0.0.1:{port};
        location = /health {{ stub_status; }}
        {extra}
    }}
"""
CONF = "events {{ worker_connections {limit}; }}\nhttp {{{server}}}\n"


@pytest.fixture
def descriptors() -> Iterator[None]:
    """The test's own sockets need more descriptors than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {wanted} descriptors this test holds")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Output:
    """The proxy's stdout, read line by line up to a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._pending = b""
        self.lines: list[str] = []

    def wait_for(self, pattern: str, seconds: float = STEP) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        while True:
            found = next((line for line in self.lines if regex.search(line)), None)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise AssertionError(f"no {pattern!r} in the proxy's output:\n" + "".join(self.lines))
            data = os.read(self._fd, 65536)
            if not data:
                raise AssertionError(f"the proxy exited before {pattern!r}:\n" + "".join(self.lines))
            *complete, self._pending = (self._pending + data).split(b"\n")
            self.lines += [line.decode(errors="replace") + "\n" for line in complete]


def get(port: int, path: str) -> bytes:
    """The whole answer to one GET on a fresh connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=STEP) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def still_open(sock: socket.socket) -> bool:
    """Whether the proxy has not closed ``sock`` (nothing to read, no EOF)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(STEP)


def fill_then_ask(port: int, idle: list[socket.socket]) -> tuple[bytes, bool, bool]:
    """
    Open ``IDLE`` connections that send nothing (kept in ``idle``), then
    ask for /health on a fresh one: the answer, and whether the oldest and
    the newest idle connections are still open.
    """
    for _ in range(IDLE):
        idle.append(socket.create_connection(("127.0.0.1", port), timeout=STEP))
    answer = get(port, "/health")
    return answer, still_open(idle[0]), still_open(idle[-1])


def test_a_health_check_is_answered_with_1500_idle_connections_at_a_limit_of_512(
    twistd: str, tmp_path: Path, free_port: int, descriptors: None
) -> None:
    conf = tmp_path / "ws.conf"
    server = SERVER.format(port=free_port, extra="location = /metrics { wstunnel_metrics; }")
    conf.write_text(CONF.format(limit=LIMIT, server=server))
    proc = subprocess.Popen(
        [twistd, "-n", "--pidfile=", "wstunnel", "--config", str(conf)],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    idle: list[socket.socket] = []
    try:
        output = Output(proc)
        output.wait_for(rf"listening on 127\.0\.0\.1:{free_port}\b", STARTUP_SECONDS)
        answer, oldest_open, newest_open = fill_then_ask(free_port, idle)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        # The longest idle went first (with an EOF, not a reset); the newest are still open.
        assert (oldest_open, newest_open) == (False, True)
        output.wait_for(rf"\[wstunnel\.net\.limits\.ConnectionLimit#warn\] {LIMIT} worker_connections are not enough, "
                        "reusing connections")

        metrics = get(free_port, "/metrics").decode()
        values = dict(re.findall(r"^(wstunnel_connections_\w+) (\d+)$", metrics, re.M))
        assert values["wstunnel_connections_accepted_total"] == values["wstunnel_connections_handled_total"]
        # Every connection past the limit made room by closing one idle connection.
        assert int(values["wstunnel_connections_reclaimed_total"]) >= IDLE + 1 - LIMIT
        assert int(values["wstunnel_connections_active"]) <= LIMIT
    finally:
        for sock in idle:
            sock.close()
        proc.terminate()
        try:
            proc.wait(STEP)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_nginx_answers_the_same_health_check(tmp_path: Path, free_port: int, descriptors: None) -> None:
    nginx = start_nginx(tmp_path, SERVER.format(port=free_port, extra=""))
    idle: list[socket.socket] = []
    try:
        answer, oldest_open, newest_open = fill_then_ask(free_port, idle)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert (oldest_open, newest_open) == (False, True)
        warning = rf"\[warn\] \d+#\d+: {LIMIT} worker_connections are not enough, reusing connections"
        assert re.search(warning, nginx.error_log.read_text())
    finally:
        for sock in idle:
            sock.close()
        nginx.stop()
