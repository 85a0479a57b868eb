"""
Flow control between two transports, and the timers that bound a stall.

A consumer transport pauses its producer when its write buffer passes
``bufferSize``; that pause is exactly the moment the reader on that side has
stopped reading.  :class:`Throttle` sits between the two so that the pause
also starts the send timeout (``send_timeout`` towards the client,
``proxy_send_timeout`` towards the upstream), and the resume cancels it.

The other stall is a client that stops sending its request body
(``client_body_timeout``, the longest wait between two reads, as nginx
defines it).  :class:`BodyTimeout` stands under the body's Throttle: while
the upstream is not taking the body the client is paused, no read is
expected, so the pause stops that timer and ``proxy_send_timeout`` bounds
the wait instead, as in nginx.  Reads are many and the timeout long, so a
read only notes the time; the one timer, when it fires, re-arms for what
is left since the last read.

Nothing here runs per chunk of data: only per pause and resume, and per
body read a clock reading.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

__all__ = ["BodyTimeout", "Drained", "Throttle", "arm_abort", "cancel_timer", "moved_timer"]


@implementer(IPushProducer)
class Throttle:
    """
    A revocable push producer standing for ``source`` on one consumer.

    Pause and resume are idempotent: Twisted calls ``pauseProducing`` on
    every write while the buffer is over its mark, not once.
    ``stopProducing`` only cancels the timer: closing is the owner's job,
    so a dying consumer cannot close the other side behind its back.
    """

    __slots__ = ("_source", "_clock", "_timeout", "_on_stall", "_timer", "paused", "_revoked")

    def __init__(
        self,
        source: IPushProducer,
        clock: IReactorTime,
        timeout: float,
        on_stall: Callable[[], None],
    ) -> None:
        self._source = source
        self._clock = clock
        self._timeout = timeout
        self._on_stall = on_stall
        self._timer: IDelayedCall | None = None
        self.paused = False
        self._revoked = False

    def pauseProducing(self) -> None:
        if self.paused or self._revoked:
            return
        self.paused = True
        self._source.pauseProducing()
        self._timer = self._clock.callLater(self._timeout, self._stalled)

    def resumeProducing(self) -> None:
        if not self.paused or self._revoked:
            return
        self.paused = False
        self._cancel_timer()
        self._source.resumeProducing()

    def stopProducing(self) -> None:
        self.revoke()

    def retarget(self, source: IPushProducer) -> None:
        """Pause and resume ``source`` from now on; the consumer, the state and the timer stay."""
        self._source = source

    def revoke(self) -> None:
        """Stop standing for the source: later pauses and resumes do nothing."""
        self._revoked = True
        self._cancel_timer()

    def _stalled(self) -> None:
        self._timer = None
        if not self._revoked:
            self._on_stall()

    def _cancel_timer(self) -> None:
        cancel_timer(self._timer)
        self._timer = None


@implementer(IPushProducer)
class Drained:
    """A source with nothing to pause: its resume means the consumer's buffer has drained."""

    __slots__ = ("_then",)

    def __init__(self, then: Callable[[], None]) -> None:
        self._then = then

    def pauseProducing(self) -> None:
        """Nothing runs until the resume."""

    def resumeProducing(self) -> None:
        self._then()

    def stopProducing(self) -> None:
        """The consumer is gone; its owner closes."""


@implementer(IPushProducer)
class BodyTimeout:
    """
    Stands for the client transport under the body's Throttle, so the
    Throttle's pause stops the timer and its resume starts it again.
    Armed from construction until :meth:`stop`.
    """

    __slots__ = ("_source", "_clock", "_timeout", "_on_expiry", "_timer", "_last")

    def __init__(
        self, source: IPushProducer, clock: IReactorTime, timeout: float, on_expiry: Callable[[], None]
    ) -> None:
        self._source = source
        self._clock = clock
        self._timeout = timeout
        self._on_expiry = on_expiry
        self._timer: IDelayedCall | None = None
        self._last = 0.0
        self._arm()

    def read(self) -> None:
        """Body bytes arrived: the wait starts again (noted, not re-armed)."""
        self._last = self._clock.seconds()

    def pauseProducing(self) -> None:
        self._cancel()
        self._source.pauseProducing()

    def resumeProducing(self) -> None:
        self._source.resumeProducing()
        if self._timer is None:
            self._arm()

    def stopProducing(self) -> None:
        self.stop()

    def stop(self) -> None:
        """The body ended or the request did: no expiry from now on."""
        self._cancel()

    def _arm(self) -> None:
        self._last = self._clock.seconds()
        self._timer = self._clock.callLater(self._timeout, self._check)

    def _check(self) -> None:
        left = self._last + self._timeout - self._clock.seconds()
        if left > 0:
            self._timer = self._clock.callLater(left, self._check)
            return
        self._timer = None
        self._on_expiry()

    def _cancel(self) -> None:
        cancel_timer(self._timer)
        self._timer = None


def arm_abort(clock: IReactorTime, transport: object, grace: float) -> IDelayedCall:
    """
    Make sure a closing transport really goes away.

    ``loseConnection`` can wait forever: for a paused producer that died
    (the transport resumes it instead of closing), for a TLS peer that
    never answers close_notify.
    The caller cancels the returned call from ``connectionLost``.
    """
    return clock.callLater(grace, transport.abortConnection)  # type: ignore[attr-defined]


def moved_timer(
    timer: IDelayedCall | None, clock: IReactorTime, delay: float, callback: Callable[[], object]
) -> IDelayedCall:
    """``timer`` moved to fire ``delay`` from now, or a new one where it has fired or was cancelled."""
    if timer is not None and timer.active():
        timer.reset(delay)
        return timer
    return clock.callLater(delay, callback)


def cancel_timer(timer: IDelayedCall | None) -> None:
    """A timer that may be None or may have fired already, cancelled if it still can be."""
    if timer is not None and timer.active():
        timer.cancel()
