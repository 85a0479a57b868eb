"""
Flow control between two transports, and the timers that bound a stall.

A consumer transport pauses its producer when its write buffer passes
``bufferSize``; that pause is exactly the moment the reader on that side has
stopped reading.  :class:`Throttle` sits between the two so that the pause
also starts the send timeout (``send_timeout`` towards the client,
``proxy_send_timeout`` towards the upstream), and the resume cancels it.
Nothing here runs per chunk of data: only per pause and resume.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

__all__ = ["Drained", "Throttle", "arm_abort"]


@implementer(IPushProducer)
class Throttle:
    """
    A revocable push producer standing for ``source`` on one consumer.

    Pause and resume are idempotent: Twisted calls ``pauseProducing`` on
    every write while the buffer is over its mark (twisted-notes P4).
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
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
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


def arm_abort(clock: IReactorTime, transport: object, grace: float) -> IDelayedCall:
    """
    Make sure a closing transport really goes away.

    ``loseConnection`` can wait forever: for a paused producer that died
    (twisted-notes P1), for a TLS peer that never answers close_notify (P3).
    The caller cancels the returned call from ``connectionLost``.
    """
    return clock.callLater(grace, transport.abortConnection)  # type: ignore[attr-defined]
