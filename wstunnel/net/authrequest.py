"""
auth_request's subrequest made: an :class:`~wstunnel.net.exchange.Exchange`
to the auth location's upstream whose "client" is :class:`AuthSubrequest`,
which keeps nothing of the answer but its status and headers.

The verdict is taken from the answer's head; its body, if any, is read and
dropped as nginx does.  A peer that cannot be reached, a head that does not
come within the auth location's ``proxy_read_timeout`` and a 101 all end as
an error status, which the verdict turns into a 500.  The subrequest runs
before a byte of the request goes upstream, so it guards WebSocket upgrades
as well.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IReactorTCP, IReactorTime

from wstunnel.balancing.balancer import request_key
from wstunnel.core.dispatch import Authorize, Decision, Forward, Refuse, Respond, StatusPage
from wstunnel.net.exchange import Exchange
from wstunnel.net.runtime import Runtime
from wstunnel.net.tunnel import Tunnel
from wstunnel.net.upstream import UpstreamProtocol
from wstunnel.obs.metrics import Stats
from wstunnel.wire.response import ResponseHead

__all__ = ["AuthSubrequest", "authorize"]

Headers = tuple[tuple[bytes, bytes], ...]
Act = Callable[[Decision], None]


class AuthSubrequest:
    """The client side of the subrequest's exchange: it tells ``answered`` the status and headers once."""

    def __init__(self, peer_text: str, answered: Callable[[int, Headers], None]) -> None:
        self.peer_text = peer_text
        self.exchange: Exchange | None = None
        self._answered: Callable[[int, Headers], None] | None = answered

    @property
    def waiting(self) -> bool:
        """Whether the verdict is still to come."""
        return self._answered is not None

    def stream_body(self, upstream: UpstreamProtocol) -> None:
        upstream.end_body()
        assert self.exchange is not None
        self.exchange.request_sent()

    def may_retry(self) -> bool:
        return self.waiting

    def send_informational(self, response: ResponseHead) -> None:
        """A 1xx before the answer says nothing about access."""

    def send_head(self, response: ResponseHead, upstream: UpstreamProtocol | None) -> None:
        self._answer(response.status, response.headers)

    def send_data(self, data: bytes) -> None:
        """The answer's body is dropped."""

    def release_upstream(self) -> None:
        """Nothing of the client side holds the upstream."""

    def end_response(self) -> None:
        """The verdict was taken from the head."""

    def abort_response(self) -> None:
        """The body broke off after the verdict: nothing to undo."""

    def fail(self, status: int, detail: str, *, close: bool = False) -> None:
        self._answer(status, ())

    def switch(
        self, upstream: UpstreamProtocol, response: ResponseHead, early: bytes, on_end: Callable[[Tunnel], None]
    ) -> None:
        upstream.stop()
        self._answer(101, ())

    def _answer(self, status: int, headers: Headers) -> None:
        answered, self._answered = self._answered, None
        if answered is not None:
            answered(status, headers)


def authorize(
    decision: Authorize,
    act: Act,
    *,
    peer_text: str,
    runtime: Runtime,
    reactor: IReactorTCP,
    clock: IReactorTime,
    stats: Stats,
) -> Exchange | None:
    """
    Make the subrequest and ``act`` on the verdict; the exchange is returned
    while the verdict is still to come (None once acted on), for the client
    protocol to cancel if the client goes away.
    """
    sub = decision.subrequest
    if not isinstance(sub, Forward):
        act(decision.verdict(_own_status(sub), ()))
        return None
    assert sub.location.proxy_pass is not None
    upstream = sub.location.proxy_pass.upstream
    side = AuthSubrequest(peer_text, lambda status, headers: act(decision.verdict(status, headers)))
    exchange = side.exchange = Exchange(
        client=side,
        head=sub.vars.head,
        request=sub.request,
        location=sub.location,
        balancer=runtime.balancer(upstream.name),
        key=request_key(upstream, sub.vars),
        connect=runtime.forwarding(sub.location).connector.bind(reactor, clock),
        clock=clock,
        has_body=False,
        stats=stats,
        pool=runtime.pools.get(upstream.name),
    )
    exchange.start()
    return exchange if side.waiting else None


def _own_status(decision: Decision) -> int:
    """The status of an answer the auth location makes itself (``return``, a status page, a refusal)."""
    if isinstance(decision, Respond):
        return decision.status
    if isinstance(decision, Refuse):
        return decision.error.status
    return 200 if isinstance(decision, StatusPage) else 500
