"""
``worker_connections`` and ``worker_rlimit_nofile``.

The connection limit counts what holds a descriptor: every client
connection, plus the upstream leg of every tunnel (a tunnel is two
connections, as in nginx).  At the limit, idle client connections are
closed to make room (the registry picks them); a client is refused, closed
at once before a byte is read, only when none is idle.  Both warnings are
rate-limited because a flood at the limit is exactly when a log line per
connection would hurt.
"""

from __future__ import annotations

import resource

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["ConnectionLimit", "raise_nofile"]

WARN_INTERVAL = 1.0


class ConnectionLimit:
    """Admission for new client connections, each warning at most once a second."""

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._last_warning = float("-inf")
        self._last_reuse = float("-inf")

    def admit(self, in_use: int, limit: int) -> bool:
        """Whether one more client fits when ``in_use`` descriptors are held."""
        if in_use < limit:
            return True
        now = self._clock.seconds()
        if now - self._last_warning >= WARN_INTERVAL:
            self._last_warning = now
            self.log.warn("{limit} worker_connections are not enough, closing new connections", limit=limit)
        return False

    def reusing(self, limit: int) -> None:
        """Idle connections were closed for a new one: nginx's own warning, at its level."""
        now = self._clock.seconds()
        if now - self._last_reuse >= WARN_INTERVAL:
            self._last_reuse = now
            self.log.warn("{limit} worker_connections are not enough, reusing connections", limit=limit)


def raise_nofile(wanted: int) -> None:
    """
    Set the soft and (when needed) hard descriptor limit to ``wanted``;
    raising the hard limit needs privilege, so failure is an ``OSError``
    naming both numbers.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= wanted else wanted
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, new_hard))
    except (ValueError, OSError) as e:
        raise OSError(f"setrlimit(RLIMIT_NOFILE, {wanted}) failed ({e}), the hard limit is {hard}") from None
