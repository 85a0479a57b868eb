"""
A real nginx on loopback, for tests that run one config under nginx and
wstunnel and compare what clients and backends see.

nginx runs in the foreground as one process (``daemon off; master_process
off``) with everything it writes kept under the test's directory.  It cannot
listen on port 0, so the test reserves free loopback ports first.  Readiness
needs no polling: nginx binds its listeners, writes its pid file, then
points its stderr at the error log, so the end of its stderr pipe with the
pid file in place means it is accepting.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from attrs import frozen
from twisted.internet import defer, protocol, reactor

from support import WAIT

__all__ = [
    "AccessLines",
    "Nginx",
    "NGINX_PACKAGE",
    "capture_access_log",
    "find_nginx",
    "listen_syslog",
    "reserve_ports",
    "start_nginx",
]

NGINX_PACKAGE = "nginx-light"
STARTUP = 5.0  # seconds nginx may take to bind its listeners
SHUTDOWN = 5.0  # seconds it may take to exit after SIGTERM

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@frozen
class Nginx:
    """One running nginx, stopped by its own PID and nothing else."""

    process: subprocess.Popen
    error_log: Path

    def stop(self) -> None:
        """
        SIGTERM, not SIGQUIT: a graceful quit waits for open tunnels to end,
        a fast shutdown closes them, which is what a finished test wants.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(SHUTDOWN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(SHUTDOWN)
            pytest.fail(f"nginx (pid {self.process.pid}) ignored SIGTERM for {SHUTDOWN} s; "
                        f"see {self.error_log}")


def find_nginx() -> str:
    """The nginx binary; its absence fails the test with the package to install."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            f"nginx is not installed: the parity tests need it as their oracle. "
            f"Install the Debian package {NGINX_PACKAGE} (.ci/run does)."
        )
    return found


def reserve_ports(count: int) -> list[int]:
    """
    ``count`` distinct loopback ports that were free a moment ago: all are
    bound at once so none repeats, then released for nginx to bind.
    """
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _main_conf(root: Path, http_body: str) -> str:
    temp = "\n".join(f"    {name}_temp_path {root / name};" for name in _TEMP_PATHS)
    return (
        f"daemon off;\nmaster_process off;\npid {root / 'nginx.pid'};\n"
        f"error_log {root / 'error.log'} info;\nevents {{}}\n"
        f"http {{\n    access_log {root / 'access.log'};\n{temp}\n{http_body}\n}}\n"
    )


def start_nginx(tmp_path: Path, http_body: str) -> Nginx:
    """
    Run nginx with ``http_body`` as the content of its ``http`` block (its
    ``listen`` lines name reserved ports) and return once it accepts.
    """
    root = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp_path))
    conf = root / "nginx.conf"
    conf.write_text(_main_conf(root, http_body))
    process = subprocess.Popen(
        [find_nginx(), "-p", str(root), "-c", str(conf), "-e", "stderr"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    nginx = Nginx(process, root / "error.log")
    startup = _read_until_eof(process, STARTUP)
    pid_file = root / "nginx.pid"
    if not pid_file.exists() or pid_file.read_text().strip() != str(process.pid):
        process.wait(SHUTDOWN)
        pytest.fail(f"nginx exited with {process.returncode}: {startup}\n{conf.read_text()}")
    return nginx


def _read_until_eof(process: subprocess.Popen, timeout: float) -> str:
    """nginx's stderr until it closes (listeners bound) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    chunks = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and selector.select(left):
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            process.kill()
            process.wait(SHUTDOWN)
            pytest.fail(f"nginx did not start within {timeout} s: {b''.join(chunks)!r}")
    process.stderr.close()
    return b"".join(chunks).decode(errors="replace")


# ---------------------------------------------------------------- access-log lines, awaited

SYSLOG_TAG = "parity"


class AccessLines:
    """
    The access-log lines one proxy wrote, in order.  A proxy writes a line
    after the response's last byte may already have reached the client (and
    a tunnel's when it ends), so tests await a count instead of reading a
    file at some moment.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._waiting: list[tuple[int, defer.Deferred]] = []

    def append(self, line: str) -> None:
        self.lines.append(line)
        self._wake()

    def wait_for(self, count: int) -> defer.Deferred:
        """Fires with the lines once there are at least ``count``; fails after ``WAIT``."""
        d = defer.Deferred()
        self._waiting.append((count, d))
        self._wake()
        return d.addTimeout(WAIT, reactor)

    def _wake(self) -> None:
        ready = [(n, d) for n, d in self._waiting if n <= len(self.lines)]
        self._waiting = [(n, d) for n, d in self._waiting if n > len(self.lines)]
        for _, d in ready:
            d.callback(self.lines[:])


class _Syslog(protocol.DatagramProtocol):
    """nginx's ``access_log syslog:``: one datagram a line, ``<PRI>TIMESTAMP TAG: LINE``."""

    noisy = False

    def __init__(self, lines: AccessLines) -> None:
        self.lines = lines

    def datagramReceived(self, datagram: bytes, addr: object) -> None:
        self.lines.append(datagram.decode().split(f" {SYSLOG_TAG}: ", 1)[1])


def listen_syslog(lines: AccessLines) -> tuple[object, str]:
    """A loopback syslog receiver for ``lines``: its port, and the ``access_log`` target naming it."""
    port = reactor.listenUDP(0, _Syslog(lines), interface="127.0.0.1")
    target = f"syslog:server=127.0.0.1:{port.getHost().port},tag={SYSLOG_TAG},nohostname"
    return port, target


def capture_access_log(service: object, lines: AccessLines) -> None:
    """wstunnel's lines go to their files as usual and to ``lines`` as they are written."""
    logs = service.runtime.access_logs  # type: ignore[attr-defined]
    write = logs.write

    def both(targets: tuple, line: str) -> None:
        write(targets, line)
        lines.append(line)

    logs.write = both
