"""
The process's open client connections, shared by every listener: what the
connection limit counts, what a graceful shutdown waits for, and what the
status pages read.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Protocol

from twisted.internet.interfaces import IReactorTime

from wstunnel.net.limits import ConnectionLimit
from wstunnel.obs.metrics import Live, Stats

__all__ = ["Registry"]


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

    def admit(self, client: Client, limit: int) -> int:
        """
        Register ``client`` and return its serial number (``$connection``),
        or 0 after refusing it because ``limit`` descriptors are in use.
        """
        handled = self.limit.admit(len(self.clients) + self.stats.tunnels_open, limit)
        self.stats.accepted(handled)
        if not handled:
            client.refuse()
            return 0
        self.clients.add(client)
        self._serial += 1
        return self._serial

    def release(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients and self.on_empty is not None:
            self.on_empty()
