#!/usr/bin/env python3
"""
The benchmark: wstunnel against nginx (and HAProxy when installed) on
loopback, one command (doc/performance.md):

    .venv/bin/python bench/run.py [--repeat N] [--quick] [--profile] [--before REV] [--keepalive 0,32]

Each proxy is pinned to core 0 and the C backend and load client to core 1.
``--workers`` compares wstunnel with ``worker_processes 1`` and ``2`` instead;
for that figure the proxy is not pinned (the load tools stay on core 1).
Repetitions interleave the targets (the order rotates each time); every
figure is the median of the repetitions, printed with the ratio
wstunnel/nginx.  The direct path (client to backend, no proxy) shows what
the tools themselves can do; the ``twisted`` target (bench/portforward.py,
Twisted's own port-forwarder, no HTTP) shows what Twisted's transports and
event loop cost, the floor under any Twisted proxy, with its ratio to nginx.  wstunnel and nginx load the same nginx-syntax
file.  The ``mitmproxy`` target is mitmdump in reverse mode and ``before``
is wstunnel at the git revision ``--before`` names, each in a virtualenv of
its own under bench/build/ (bench/peers.py).  Results go to
bench/results/<date>/ (ignored by git).

Only processes started here are stopped, by their PID.  Not part of pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from peers import Peers, before_bin, mitmproxy_argv
from summary import FIGURES, RATIOS, figures, get_workload, goal_table, table

BENCH = Path(__file__).resolve().parent
BUILD = BENCH / "build"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
HAPROXY = shutil.which("haproxy")
WRK = shutil.which("wrk")
PROXY_CORE, LOAD_CORE = "0", "1"
IDLE_TUNNELS = 5000
TINY_CHUNKS = 500_000  # one-byte chunks in the tiny-chunks body (3 MB on the wire)
START_WAIT = 15.0  # seconds a proxy may take to listen

# The shared file: a whole nginx.conf that wstunnel loads as it is.
PROXY_CONF = """\
worker_processes {workers};
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    client_body_temp_path {run}/tmp;
    proxy_temp_path {run}/tmp;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      {plain_connection};
    }}
    upstream backend {{
        server 127.0.0.1:{backend};{keepalive}
    }}
    upstream sink {{
        server 127.0.0.1:{sink};
    }}
    server {{
        listen 127.0.0.1:{port};
        location /sink {{
            proxy_pass http://sink;
            proxy_http_version 1.1;
        }}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""

# The same proxying in HAProxy's terms: one thread, upstream connections kept
# alive or not as in the shared file, WebSocket upgrades tunnelled by HTX.
HAPROXY_CONF = """\
global
    nbthread 1
    maxconn 9000
defaults
    mode http
    timeout connect 60s
    timeout client 300s
    timeout server 300s
    timeout tunnel 300s
    option {keepalive_option}
frontend bench
    bind 127.0.0.1:{port}
    use_backend sink if {{ path_beg /sink }}
    default_backend backend
backend backend
    server b1 127.0.0.1:{backend}
backend sink
    server s1 127.0.0.1:{sink}
"""


def build() -> None:
    """Compile the C tools (gcc) into bench/build/."""
    BUILD.mkdir(exist_ok=True)
    for name in ("echo_backend", "wsload"):
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(BUILD / name), str(BENCH / f"{name}.c")],
            check=True,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {START_WAIT}s")


def stop(proc: subprocess.Popen) -> None:
    """Stop one process we started, by its PID; kill it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Target:
    """One thing to measure: how to start it, where it listens, whose memory counts."""

    def __init__(self, name: str, argv: list[str] | None, port: int, *, pinned: bool = True,
                 forks: bool = False, sink_port: int | None = None) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.sink_port = port if sink_port is None else sink_port  # where tiny-chunks posts
        self.pinned = pinned  # on PROXY_CORE; else wherever the kernel puts it
        self.forks = forks  # the work is done by child processes (nginx, wstunnel workers)
        self.proc: subprocess.Popen | None = None

    def start(self, log: Path) -> None:
        if self.argv is None:
            return
        with open(log, "ab") as out:
            pin = ["taskset", "-c", PROXY_CORE] if self.pinned else []
            self.proc = subprocess.Popen([*pin, *self.argv], stdout=out, stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def memory_pids(self) -> str | None:
        """The processes that carry the tunnels (nginx and wstunnel's workers when it forks)."""
        if self.proc is None:
            return None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return ",".join(children) if self.forks else str(self.proc.pid)


def wstunnel_argv(conf: Path, bin_dir: Path | None = None) -> list[str]:
    """wstunnel as twistd runs it, from this venv or from ``bin_dir`` (the ``before`` build's)."""
    twistd = (bin_dir or Path(sys.executable).parent) / "twistd"
    return [str(twistd), "-n", "--pidfile=", "wstunnel", "--config", str(conf)]


def proxy_conf(run: Path, backend: int, port: int, keepalive: int, workers: int = 1, sink: int | None = None) -> str:
    """
    The shared file.  With ``keepalive`` the upstream keeps idle
    connections and a plain request goes with an empty Connection header
    (nginx 1.22 needs that to reuse them; wstunnel then sends none).
    ``sink`` is the tiny-chunks upstream (bench/pathcost.py has none: the
    backend stands in).
    """
    return PROXY_CONF.format(
        run=run, backend=backend, sink=backend if sink is None else sink, port=port, workers=workers,
        keepalive=f"\n        keepalive {keepalive};" if keepalive else "",
        plain_connection="''" if keepalive else "close",
    )


def targets(run: Path, backend: int, sink: int, only: set[str] | None, keepalive: int,
            peers: Peers | None = None, tag: str = "") -> list[Target]:
    """The targets of one comparison; ``tag`` names this keepalive's files when several are run."""
    peers = peers or Peers()
    found = [Target("direct", None, backend)]
    port = free_port()
    conf = run / f"proxy{tag}.conf"
    conf.write_text(proxy_conf(run, backend, port, keepalive, sink=sink))
    (run / "tmp").mkdir(exist_ok=True)
    found.append(Target("wstunnel", wstunnel_argv(conf), port))
    if peers.before:
        found.append(Target("before", wstunnel_argv(conf, before_bin(BUILD, peers.before)), port))
    if NGINX:
        argv = [NGINX, "-p", str(run), "-c", str(conf), "-g", "daemon off; worker_rlimit_nofile 20000;"]
        found.append(Target("nginx", argv, port, forks=True))
    if HAPROXY:
        hconf = run / "haproxy.cfg"
        option = "http-keep-alive" if keepalive else "http-server-close"
        hconf.write_text(HAPROXY_CONF.format(backend=backend, sink=sink, port=port, keepalive_option=option))
        found.append(Target("haproxy", [HAPROXY, "-db", "-f", str(hconf)], port))
    found.append(Target("twisted", [sys.executable, str(BENCH / "portforward.py"), str(port), str(backend)], port))
    if peers.mitmproxy:
        sink_port = free_port()
        argv = mitmproxy_argv(BUILD, backend, port, sink, sink_port, run / "mitmproxy")
        found.append(Target("mitmproxy", argv, port, sink_port=sink_port))
    return [t for t in found if only is None or t.name in only]


def worker_targets(run: Path, backend: int, sink: int, keepalive: int) -> list[Target]:
    """wstunnel with 1 and with 2 worker processes, neither pinned: can 2 use both cores?"""
    (run / "tmp").mkdir(exist_ok=True)
    found = []
    for workers in (1, 2):
        port = free_port()
        conf = run / f"proxy-{workers}w.conf"
        conf.write_text(proxy_conf(run, backend, port, keepalive, workers, sink))
        found.append(Target(f"wstunnel-{workers}w", wstunnel_argv(conf), port, pinned=False, forks=workers > 1))
    return found


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies of the proxy core and the load core."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name in (f"cpu{PROXY_CORE}", f"cpu{LOAD_CORE}"):
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]
            ticks[name] = (sum(numbers) - idle, sum(numbers))
    return ticks


def busy(before: dict, after: dict) -> dict[str, float]:
    """Percent busy of each core between two cpu_ticks(): is the proxy or the load the limit?"""
    out = {}
    for name, label in ((f"cpu{PROXY_CORE}", "proxy_core_%"), (f"cpu{LOAD_CORE}", "load_core_%")):
        b = after[name][0] - before[name][0]
        t = after[name][1] - before[name][1]
        out[label] = round(100 * b / t) if t else 0
    return out


def cpu_seconds(pids: str | None) -> float:
    """User plus system CPU time of the proxy processes so far."""
    if not pids:
        return 0.0
    total = 0
    for pid in pids.split(","):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wsload(*args: object) -> dict:
    argv = ["taskset", "-c", LOAD_CORE, str(BUILD / "wsload"), *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return json.loads(done.stdout)


def wrk(port: int, seconds: float) -> dict:
    argv = ["taskset", "-c", LOAD_CORE, WRK, "-t1", "-c50", f"-d{seconds}s", "--latency",
            f"http://127.0.0.1:{port}/"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    units = {"us": 1.0, "ms": 1000.0, "s": 1e6}
    result = {}
    for line in out.splitlines():
        words = line.split()
        if "requests in" in line:
            result["ops"] = int(words[0])
        elif line.startswith("Requests/sec:"):
            result["req/s"] = float(words[1])
        elif words[:1] in (["50%"], ["99%"]):
            value = words[1]
            unit = next(u for u in ("us", "ms", "s") if value.endswith(u))
            result[f"p{words[0][:-1]}_us"] = float(value[: -len(unit)]) * units[unit]
    return result


class BodySink(socketserver.ThreadingTCPServer):
    """
    The tiny-chunks upstream, in this process: reads one request's body
    (Content-Length or chunked) and answers with its size and the number of
    chunks it came in (1 for a length), so the figure shows how each proxy
    re-frames a flood of tiny chunks.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _SinkHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.buffer = bytearray()
        head = self._until(b"\r\n\r\n", 0)
        if head < 0:
            return
        pos = head + 4
        lines = bytes(self.buffer[:head]).lower().split(b"\r\n")
        if b"transfer-encoding: chunked" in lines:
            size, chunks = self._chunked(pos)
        else:
            length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:"))
            while len(self.buffer) < pos + length and self._more():
                pass
            size, chunks = min(length, len(self.buffer) - pos), 1
        body = json.dumps({"bytes": size, "chunks": chunks}).encode()
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

    def _more(self) -> bool:
        data = self.request.recv(256 * 1024)
        self.buffer += data
        return bool(data)

    def _until(self, marker: bytes, pos: int) -> int:
        """Where ``marker`` is found from ``pos``, reading as needed; -1 if the peer closed first."""
        while (found := self.buffer.find(marker, pos)) < 0:
            if not self._more():
                return -1
        return found

    def _chunked(self, pos: int) -> tuple[int, int]:
        size = chunks = 0
        while (lf := self._until(b"\r\n", pos)) >= 0:
            length = int(bytes(self.buffer[pos:lf]).split(b";")[0], 16)
            if not length:
                return size, chunks
            while len(self.buffer) < lf + 4 + length and self._more():
                pass
            size += length
            chunks += 1
            pos = lf + 4 + length
        return size, chunks


def tiny_chunks(port: int, pids: str | None) -> dict:
    """
    One POST of TINY_CHUNKS one-byte chunks on a raw socket: the proxy's CPU
    for the whole body, the time to its answer, and what the upstream got.
    """
    body = b"1\r\nx\r\n" * TINY_CHUNKS + b"0\r\n\r\n"
    head = b"POST /sink HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    cpu = cpu_seconds(pids)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head + body)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    seconds = time.monotonic() - start
    status, _, rest = answer.partition(b"\r\n")
    if b" 200 " not in status:
        raise RuntimeError(f"tiny-chunks answered {status!r}")
    seen = json.loads(rest.partition(b"\r\n\r\n")[2])
    if seen["bytes"] != TINY_CHUNKS:
        raise RuntimeError(f"tiny-chunks: the upstream got {seen['bytes']} bytes of {TINY_CHUNKS}")
    return {"proxy_cpu_ms": 1000 * (cpu_seconds(pids) - cpu), "ms": 1000 * seconds, "upstream_chunks": seen["chunks"]}


def workloads(quick: bool, sink: int) -> dict[str, Callable[[Target], dict]]:
    seconds = 1 if quick else 3
    mib = 32 if quick else 256
    idle = 500 if quick else IDLE_TUNNELS

    def get(t: Target) -> dict:
        return wrk(t.port, seconds) if WRK else wsload("get", t.port, 50, seconds)

    def idle_tunnels(t: Target) -> dict:
        pids = t.memory_pids()
        return wsload("idle", t.port, idle, pids) if pids else {}

    def tiny(t: Target) -> dict:
        if t.argv is None:
            return tiny_chunks(sink, None)  # the sink itself, no proxy
        return {} if t.name == "twisted" else tiny_chunks(t.sink_port, t.memory_pids())  # a port-forwarder: no HTTP

    return {
        "bulk": lambda t: wsload("bulk", t.port, mib),
        "pingpong1": lambda t: wsload("pingpong", t.port, 1, seconds),
        "pingpong50": lambda t: wsload("pingpong", t.port, 50, seconds),
        "handshake": lambda t: wsload("handshake", t.port, 8, seconds),
        "get": get,
        "tiny-chunks": tiny,
        # Last: the proxy is still closing the 10000 connections when wsload
        # exits, and a workload right after it measured that too (a GET run
        # then showed 25 % more CPU per request and a p99 of 0.4-0.7 s).
        "idle": idle_tunnels,
    }


def versions(extra: list[str] | None = None) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )
    import twisted

    parts = [
        f"date {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"CPU {cpu}, {os.cpu_count()} cores",
        f"Linux {platform.release()}",
        f"Python {platform.python_version()}",
        f"Twisted {twisted.__version__}",
    ]
    for tool, flag in ((NGINX, "-v"), (HAPROXY, "-v"), (WRK, "--version")):
        if tool:
            out = subprocess.run([tool, flag], capture_output=True, text=True)
            text = (out.stdout + out.stderr).splitlines()
            parts.append(text[0] if text else tool)
    return "; ".join(parts + (extra or []))


def profile(target: Target, run: Path, load: Callable[[Target], dict], name: str) -> Path:
    """py-spy samples of wstunnel while `load` runs; returns the collapsed stacks."""
    out = run / f"profile-{name}.txt"
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(target.proc.pid),  # type: ignore[union-attr]
         "--rate", "250", "--format", "raw", "--output", str(out), "--duration", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)  # py-spy attaches
        load(target)
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
    return out


def _frame(text: str) -> str:
    """``function (file:line)`` without the line; py-spy's bare frames (native code) as they are."""
    function, _, where = text.partition(" (")
    return f"{function} ({where.split(':')[0]})" if where else function


def summarise(stacks: Path, top: int = 15) -> str:
    """Self and inclusive sample shares per function from py-spy's raw output."""
    own: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        names = [_frame(f) for f in frames.split(";")]
        own[names[-1]] += n
        for fn in set(names):
            incl[fn] += n
    rows = [f"{total} samples", "| self % | total % | function |", "|---|---|---|"]
    for fn, n in own.most_common(top):
        rows.append(f"| {100 * n / total:.1f} | {100 * incl[fn] / total:.1f} | `{fn}` |")
    return "\n".join(rows)


def keepalive_list(text: str) -> list[int]:
    """``32`` or ``0,32``: the upstream keepalive values to run the GET workload with."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if min(values) < 0 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"distinct numbers from 0 up, please: {text!r}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every workload (default 3)")
    parser.add_argument("--quick", action="store_true", help="short runs, small sizes: a smoke check")
    parser.add_argument("--only", help="comma-separated targets "
                        "(direct,wstunnel,before,nginx,haproxy,twisted,mitmproxy)")
    parser.add_argument("--workloads", help="comma-separated workloads (default all)")
    parser.add_argument("--keepalive", type=keepalive_list, default="32",
                        help="idle upstream connections kept (keepalive N; 0: a connection per request); "
                        "several, as 0,32: GET runs with each, every other workload with the first")
    parser.add_argument("--before", metavar="REV",
                        help="also run wstunnel built from git revision REV (target `before`)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the comparison, py-spy wstunnel under ping-pong and handshakes")
    parser.add_argument("--workers", action="store_true",
                        help="instead of the comparison, wstunnel with worker_processes 1 and 2, unpinned")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 2 * IDLE_TUNNELS + 1000:
        print(f"warning: open files limit {hard} is too low for {IDLE_TUNNELS} idle tunnels", file=sys.stderr)
    build()
    run = BENCH / "results" / time.strftime("%Y%m%d-%H%M%S")
    run.mkdir(parents=True)
    backend = subprocess.Popen(["taskset", "-c", LOAD_CORE, str(BUILD / "echo_backend"), "0"],
                               stdout=subprocess.PIPE, text=True)
    sink = BodySink()
    try:
        backend_port = int(backend.stdout.readline())  # type: ignore[union-attr]
        only = set(args.only.split(",")) if args.only else None
        loads = workloads(args.quick, sink.port)
        if args.workloads:
            loads = {k: v for k, v in loads.items() if k in args.workloads.split(",")}
        if args.profile:
            return run_profile(targets(run, backend_port, sink.port, only, args.keepalive[0]), loads, run)
        if args.workers:
            found = worker_targets(run, backend_port, sink.port, args.keepalive[0])
            results, failures = measure(found, loads, run, args.repeat)
            return report(run, results, [t.name for t in found], failures, [("wstunnel-2w", "wstunnel-1w")])
        peers = Peers.make(only, args.before, BUILD, BENCH.parent)
        return compare(run, backend_port, sink.port, only, args.keepalive, peers, loads, args.repeat)
    finally:
        sink.shutdown()
        stop(backend)


def compare(run: Path, backend: int, sink: int, only: set[str] | None, keepalives: list[int], peers: Peers,
            loads: dict, repeat: int) -> int:
    """
    Every workload with the first keepalive value, then GET again with each
    further one (a fresh start of every target, since the file differs).
    """
    results: dict = {}
    failures: list[str] = []
    names: list[str] = []
    for keepalive in keepalives:
        phase = loads if keepalive == keepalives[0] else {k: v for k, v in loads.items() if k == "get"}
        if not phase:
            continue
        several = len(keepalives) > 1
        if several:
            print(f"== upstream keepalive {keepalive}: {', '.join(phase)}", flush=True)
        found = targets(run, backend, sink, only, keepalive, peers, f"-keepalive{keepalive}" if several else "")
        names = [t.name for t in found]
        got, failed = measure(found, phase, run, repeat)
        failures += [f"keepalive {keepalive}: {f}" if several else f for f in failed]
        for name, by_workload in got.items():
            for workload, runs in by_workload.items():
                key = get_workload(keepalive, keepalives) if workload == "get" else workload
                results.setdefault(name, {})[key] = runs
    checked = goal_table(results, names, keepalives)
    notes = f"Issue 17's targets:\n\n{checked}\n" if checked else ""
    if peers.skipped:
        notes += "\nSKIPPED:\n" + "\n".join(peers.skipped) + "\n"
    return report(run, results, names, failures, RATIOS, figures(keepalives), notes, peers.versions())


def measure(all_targets: list[Target], loads: dict, run: Path, repeat: int) -> tuple[dict, list[str]]:
    """Each workload on each target, ``repeat`` times in a rotating order: every figure, and what failed."""
    results: dict = {t.name: {w: [] for w in loads} for t in all_targets}
    failures = []
    for rep in range(repeat):
        shift = rep % len(all_targets)
        for target in all_targets[shift:] + all_targets[:shift]:
            print(f"[{rep + 1}/{repeat}] {target.name}", flush=True)
            try:
                try:
                    target.start(run / f"{target.name}.out")
                except RuntimeError as e:
                    failures.append(f"{target.name}: {e}")
                    print(f"  FAILED to start: {e}", flush=True)
                    continue
                for workload, load in loads.items():
                    try:
                        ticks, pids = cpu_ticks(), target.memory_pids()
                        cpu = cpu_seconds(pids)
                        figures = load(target)
                        figures.update(busy(ticks, cpu_ticks()))
                        if pids and figures.get("ops"):
                            figures["proxy_cpu_us_per_op"] = 1e6 * (cpu_seconds(pids) - cpu) / figures["ops"]
                    except (RuntimeError, subprocess.SubprocessError, ValueError, OSError) as e:
                        failures.append(f"{target.name} {workload}: {e}")
                        print(f"  {workload}: FAILED {e}", flush=True)
                        continue
                    if figures:
                        results[target.name][workload].append(figures)
                        print(f"  {workload}: {json.dumps(figures)}", flush=True)
            finally:
                target.stop()
    return results, failures


def report(run: Path, results: dict, names: list[str], failures: list[str], ratios: list[tuple[str, str]],
           rows: list[tuple[str, str, str]] = FIGURES, notes: str = "", extra: list[str] | None = None) -> int:
    """Print and save the medians and ratios; the exit status: 1 when anything failed."""
    text = f"{versions(extra)}\n\n{table(results, names, ratios, rows)}\n"
    if notes:
        text += f"\n{notes}"
    if failures:
        text += "\nFAILED:\n" + "\n".join(failures) + "\n"
    (run / "results.json").write_text(json.dumps(results, indent=1))
    (run / "report.md").write_text(text)
    print("\n" + text)
    print(f"results in {run}")
    return 1 if failures else 0


def run_profile(all_targets: list[Target], loads: dict, run: Path) -> int:
    target = next(t for t in all_targets if t.name == "wstunnel")
    target.start(run / "wstunnel.out")
    try:
        for workload in ("pingpong1", "pingpong50", "handshake", "get"):
            if workload in loads:
                stacks = profile(target, run, loads[workload], workload)
                print(f"\n### {workload}\n\n{summarise(stacks)}", flush=True)
    finally:
        target.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
