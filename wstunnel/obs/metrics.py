"""
Counters for ``stub_status`` and the Prometheus endpoint (``wstunnel_metrics``).

:class:`Stats` is one process's numbers: counters bumped once per
connection, request or tunnel (never per chunk), and gauges computed from
the open connections when a snapshot is taken.  A snapshot is a flat
``{series: value}`` dict, where a series is already written the way the
exposition writes it (``name{label="value"}``), so merging the snapshots of
several workers is a sum per key.

With ``worker_processes`` above 1, each worker writes its snapshot to
``DIR/worker-N.json`` once a second (:class:`SnapshotFiles`) and a scrape,
whichever worker answers it, adds the other workers' latest files to its
own live snapshot: the numbers cover every worker and are at most
:data:`PUBLISH_INTERVAL` old for the others.  A replaced worker starts its
counters from zero, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import json
import math
import os
from bisect import bisect_left
from typing import Callable, Iterable, Mapping, Protocol

__all__ = [
    "DURATION_BUCKETS",
    "PUBLISH_INTERVAL",
    "PROMETHEUS_CONTENT_TYPE",
    "SnapshotFiles",
    "Stats",
    "merge",
    "prometheus_text",
    "series",
    "status_page",
    "stub_status_text",
]

PUBLISH_INTERVAL = 1.0
PROMETHEUS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Tunnel lifetimes: a WebSocket lives from seconds to days.
DURATION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0)

# name -> (type, help), in exposition order.
FAMILIES: Mapping[str, tuple[str, str]] = {
    "wstunnel_connections_accepted_total": ("counter", "Client connections accepted."),
    "wstunnel_connections_handled_total": ("counter", "Accepted client connections not closed by worker_connections."),
    "wstunnel_connections_reclaimed_total": ("counter", "Idle client connections closed at worker_connections to admit new ones."),
    "wstunnel_connections_active": ("gauge", "Open client connections."),
    "wstunnel_connections": ("gauge", "Open client connections by state, as stub_status counts them."),
    "wstunnel_requests_total": ("counter", "Client requests read."),
    "wstunnel_responses_total": ("counter", "Responses by status class (a tunnel counts as 1xx when it ends)."),
    "wstunnel_upgrades_total": ("counter", "Upgrade requests by outcome: tunnel, or refused (any other answer)."),
    "wstunnel_upstream_invalid_101_total": ("counter", "101 answers from upstreams that failed validation."),
    "wstunnel_tunnels_open": ("gauge", "Open tunnels."),
    "wstunnel_tunnel_bytes_total": ("counter", "Bytes relayed through tunnels, by direction."),
    "wstunnel_tunnel_duration_seconds": ("histogram", "Lifetime of ended tunnels."),
    "wstunnel_tunnels_closed_total": ("counter", "Ended tunnels by reason."),
    "wstunnel_upstream_failures_total": ("counter", "Failed attempts at upstream peers (connect, timeout, invalid answer, early close)."),
    "wstunnel_upstream_peer_up": ("gauge", "Configured upstream peers; 1 = eligible for new requests."),
    "wstunnel_config_reloads_total": ("counter", "Configuration reloads by result (per process, the largest is shown)."),
    "wstunnel_workers": ("gauge", "Worker processes whose numbers are included."),
}
# Counted identically by every worker: merged by maximum, not by sum.
_MAX_MERGED = ("wstunnel_config_reloads_total", "wstunnel_upstream_peer_up")


def series(name: str, **labels: str) -> str:
    """``name{a="x",b="y"}`` with the exposition format's escaping."""
    if not labels:
        return name
    body = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return f"{name}{{{body}}}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Live(Protocol):
    """What a snapshot reads from one open client connection."""

    activity: str  # "reading", "writing" or "waiting"
    tunnel_bytes: tuple[int, int] | None  # (client to upstream, upstream to client) while a tunnel runs


class Stats:
    """
    One process's counters, bumped by explicit calls where each event
    happens: the client protocol, the exchange, the service.
    """

    def __init__(self, clients: Callable[[], Iterable[Live]], peers: Callable[[], Mapping[str, Iterable[tuple[str, bool]]]]) -> None:
        self._clients = clients
        self._peers = peers
        self.counters: dict[str, float] = {}
        self.tunnels_open = 0
        self._tunnel_bytes = [0, 0]
        # Tunnels are counted in plain fields and become series only in a
        # snapshot: an open and a close cost a few additions, not a dict
        # update per histogram bucket.
        self._tunnels_opened = 0
        self._closed: dict[str, int] = {}  # reason -> count
        self._durations = [0] * (len(DURATION_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self._duration_sum = 0.0
        self.files: SnapshotFiles | None = None  # set in a multi-worker run

    def add(self, key: str, amount: float = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + amount

    # Hooks called by the client protocol, the exchange and the service.
    # Those of every connection and request (accepted, request_started,
    # request_done) update the dict in place rather than through add().

    def accepted(self, handled: bool) -> None:
        counters = self.counters
        counters[_ACCEPTED] = counters.get(_ACCEPTED, 0) + 1
        if handled:
            counters[_HANDLED] = counters.get(_HANDLED, 0) + 1

    def reclaimed(self, count: int) -> None:
        """``count`` idle connections were closed at worker_connections to admit a new one."""
        self.add("wstunnel_connections_reclaimed_total", count)

    def request_started(self) -> None:
        counters = self.counters
        counters[_REQUESTS] = counters.get(_REQUESTS, 0) + 1

    def request_done(self, status: int, upgrade_asked: bool) -> None:
        counters = self.counters
        key = _RESPONSES[status // 100]
        counters[key] = counters.get(key, 0) + 1
        if upgrade_asked and status != 101:
            self.add(_UPGRADES_REFUSED)

    def tunnel_opened(self) -> None:
        self.tunnels_open += 1
        self._tunnels_opened += 1

    def tunnel_closed(self, reason: str, seconds: float, to_upstream: int, to_client: int) -> None:
        self.tunnels_open -= 1
        tunnel_bytes = self._tunnel_bytes
        tunnel_bytes[0] += to_upstream
        tunnel_bytes[1] += to_client
        closed = self._closed
        closed[reason] = closed.get(reason, 0) + 1
        self._durations[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self._duration_sum += seconds

    def reloaded(self, ok: bool) -> None:
        self.add(series("wstunnel_config_reloads_total", result="ok" if ok else "failed"))

    def upstream_failed(self, peer: str) -> None:
        """An attempt at ``peer`` failed: connect, timeout, invalid answer or early close."""
        self.add(series("wstunnel_upstream_failures_total", peer=peer))

    def invalid_101(self) -> None:
        """A 101 that failed validation (also counted as a failure of its peer)."""
        self.add("wstunnel_upstream_invalid_101_total")

    # Reading.

    def snapshot(self) -> dict[str, float]:
        """Counters plus the gauges of this moment; open tunnels' bytes so far are included."""
        values = dict(self.counters)
        self._tunnel_series(values)
        states = {"reading": 0, "writing": 0, "waiting": 0}
        to_upstream, to_client = self._tunnel_bytes
        for client in self._clients():
            states[client.activity] += 1
            if client.tunnel_bytes is not None:
                to_upstream += client.tunnel_bytes[0]
                to_client += client.tunnel_bytes[1]
        values["wstunnel_connections_active"] = sum(states.values())
        values.setdefault("wstunnel_connections_reclaimed_total", 0)
        for state, count in states.items():
            values[series("wstunnel_connections", state=state)] = count
        values["wstunnel_tunnels_open"] = self.tunnels_open
        values[series("wstunnel_tunnel_bytes_total", direction="client_to_upstream")] = to_upstream
        values[series("wstunnel_tunnel_bytes_total", direction="upstream_to_client")] = to_client
        for upstream, peers in self._peers().items():
            for peer, up in peers:
                values[series("wstunnel_upstream_peer_up", upstream=upstream, peer=peer)] = int(up)
        values["wstunnel_workers"] = 1
        return values

    def _tunnel_series(self, values: dict[str, float]) -> None:
        """The tunnel counters as series (the histogram's cumulative); a reason or outcome that never happened has none."""
        if self._tunnels_opened:
            values[_UPGRADES_TUNNEL] = self._tunnels_opened
        for reason, count in self._closed.items():
            values[series("wstunnel_tunnels_closed_total", reason=reason)] = count
        below = 0
        for (_, key), count in zip(_DURATION_SERIES, self._durations):
            below += count
            values[key] = below
        values["wstunnel_tunnel_duration_seconds_sum"] = self._duration_sum
        values["wstunnel_tunnel_duration_seconds_count"] = below

    def totals(self) -> dict[str, float]:
        """This process's live numbers plus the other workers' latest ones."""
        own = self.snapshot()
        if self.files is None:
            return own
        return merge([own, *self.files.others()])


def merge(snapshots: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Several processes' snapshots as one: sums, except the per-process copies of shared facts."""
    total: dict[str, float] = {}
    for snapshot in snapshots:
        for key, value in snapshot.items():
            if key in total and key.startswith(_MAX_MERGED):
                total[key] = max(total[key], value)
            else:
                total[key] = total.get(key, 0) + value
    return total


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


# The series a request or tunnel counts, named once: building a series name
# per request is a measurable share of a plain GET (doc/performance.md).
# A status of 600 or more (the gate allows up to 999) is counted as such.
_RESPONSES = tuple(series("wstunnel_responses_total", **{"class": f"{n}xx"}) for n in range(10))
_ACCEPTED = "wstunnel_connections_accepted_total"
_HANDLED = "wstunnel_connections_handled_total"
_REQUESTS = "wstunnel_requests_total"
_UPGRADES_REFUSED = series("wstunnel_upgrades_total", outcome="refused")
_UPGRADES_TUNNEL = series("wstunnel_upgrades_total", outcome="tunnel")
_DURATION_SERIES = tuple(
    (bound, series("wstunnel_tunnel_duration_seconds_bucket", le=label))
    for bound, label in (*((b, _number(b)) for b in DURATION_BUCKETS), (math.inf, "+Inf"))
)


def _family(key: str) -> str:
    name = key.split("{", 1)[0]
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in FAMILIES:
            return name[: -len(suffix)]
    return name


def prometheus_text(values: Mapping[str, float]) -> bytes:
    """The text exposition format (0.0.4): HELP and TYPE per family, then its series."""
    grouped: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for key in sorted(values, key=_bucket_order):
        grouped.setdefault(_family(key), []).append(f"{key} {_number(values[key])}")
    lines = []
    for name, samples in grouped.items():
        kind, text = FAMILIES.get(name, ("untyped", name))
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples]
    return ("\n".join(lines) + "\n").encode()


def _bucket_order(key: str) -> tuple:
    """Series sorted by name, histogram buckets by their bound (``+Inf`` last)."""
    name, _, labels = key.partition("{")
    if 'le="' in labels:
        bound = labels.split('le="', 1)[1].split('"', 1)[0]
        return (name, float("inf") if bound == "+Inf" else float(bound), labels)
    return (name, 0.0, labels)


def stub_status_text(values: Mapping[str, float]) -> bytes:
    """nginx's stub_status page, byte for byte, so its exporters and dashboards read it."""
    def get(key: str) -> int:
        return int(values.get(key, 0))

    return (
        f"Active connections: {get('wstunnel_connections_active')} \n"
        "server accepts handled requests\n"
        f" {get('wstunnel_connections_accepted_total')} {get('wstunnel_connections_handled_total')}"
        f" {get('wstunnel_requests_total')} \n"
        f"Reading: {get(series('wstunnel_connections', state='reading'))}"
        f" Writing: {get(series('wstunnel_connections', state='writing'))}"
        f" Waiting: {get(series('wstunnel_connections', state='waiting'))} \n"
    ).encode()


class SnapshotFiles:
    """
    The per-worker snapshot files of a multi-process run.  Each file is
    replaced atomically (write, then rename), so a reader sees a whole
    snapshot or the previous one.
    """

    def __init__(self, directory: str, index: int) -> None:
        self.directory = directory
        self.index = index

    def _path(self, index: int) -> str:
        return os.path.join(self.directory, f"worker-{index}.json")

    def publish(self, snapshot: Mapping[str, float]) -> None:
        path = self._path(self.index)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as f:
            json.dump(snapshot, f)
        os.replace(temporary, path)

    def others(self) -> list[dict[str, float]]:
        """The latest snapshot of every other worker that has written one."""
        found = []
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".json") or name == f"worker-{self.index}.json":
                continue
            try:
                with open(os.path.join(self.directory, name)) as f:
                    found.append(json.load(f))
            except (OSError, ValueError):
                continue
        return found


def status_page(kind: str, stats: Stats) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a ``stub_status`` or ``wstunnel_metrics`` answer."""
    values = stats.totals()
    if kind == "stub_status":
        return [(b"Content-Type", b"text/plain")], stub_status_text(values)
    return [(b"Content-Type", PROMETHEUS_CONTENT_TYPE)], prometheus_text(values)
