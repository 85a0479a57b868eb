"""
Choosing the next peer of an upstream group.

Round robin over the resolved peers, skipping the ones this request has
already tried (nginx tries each peer at most once per request).  The state
is a plain counter per group, kept by the running configuration, so it is
a pure function of the picks made so far.
"""

from __future__ import annotations

from typing import Collection

from .model import Peer, Upstream

__all__ = ["RoundRobin"]


class RoundRobin:
    """Round robin over one upstream group's peers."""

    __slots__ = ("peers", "_next")

    def __init__(self, upstream: Upstream) -> None:
        self.peers = upstream.peers
        self._next = 0

    def pick(self, tried: Collection[Peer] = ()) -> Peer | None:
        """The next peer not in ``tried``, or None when every peer was tried."""
        count = len(self.peers)
        for step in range(count):
            peer = self.peers[(self._next + step) % count]
            if peer not in tried:
                self._next = (self._next + step + 1) % count
                return peer
        return None
