"""
The process's open client connections, shared by every listener: what the
connection limit counts, what a graceful shutdown waits for, what the
status pages read, and which connections may be closed to admit new ones.

At ``worker_connections`` nginx closes connections it marked reusable
before it refuses anyone (``ngx_drain_connections``): those waiting for a
first request and keep-alive ones between requests, the longest waiting
first.  A connection stops being reusable at the first byte of a request,
so a connection holding part of a head is a request in flight and is never
closed, nor is one whose answer is still being written, nor a tunnel.  The
client protocol reports each change (:meth:`Registry.idle`,
:meth:`Registry.busy`) and an insertion-ordered dict keeps the idle ones,
oldest first, so admission never looks at the other connections.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Protocol

from twisted.internet.interfaces import IReactorTime

from wstunnel.net.limits import ConnectionLimit
from wstunnel.obs.metrics import Live, Stats

__all__ = ["RECLAIM_BATCH", "Registry"]

# The most idle connections one accept may close, nginx's bound per drain.
RECLAIM_BATCH = 32


class Client(Live, Protocol):
    """What the registry needs from a client connection."""

    def refuse(self) -> None: ...
    def drain(self) -> None: ...
    def shut_down(self) -> None: ...
    def abort(self) -> None: ...


class Registry:
    """
    ``clients`` is the set of open client connections; ``on_empty`` (set by
    a draining shutdown) is called when the last one closes.
    """

    def __init__(self, clock: IReactorTime, peers: Callable[[], Mapping[str, Iterable[tuple[str, bool]]]] = dict) -> None:
        self.clients: set = set()
        self.stats = Stats(lambda: self.clients, peers)
        self.limit = ConnectionLimit(clock)
        self.on_empty: Callable[[], None] | None = None
        self._serial = 0
        self._idle: OrderedDict[Client, None] = OrderedDict()

    def admit(self, client: Client, limit: int) -> int:
        """
        Register ``client`` and return its serial number (``$connection``),
        or 0 after refusing it because ``limit`` descriptors are in use and
        no idle connection could be closed to make room.  A new client has
        sent nothing yet, so it is idle from the start.
        """
        in_use = len(self.clients) + self.stats.tunnels_open
        if in_use >= limit:
            in_use -= self._reclaim(in_use - limit + 1, limit)
        handled = self.limit.admit(in_use, limit)
        self.stats.accepted(handled)
        if not handled:
            client.refuse()
            return 0
        self.clients.add(client)
        self._idle[client] = None
        self._serial += 1
        return self._serial

    def idle(self, client: Client) -> None:
        """``client`` waits for a request and holds no byte of one: it may be closed for a new client."""
        if client in self.clients:
            self._idle[client] = None

    def busy(self, client: Client) -> None:
        """``client`` has begun a request (or is closing): it is kept."""
        self._idle.pop(client, None)

    def release(self, client: Client) -> None:
        self.clients.discard(client)
        self._idle.pop(client, None)
        if not self.clients and self.on_empty is not None:
            self.on_empty()

    def _reclaim(self, wanted: int, limit: int) -> int:
        """
        Close up to ``wanted`` idle connections, the longest idle first, as a
        drain closes a connection between requests; they count no more at
        once, since closing them waits for nothing.
        """
        idle = self._idle
        count = min(wanted, len(idle), RECLAIM_BATCH)
        for _ in range(count):
            client, _ = idle.popitem(last=False)
            self.clients.discard(client)
            client.drain()
        if count:
            self.limit.reusing(limit)
            self.stats.reclaimed(count)
        return count
