"""
The client's bytes on their way in: the head gate that holds them, the
deadline for the next head, and whether the transport is read at all.

nginx gives a connection ``client_header_timeout`` for a head once its
first byte is there and ``keepalive_timeout`` while it is idle between
requests; the idle wait turns into the head's deadline at the next byte.
Reading is paused while nothing may be read (no upstream yet, an unread
answer, an upstream that does not take the body) and while the bytes held
ahead of the request being served are over ``EARLY_DATA_LIMIT``; it is
resumed once none of these holds.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from wstunnel.config.model import ClientLimits
from wstunnel.wire.heads import HeadGate, HeadLimits
from wstunnel.net.throttle import moved_timer

__all__ = ["EARLY_DATA_LIMIT", "Intake"]

# Bytes a client may have sent ahead of the request being served
# (pipelined heads and bodies, WebSocket frames sent before the 101).
# Reading continues up to this bound so a client that leaves is noticed;
# past it the connection is paused until the request is answered and the
# next one taken from what is held.  The read that crosses the bound is
# held whole, so at most this plus one read (64 KiB) is held.
EARLY_DATA_LIMIT = 64 * 1024


@implementer(IPushProducer)
class Intake:
    """
    One connection's read side; ``limits`` are those of the address's
    default server, which govern heads (the virtual server is unknown
    until a head is read).  The head deadline runs from construction.

    It is also the producer a request body's flow control pauses (the
    body's :class:`~wstunnel.net.throttle.Throttle` stands on it), so the
    transport is paused and resumed in one place for every reason.
    """

    __slots__ = (
        "gate", "limits", "_transport", "_clock", "_on_timeout", "_timer", "_idle", "_serving",
        "_paused", "_throttled", "_full", "_stopped",
    )

    def __init__(
        self, transport: IPushProducer, clock: IReactorTime, limits: ClientLimits, on_timeout: Callable[[], None]
    ) -> None:
        self.gate = HeadGate(
            HeadLimits.for_buffers(limits.header_buffers, limits.header_buffer_size, limits.ignore_invalid_headers),
            request=True,
        )
        self.limits = limits
        self._transport = transport
        self._clock = clock
        self._on_timeout = on_timeout
        self._timer: IDelayedCall | None = clock.callLater(limits.header_timeout, self._fire)
        self._idle = False
        self._serving = False  # a request is being served: the deadline's timer, if left, means nothing
        self._paused = False  # nothing may be read: no upstream yet, or an unread answer
        self._throttled = False  # the upstream does not take the body
        self._full = False  # too much held ahead of the request being served
        self._stopped = False  # the transport is paused

    def push(self, data: bytes) -> None:
        """Bytes towards the next head; the first after an idle wait starts the head's deadline."""
        if self._idle:
            self._idle = False
            # The keep-alive timer becomes the head's.
            self._timer = moved_timer(self._timer, self._clock, self.limits.header_timeout, self._fire)
        self.gate.push(data)

    def hold(self, data: bytes) -> None:
        """Bytes that arrived while nothing reads them; past ``EARLY_DATA_LIMIT`` reading pauses."""
        self.gate.push(data)
        self.settle(serving=True)

    def settle(self, *, serving: bool) -> None:
        """
        Apply the bound on what is held: while a request is served, all the
        gate holds is ahead of it; while a head is read, the gate's own
        limits bound it.
        """
        full = serving and self.gate.pending > EARLY_DATA_LIMIT
        if full is not self._full:
            self._full = full
            self._sync()

    def pause(self) -> None:
        self._paused = True
        self._sync()

    def resume(self) -> None:
        """Reading may go on, as far as the request is concerned; the next :meth:`settle` applies the bound again."""
        self._paused = self._throttled = self._full = False
        self._sync()

    def pauseProducing(self) -> None:
        self._throttled = True
        self._sync()

    def resumeProducing(self) -> None:
        self._throttled = False
        self._sync()

    def stopProducing(self) -> None:
        """The upstream is gone; the connection's owner decides what follows."""

    def _sync(self) -> None:
        stop = self._paused or self._throttled or self._full
        if stop is self._stopped:
            return
        self._stopped = stop
        if stop:
            self._transport.pauseProducing()
        else:
            self._transport.resumeProducing()

    def release(self) -> None:
        """The connection is over: what it held is given back."""
        self.gate.clear()

    def serve(self) -> None:
        """
        A whole head is in: no deadline runs while its request is served.
        The timer is left to be moved by :meth:`await_next` rather than
        cancelled and made anew for every request of a keep-alive connection.
        """
        self._serving = True

    def await_next(self, keepalive_timeout: float) -> None:
        """A response is done and the connection stays: wait idle, or for the rest of a pipelined head."""
        self._serving = False
        self._idle = not self.gate.pending
        timeout = keepalive_timeout if self._idle else self.limits.header_timeout
        self._timer = moved_timer(self._timer, self._clock, timeout, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._serving:
            self._on_timeout()

    def expired(self) -> None:
        """The deadline fired: its timer is spent."""
        self._timer = None

    def stop_deadline(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
