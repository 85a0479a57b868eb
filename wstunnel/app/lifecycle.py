"""
Signals and graceful shutdown, as nginx's operators expect them.

twistd leaves SIGHUP at Python's default (the process dies) and turns
SIGTERM/SIGINT into a stop that ends with the process re-raising the
signal (exit status -15).  :class:`SignalHandlers` replaces those handlers
once the reactor runs (its own are installed during startup, so ours go
in ``callWhenRunning``) and puts the previous ones back at the end: HUP
reloads, USR1 reopens log files, TERM/INT drain and exit 0, and a second
TERM/INT during the drain forces it to finish.

:func:`drain` is the shutdown itself: idle connections close at once,
requests in flight finish (their connections close after the response),
tunnels get ``worker_shutdown_timeout`` to end on their own and are then
closed, and whatever still holds on after :data:`FINAL_GRACE` is aborted.
"""

from __future__ import annotations

import signal
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads, IReactorTime
from twisted.logger import Logger

from wstunnel.net.registry import Registry

__all__ = ["FINAL_GRACE", "Drain", "SignalHandlers", "stop_reactor"]

# After the shutdown timeout, closed connections get this long to flush.
FINAL_GRACE = 1.0


class SignalHandlers:
    """Our handlers for some signals while the service runs; each runs in the reactor thread."""

    def __init__(self, reactor: IReactorFromThreads, handlers: dict[int, Callable[[], None]]) -> None:
        self._reactor = reactor
        self._handlers = handlers
        self._saved: dict[int, object] = {}

    def install(self) -> None:
        for number, handler in self._handlers.items():
            self._saved[number] = signal.signal(number, self._relay(handler))

    def _relay(self, handler: Callable[[], None]) -> Callable[[int, object], None]:
        def relay(number: int, frame: object) -> None:
            # callFromThread is signal-safe and wakes the reactor.
            self._reactor.callFromThread(handler)

        return relay

    def restore(self) -> None:
        saved, self._saved = self._saved, {}
        for number, previous in saved.items():
            signal.signal(number, previous)  # type: ignore[arg-type]


class Drain:
    """One graceful shutdown of the connections in ``registry``."""

    log = Logger()

    def __init__(self, registry: Registry, clock: IReactorTime, timeout: float) -> None:
        self._registry = registry
        self._clock = clock
        self._timeout = timeout
        self.done: Deferred[None] = Deferred()
        self._timer = None

    def start(self) -> Deferred[None]:
        clients = list(self._registry.clients)
        if not clients:
            self.done.callback(None)
            return self.done
        self.log.info("shutting down: waiting up to {timeout}s for {count} connections",
                      timeout=self._timeout, count=len(clients))
        self._registry.on_empty = self._finished
        for client in clients:
            client.drain()
        if not self.done.called:
            self._timer = self._clock.callLater(self._timeout, self.close_all)
        return self.done

    def close_all(self) -> None:
        """The timeout passed (or a second signal came): close everything, abort it soon after."""
        self._cancel()
        clients = list(self._registry.clients)
        if clients:
            self.log.info("shutdown timeout: closing {count} connections", count=len(clients))
        for client in clients:
            client.shut_down()
        if not self.done.called:
            self._timer = self._clock.callLater(FINAL_GRACE, self._abort_all)

    def _abort_all(self) -> None:
        self._timer = None
        for client in list(self._registry.clients):
            client.abort()
        self._finished()

    def _finished(self) -> None:
        self._cancel()
        self._registry.on_empty = None
        if not self.done.called:
            self.done.callback(None)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def stop_reactor(reactor: IReactorCore) -> None:
    """Stop once; a stop already under way is left alone."""
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass
