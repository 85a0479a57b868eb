"""
The client's bytes on their way in: the head gate that holds them, the
deadline for the next head, and whether the transport is read at all.

nginx gives a connection ``client_header_timeout`` for a head once its
first byte is there and ``keepalive_timeout`` while it is idle between
requests; the idle wait turns into the head's deadline at the next byte.
Reading is paused while nothing may be read (no upstream yet, an unread
answer, too many early bytes) and resumed once something may.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime

from wstunnel.config.model import ClientLimits
from wstunnel.wire.heads import HeadGate, HeadLimits

__all__ = ["EARLY_DATA_LIMIT", "Intake"]

# Bytes a client may send after a complete request while its answer is
# pending (pipelined requests, WebSocket frames sent before the 101).
# Reading continues up to this bound so a client that leaves is noticed;
# past it the connection is paused.
EARLY_DATA_LIMIT = 64 * 1024


class Intake:
    """
    One connection's read side; ``limits`` are those of the address's
    default server, which govern heads (the virtual server is unknown
    until a head is read).  The head deadline runs from construction.
    """

    __slots__ = ("gate", "limits", "early", "_transport", "_clock", "_on_timeout", "_timer", "_idle", "_paused")

    def __init__(
        self, transport: IPushProducer, clock: IReactorTime, limits: ClientLimits, on_timeout: Callable[[], None]
    ) -> None:
        self.gate = HeadGate(HeadLimits.for_buffers(limits.header_buffers, limits.header_buffer_size), request=True)
        self.limits = limits
        self._transport = transport
        self._clock = clock
        self._on_timeout = on_timeout
        self._timer: IDelayedCall | None = clock.callLater(limits.header_timeout, on_timeout)
        self._idle = False
        self.early = 0  # held bytes nothing reads yet; reset when something will
        self._paused = False

    def push(self, data: bytes) -> None:
        """Bytes towards the next head; the first after an idle wait starts the head's deadline."""
        if self._idle:
            self._idle = False
            timer = self._timer
            if timer is not None and timer.active():
                timer.reset(self.limits.header_timeout)  # the keep-alive timer becomes the head's
            else:
                self._timer = self._clock.callLater(self.limits.header_timeout, self._on_timeout)
        self.gate.push(data)

    def hold(self, data: bytes) -> None:
        """Bytes that arrived while nothing reads them; past ``EARLY_DATA_LIMIT`` reading pauses."""
        self.gate.push(data)
        self.early += len(data)
        if self.early > EARLY_DATA_LIMIT and not self._paused:
            self.pause()

    def pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._transport.pauseProducing()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._transport.resumeProducing()

    def await_next(self, keepalive_timeout: float) -> None:
        """A response is done and the connection stays: wait idle, or for the rest of a pipelined head."""
        self._idle = not self.gate.pending
        timeout = keepalive_timeout if self._idle else self.limits.header_timeout
        self._timer = self._clock.callLater(timeout, self._on_timeout)

    def expired(self) -> None:
        """The deadline fired: its timer is spent."""
        self._timer = None

    def stop_deadline(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
