"""
The benchmark's C tools (bench/) build, answer a WebSocket handshake
correctly, echo, and notice a peer that corrupts what it echoes.  The
benchmark itself is run by hand (doc/performance.md); this only keeps its
measuring instruments honest.  No timings are asserted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support import ROOT, WAIT, accept_for, upgrade_request

BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-build")
    for name in ("echo_backend", "wsload"):
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out / name), str(BENCH / f"{name}.c")],
            check=True,
            timeout=60,
        )
    return out


@pytest.fixture
def backend_proc(tools: Path):
    proc = subprocess.Popen([str(tools / "echo_backend"), "0"], stdout=subprocess.PIPE, text=True)
    try:
        proc.port = int(proc.stdout.readline())  # type: ignore[union-attr, attr-defined]
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT)


@pytest.fixture
def backend(backend_proc: subprocess.Popen) -> int:
    return backend_proc.port  # type: ignore[attr-defined]


def wsload(tools: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(tools / "wsload"), *map(str, args)], capture_output=True, text=True, timeout=30
    )


def test_backend_answers_the_handshake_with_the_right_accept_and_echoes(backend: int) -> None:
    key = b"x3JJHMbDL1EzLkh9GBhXDw=="
    with socket.create_connection(("127.0.0.1", backend), timeout=WAIT) as s:
        s.sendall(upgrade_request(key=key))
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: " + accept_for(key) + b"\r\n" in head
        s.sendall(b"\x82\x85abcd" + bytes(range(5)))
        echoed = b""
        while len(echoed) < 11:
            echoed += s.recv(4096)
        assert echoed == b"\x82\x85abcd" + bytes(range(5))


def test_every_load_mode_checks_out_against_the_backend(tools: Path, backend: int) -> None:
    runs = {
        "bulk": ("bulk", backend, 4),
        "pingpong": ("pingpong", backend, 3, 0.1),
        "handshake": ("handshake", backend, 2, 0.1),
        "get": ("get", backend, 2, 0.1),
    }
    for mode, args in runs.items():
        done = wsload(tools, *args)
        assert done.returncode == 0, (mode, done.stderr)
        figures = json.loads(done.stdout)
        assert all(value > 0 for value in figures.values()), (mode, figures)


def test_idle_mode_reads_the_memory_of_the_given_process(tools: Path, backend_proc: subprocess.Popen) -> None:
    done = wsload(tools, "idle", backend_proc.port, 20, backend_proc.pid)  # type: ignore[attr-defined]
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["all_echoed"] is True and figures["rss_idle_kb"] > 0


def corrupting_backend(listener: socket.socket) -> None:
    """Completes the handshake, then echoes with one byte flipped."""
    conn, _ = listener.accept()
    with conn, contextlib.suppress(OSError):
        conn.settimeout(WAIT)
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_for(key) + b"\r\n\r\n")
        data = bytearray(conn.recv(65536))
        data[len(data) // 2] ^= 0x01
        conn.sendall(bytes(data))
        # Read on until the client leaves: closing with unread bytes would
        # reset the connection and fail the client's write, not its check.
        while conn.recv(65536):
            pass


def test_the_load_client_fails_on_a_corrupted_echo(tools: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(WAIT)
        thread = threading.Thread(target=corrupting_backend, args=(listener,), daemon=True)
        thread.start()
        done = wsload(tools, "bulk", listener.getsockname()[1], 1)
        thread.join(WAIT)
    assert done.returncode == 1
    assert "differ" in done.stderr


@pytest.mark.parametrize("keepalive", [0, 32])
def test_pathcost_drives_the_request_path_and_checks_each_answer(tmp_path: Path, keepalive: int) -> None:
    """bench/pathcost.py's loops run the real protocols on memory transports and see every answer."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "pathcost.py"), "-n", "30", "--rounds", "1", "--keepalive", str(keepalive),
         "--access-log"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["get", "handshake"]
