#!/usr/bin/env python3
"""
The static-file benchmark: wstunnel against nginx serving the same
document root from the same nginx-syntax file, on loopback
(doc/performance.md, "Static files"):

    .venv/bin/python bench/static.py [--repeat N] [--quick]

Three workloads, each proxy pinned to core 0 and the clients to core 1:

- ``large``: one large file downloaded whole, one connection at a time,
  by a client that reads as fast as it can (MB/s, and the proxy's CPU
  seconds per GB sent, the steadier figure on a busy machine);
- ``small``: many small files (1 KiB, 1000 names) requested over
  keep-alive connections by several client processes (requests/s); the
  clients are Python, so nginx's figure is the clients' ceiling;
- ``slow``: connections that ask for the large file and read nothing;
  the proxy's resident memory per such download (KiB), which the
  producer's one-chunk bound is meant to keep small.

Every figure is the median of the repetitions.  Only processes started
here are stopped, by their PID.  Not part of pytest.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from run import LOAD_CORE, NGINX, Target, cpu_seconds, free_port, wstunnel_argv

LARGE = 256 * 1024 * 1024
SMALL_FILES, SMALL_SIZE = 1000, 1024
SLOW_DOWNLOADS = 200

CONF = """\
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path {run}/tmp;
    proxy_temp_path {run}/tmp;
    include /etc/nginx/mime.types;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def document_root(base: Path) -> Path:
    root = base / "www"
    base.chmod(0o755)  # nginx's workers run as nobody when it is started as root
    (root / "small").mkdir(parents=True)
    with open(root / "large.bin", "wb") as out:
        block = os.urandom(1024 * 1024)
        for _ in range(LARGE // len(block)):
            out.write(block)
    for n in range(SMALL_FILES):
        (root / "small" / f"{n}.txt").write_bytes(os.urandom(SMALL_SIZE // 2).hex().encode())
    return root


def _get(sock: socket.socket, path: str, buffer: bytearray) -> int:
    """One keep-alive GET; the body's length, read and dropped."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    view = memoryview(buffer)
    got = 0
    while True:
        n = sock.recv_into(view[got:])
        if not n:
            raise RuntimeError("the proxy closed the connection")
        got += n
        end = buffer.find(b"\r\n\r\n", 0, got)
        if end >= 0:
            break
    if not buffer.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(bytes(buffer[: buffer.find(b"\r")]).decode())
    start = buffer.find(b"Content-Length: ", 0, end) + 16
    length = int(buffer[start : buffer.find(b"\r", start)])
    left = length - (got - end - 4)
    while left > 0:
        left -= sock.recv_into(view, min(left, len(buffer)))
    return length


def large(port: int, rounds: int, pids: str) -> tuple[float, float]:
    """MB/s of whole downloads of the large file, one after another, and the proxy's CPU seconds per GB."""
    buffer = bytearray(4 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        cpu = cpu_seconds(pids)
        began = time.perf_counter()
        total = sum(_get(sock, "/large.bin", buffer) for _ in range(rounds))
        elapsed = time.perf_counter() - began
        return total / elapsed / 1e6, (cpu_seconds(pids) - cpu) / (total / 1e9)


def _small_client(port: int, seconds: float, out: multiprocessing.Queue) -> None:
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    buffer = bytearray(64 * 1024)
    done = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            _get(sock, f"/small/{done % SMALL_FILES}.txt", buffer)
            done += 1
    out.put(done)


def small(port: int, seconds: float, clients: int = 4) -> float:
    """Requests/s over ``clients`` keep-alive connections."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_small_client, args=(port, seconds, out)) for _ in range(clients)]
    for proc in procs:
        proc.start()
    total = sum(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def rss_kib(pids: str) -> int:
    total = 0
    for pid in pids.split(","):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def slow(port: int, pids: str) -> float:
    """KiB of resident memory per download whose client reads nothing."""
    before = rss_kib(pids)
    socks = []
    for _ in range(SLOW_DOWNLOADS):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /large.bin HTTP/1.1\r\nHost: bench\r\n\r\n")
        socks.append(sock)
    time.sleep(2.0)  # the proxy fills each socket's buffers, then waits
    after = rss_kib(pids)
    for sock in socks:
        sock.close()
    return (after - before) / SLOW_DOWNLOADS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a smoke test")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    seconds, rounds = (2.0, 2) if args.quick else (5.0, 4)
    with tempfile.TemporaryDirectory(prefix="wstunnel-static-") as tmp:
        base = Path(tmp)
        root = document_root(base)
        (base / "tmp").mkdir()
        targets = []
        for name in ("wstunnel", "nginx"):
            if name == "nginx" and NGINX is None:
                continue
            port = free_port()
            conf = base / f"{name}.conf"
            conf.write_text(CONF.format(run=base, port=port, root=root))
            argv = wstunnel_argv(conf) if name == "wstunnel" else [NGINX, "-p", str(base), "-c", str(conf), "-g", "daemon off;"]
            targets.append(Target(name, argv, port, forks=name == "nginx"))
        kinds = ("large", "cpu", "small", "slow")
        figures: dict[str, dict[str, list[float]]] = {t.name: {k: [] for k in kinds} for t in targets}
        for _ in range(args.repeat):
            for target in targets:
                target.start(base / f"{target.name}.log")
                try:
                    pids = target.memory_pids()
                    assert pids is not None
                    speed, cpu = large(target.port, rounds, pids)
                    figures[target.name]["large"].append(speed)
                    figures[target.name]["cpu"].append(cpu)
                    figures[target.name]["small"].append(small(target.port, seconds))
                    figures[target.name]["slow"].append(slow(target.port, pids))
                finally:
                    target.stop()
    print(f"{'':10} {'large MB/s':>12} {'CPU s/GB':>12} {'small req/s':>12} {'KiB/slow dl':>12}")
    for name, each in figures.items():
        print(f"{name:10} " + " ".join(f"{statistics.median(each[k]):12.2f}" for k in kinds))
    if "nginx" in figures:
        ratio = [statistics.median(figures["wstunnel"][k]) / statistics.median(figures["nginx"][k]) for k in kinds[:3]]
        print(f"{'ratio':10} " + " ".join(f"{r:12.2f}" for r in ratio))
    print(f"python {sys.version.split()[0]}, {LARGE // 2**20} MiB file, {SMALL_FILES} x {SMALL_SIZE} B files")


if __name__ == "__main__":
    main()
