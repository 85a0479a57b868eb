"""
A request's passage through its location's ``limit_req`` and
``limit_conn``, in nginx's order: the bucket first (a delayed request waits
on a timer, holding nothing and blocking nothing else), then the
connection counts, which the request holds until it ends, a tunnel until
it closes.  Only a request whose location has limits makes a :class:`Gate`.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from wstunnel.config.model import RateLimits
from wstunnel.core.ratelimit import Held, Verdict, check_requests, count_connections
from wstunnel.core.variables import RequestVars
from wstunnel.net.throttle import cancel_timer
from wstunnel.obs.logs import NGINX_LEVELS

__all__ = ["Gate"]


class Gate:
    """
    One request's limits.  ``go`` carries the request on; ``refuse`` answers
    it with a status; :meth:`release` (at the request's end, or when its
    client leaves while it waits) gives its counts back, once.
    """

    __slots__ = ("_limits", "_vars", "_tables", "_clock", "_log", "_client", "_timer", "_held")

    def __init__(
        self,
        limits: RateLimits,
        rv: RequestVars,
        tables: dict[int, object],
        clock: IReactorTime,
        log: Logger,
        client: str,
    ) -> None:
        self._limits = limits
        self._vars = rv
        self._tables = tables
        self._clock = clock
        self._log = log
        self._client = client
        self._timer: IDelayedCall | None = None
        self._held: tuple[Held, ...] = ()

    def run(self, go: Callable[[], None], refuse: Callable[[int], None]) -> None:
        """Check now; ``go`` or ``refuse`` runs now or, after a ``limit_req`` delay, from the clock."""
        limits = self._limits
        if limits.reqs:
            now = int(self._clock.seconds() * 1000)
            verdict = check_requests(limits, self._vars, self._table, now)
            self._note(verdict)
            if verdict.status:
                refuse(verdict.status)
                return
            if verdict.delay:
                self._timer = self._clock.callLater(verdict.delay, self._count, go, refuse)
                return
        self._count(go, refuse)

    @property
    def waiting(self) -> bool:
        """Whether the request is held by ``limit_req``'s delay."""
        return self._timer is not None and self._timer.active()

    def release(self) -> None:
        cancel_timer(self._timer)
        held, self._held = self._held, ()
        for hold in held:
            hold.table.release(hold.tag)

    def _count(self, go: Callable[[], None], refuse: Callable[[int], None]) -> None:
        self._timer = None
        if not self._limits.conns:
            go()
            return
        verdict = count_connections(self._limits, self._vars, self._table)
        self._note(verdict)
        self._held = verdict.held
        if verdict.status:
            refuse(verdict.status)
        else:
            go()

    def _table(self, zone: object) -> object:
        return self._tables[id(zone)]

    def _note(self, verdict: Verdict) -> None:
        if verdict.log is not None:
            level, text = verdict.log
            self._log.emit(NGINX_LEVELS[level], "{text}, client: {client}", text=text, client=self._client)
