"""
The benchmark's report: which figures it prints, the medians of the
repetitions, the ratios between targets, and issue 17's targets checked
against those ratios.  Kept apart from bench/run.py, which runs things.
"""

from __future__ import annotations

import statistics

# (label, workload, key)
FIGURES = [
    ("bulk MB/s", "bulk", "MB/s"),
    ("bulk proxy CPU us per 64 KiB frame", "bulk", "proxy_cpu_us_per_op"),
    ("ping-pong 1 tunnel msgs/s", "pingpong1", "msgs/s"),
    ("ping-pong 1 tunnel RTT p50 us", "pingpong1", "rtt_p50_us"),
    ("ping-pong 1 tunnel RTT p99 us", "pingpong1", "rtt_p99_us"),
    ("ping-pong 1 tunnel proxy CPU us per msg", "pingpong1", "proxy_cpu_us_per_op"),
    ("ping-pong 50 tunnels msgs/s", "pingpong50", "msgs/s"),
    ("ping-pong 50 tunnels RTT p50 us", "pingpong50", "rtt_p50_us"),
    ("ping-pong 50 tunnels RTT p99 us", "pingpong50", "rtt_p99_us"),
    ("ping-pong 50 tunnels proxy CPU us per msg", "pingpong50", "proxy_cpu_us_per_op"),
    ("ping-pong 50 tunnels load core busy %", "pingpong50", "load_core_%"),
    ("handshakes/s", "handshake", "per_s"),
    ("handshake time to 101 p50 us", "handshake", "t101_p50_us"),
    ("handshake time to 101 p99 us", "handshake", "t101_p99_us"),
    ("handshake proxy CPU us each", "handshake", "proxy_cpu_us_per_op"),
    ("handshakes load core busy %", "handshake", "load_core_%"),
    ("idle bytes per tunnel", "idle", "bytes_per_tunnel"),
    ("idle bytes per tunnel after one echo", "idle", "bytes_per_tunnel_after_echo"),
    ("GET req/s", "get", "req/s"),
    ("GET p99 us", "get", "p99_us"),
    ("GET proxy CPU us each", "get", "proxy_cpu_us_per_op"),
    ("GET load core busy %", "get", "load_core_%"),
    ("tiny-chunks proxy CPU ms (500,000 one-byte chunks)", "tiny-chunks", "proxy_cpu_ms"),
    ("tiny-chunks ms to the answer", "tiny-chunks", "ms"),
    ("tiny-chunks chunks the upstream got (1: a length)", "tiny-chunks", "upstream_chunks"),
]


# The comparisons printed beside the medians, where both targets ran.
RATIOS = [
    ("wstunnel", "nginx"), ("before", "nginx"), ("mitmproxy", "nginx"), ("twisted", "nginx"),
    ("wstunnel", "before"), ("wstunnel", "twisted"), ("wstunnel", "mitmproxy"),
]

# Issue 17's targets: (what, workload, key, against, at most (<=) or at least (>=), bound).
# The GET ones are per keepalive value (get_workload); the worker one is --workers' table.
GOALS = [
    ("CPU per handshake", "handshake", "proxy_cpu_us_per_op", "twisted", "<=", 1.3),
    ("ping-pong 50 tunnels msgs/s", "pingpong50", "msgs/s", "nginx", ">=", 0.6),
    ("ping-pong 50 tunnels RTT p99", "pingpong50", "rtt_p99_us", "nginx", "<=", 2.0),
    ("bulk MB/s", "bulk", "MB/s", "nginx", ">=", 1.5),
    ("ping-pong 1 tunnel msgs/s", "pingpong1", "msgs/s", "nginx", ">=", 0.8),
    ("ping-pong 1 tunnel RTT p99", "pingpong1", "rtt_p99_us", "nginx", "<=", 1.5),
    ("idle bytes per tunnel", "idle", "bytes_per_tunnel", "nginx", "<=", 0.5),
    ("moonshot: handshakes/s", "handshake", "per_s", "nginx", ">=", 0.4),
]
GET_GOALS = {0: 0.35, 32: 0.25}  # plain GET req/s against nginx, by upstream keepalive


def get_workload(keepalive: int, keepalives: list[int]) -> str:
    """The GET workload's name: plain ``get`` when one keepalive value is run, else labelled with it."""
    return "get" if len(keepalives) == 1 else f"get keepalive {keepalive}"


def figures(keepalives: list[int]) -> list[tuple[str, str, str]]:
    """FIGURES with the GET rows once per keepalive value when several are run."""
    if len(keepalives) == 1:
        return FIGURES
    out = [f for f in FIGURES if f[1] != "get"]
    for keepalive in keepalives:
        out += [(f"{label} (keepalive {keepalive})", get_workload(keepalive, keepalives), key)
                for label, workload, key in FIGURES if workload == "get"]
    return out


def goals(keepalives: list[int]) -> list[tuple[str, str, str, str, str, float]]:
    gets = [(f"plain GET req/s, keepalive {k}", get_workload(k, keepalives), "req/s", "nginx", ">=", GET_GOALS[k])
            for k in keepalives if k in GET_GOALS]
    return GOALS[:1] + gets + GOALS[1:]


def median(results: dict, name: str, workload: str, key: str) -> float | None:
    values = [r[key] for r in results.get(name, {}).get(workload, []) if key in r]
    return statistics.median(values) if values else None


def goal_table(results: dict, names: list[str], keepalives: list[int]) -> str:
    """
    Issue 17's targets: wstunnel's ratio (and the ``before`` build's)
    against each bound whose reference target ran; empty when none did.
    """
    subjects = [n for n in ("before", "wstunnel") if n in names]
    lines = ["| target | bound | " + " | ".join(subjects) + " |", "|" + "---|" * (2 + len(subjects))]
    for what, workload, key, against, op, bound in goals(keepalives):
        base = median(results, against, workload, key) if against in names else None
        if not base:
            continue
        cells = []
        for subject in subjects:
            value = median(results, subject, workload, key)
            if value is None:
                cells.append("-")
                continue
            ratio = value / base
            met = ratio <= bound if op == "<=" else ratio >= bound
            cells.append(f"{ratio:.2f} {'met' if met else 'missed'}")
        lines.append(f"| {what} | {op} {bound}x {against} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def table(results: dict, names: list[str], ratios: list[tuple[str, str]],
          rows: list[tuple[str, str, str]] = FIGURES) -> str:
    """
    Medians per figure and target, and the ratio of each pair of targets in
    ``ratios``; a figure no target has (its workload was not run) gets no row.
    """
    ratios = [r for r in ratios if r[0] in names and r[1] in names]
    head = ["figure", *names] + ["/".join(r) for r in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, workload, key in rows:
        medians = {name: median(results, name, workload, key) for name in names}
        if all(m is None for m in medians.values()):
            continue
        row = [label] + [_fmt(medians[n]) for n in names]
        for a, b in ratios:
            w, n = medians[a], medians[b]
            row.append(f"{w / n:.2f}" if w is not None and n else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
