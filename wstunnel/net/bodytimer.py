"""
``client_body_timeout``: the longest wait between two reads of a request
body, as nginx defines it.

Reads are many and the timeout long, so a read only notes the time; the one
timer, when it fires, re-arms for what is left since the last read and ends
the request only when a whole timeout passed without one.  While the
upstream is not taking the body, its :class:`~wstunnel.net.throttle.Throttle` has
paused the client and no read is expected: the timer is off and
``proxy_send_timeout`` bounds that wait instead, as in nginx.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

__all__ = ["BodyTimeout"]


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
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
