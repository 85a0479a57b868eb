"""
What happened on each upstream attempt of one request, for the
``$upstream_*`` log variables.

The exchange fills one :class:`UpstreamRecord` per request (an
:class:`Attempt` per peer tried, times from the injected clock); the access
log reads it when the line is written, which for a WebSocket is when the
tunnel ends.  The values are nginx's: one entry per attempt, joined with
``", "``, ``-`` for a value that does not exist (no status from a peer that
never answered, no header time before a head arrived), times in seconds
with millisecond resolution counted from the attempt's start.  Byte counts
are taken from the connection's own counters when the attempt ends
(:class:`~wstunnel.net.upstream.UpstreamProtocol`, plus the tunnel's for a
101), as nginx reads ``c->sent`` and its received count.
"""

from __future__ import annotations

from attrs import define, field

__all__ = ["Attempt", "UpstreamRecord"]


@define
class Attempt:
    """One peer tried; times are clock readings, None until they happen."""

    address: str  # $upstream_addr form, or the group's name for "no live upstreams"
    started: float
    status: int | None = None  # the response status, or 502/504 for a failure
    connected: float | None = None
    header: float | None = None
    ended: float | None = None
    bytes_sent: int = 0  # to the peer: request head, body, and a tunnel's client bytes
    bytes_received: int = 0  # from the peer: response head, body, and a tunnel's upstream bytes

    def elapsed(self, when: float | None) -> str:
        return "-" if when is None else f"{max(0.0, when - self.started):.3f}"


@define
class UpstreamRecord:
    """Every attempt of one request, in order."""

    attempts: list[Attempt] = field(factory=list)

    def begin(self, address: str, now: float) -> Attempt:
        attempt = Attempt(address, now)
        self.attempts.append(attempt)
        return attempt

    def addr(self) -> str:
        """``$upstream_addr``."""
        return ", ".join(a.address for a in self.attempts)

    def status(self) -> str:
        """``$upstream_status``."""
        return ", ".join("-" if a.status is None else str(a.status) for a in self.attempts)

    def connect_time(self) -> str:
        """``$upstream_connect_time``."""
        return ", ".join(a.elapsed(a.connected) for a in self.attempts)

    def header_time(self) -> str:
        """``$upstream_header_time``."""
        return ", ".join(a.elapsed(a.header) for a in self.attempts)

    def response_time(self) -> str:
        """``$upstream_response_time``: until the attempt ended (a tunnel: its whole life)."""
        return ", ".join(a.elapsed(a.ended) for a in self.attempts)

    def bytes_sent(self) -> str:
        """``$upstream_bytes_sent``."""
        return ", ".join(str(a.bytes_sent) for a in self.attempts)

    def bytes_received(self) -> str:
        """``$upstream_bytes_received``."""
        return ", ".join(str(a.bytes_received) for a in self.attempts)
