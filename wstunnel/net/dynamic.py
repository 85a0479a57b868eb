"""
The trip upstream of a ``proxy_pass`` with variables: the rendered
host[:port] is chosen per request (:mod:`wstunnel.core.proxy_target`), and
the exchange starts once its peers are known: an upstream group's
balancer, an IP literal, or the addresses a ``resolver`` returns for a
name (then one round-robin group for this request, as nginx makes one).

The exchange is built, as for any location, with the location's stand-in
upstream, whose balancer is replaced before the first peer is picked.  It
stays in its connecting phase while the name is resolved, so the client's
bytes wait, and a client that leaves cancels the wait.
"""

from __future__ import annotations

from typing import Mapping

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from wstunnel.balancing.balancer import Balancer, make_balancer, request_key
from wstunnel.balancing.retry import Retries
from wstunnel.config.model import Peer, Upstream
from wstunnel.core.proxy_target import Choice, choose
from wstunnel.core.variables import RequestVars, render
from wstunnel.net.exchange import Exchange, Phase
from wstunnel.net.pool import IdlePool
from wstunnel.net.resolve import ResolveError, Resolvers
from wstunnel.wire.errors import RequestError

__all__ = ["DynamicExchange", "Targets"]


@frozen
class Targets:
    """What a rendered authority may name in one configuration, and the resolvers of its names."""

    named: Mapping[str, Upstream]  # upstream blocks by lower-case name
    implicit: Mapping[tuple[str, int], Upstream]  # plain proxy_pass groups by lower-case host and port
    balancers: Mapping[str, Balancer]
    pools: Mapping[str, IdlePool]
    resolvers: Resolvers
    # The balancers of the locations' stand-in upstreams, which an exchange
    # is built with and which never pick a peer.
    stand_ins: Mapping[str, Balancer]


class DynamicExchange(Exchange):
    """An :class:`Exchange` whose peers are found per request; ``rv`` renders the authority."""

    def __init__(self, *, targets: Targets, rv: RequestVars, reactor: object, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._targets = targets
        self._rv = rv
        self._reactor = reactor
        self._resolving: Deferred[tuple[str, ...]] | None = None

    def start(self) -> None:
        proxy_pass = self._location.proxy_pass
        assert proxy_pass is not None and proxy_pass.authority is not None
        targets = self._targets
        try:
            choice = choose(render(proxy_pass.authority, self._rv), proxy_pass.scheme, targets.named, targets.implicit)
        except RequestError as exc:
            self.log.error("{detail}, client: {client}", detail=exc.detail, client=self._client.peer_text)
            self._give_up(exc.status)
            return
        upstream = choice.upstream
        if upstream is not None:
            key = request_key(upstream, self._rv)
            self._use(targets.balancers[upstream.name], key, targets.pools.get(upstream.name))
        elif choice.literal:
            self._use_addresses(choice, (choice.host,))
        elif self._location.resolver is None:
            client = self._client.peer_text
            self.log.error("no resolver defined to resolve {name}, client: {client}", name=choice.host, client=client)
            self._give_up(502)
            return
        else:
            self._resolve(choice)
            return
        super().start()

    def _resolve(self, choice: Choice) -> None:
        settings = self._location.resolver
        assert settings is not None
        resolver = self._targets.resolvers.get(settings, self._reactor, self._clock)
        self._resolving = resolving = resolver.resolve(choice.host)
        resolving.addCallbacks(self._resolved, self._not_resolved, (choice,), None, (choice,))

    def _resolved(self, addresses: tuple[str, ...], choice: Choice) -> None:
        self._resolving = None
        if self.phase is Phase.DONE:
            return
        self._use_addresses(choice, addresses)
        super().start()

    def _not_resolved(self, reason: Failure, choice: Choice) -> None:
        self._resolving = None
        if self.phase is Phase.DONE:
            return
        error = reason.value if isinstance(reason.value, ResolveError) else ResolveError(2, "Server failure")
        self.log.error(
            "{name} could not be resolved ({error}), client: {client}",
            name=choice.host,
            error=str(error),
            client=self._client.peer_text,
        )
        self._give_up(504 if error.timed_out else 502)

    def _use_addresses(self, choice: Choice, addresses: tuple[str, ...]) -> None:
        """One round-robin group of the addresses, for this request only."""
        proxy_pass = self._location.proxy_pass
        assert proxy_pass is not None
        name = f"[{choice.host}]:{choice.port}" if ":" in choice.host else f"{choice.host}:{choice.port}"
        peers = tuple(Peer(address, choice.port, name) for address in addresses)
        self._use(make_balancer(Upstream(name, peers, True, proxy_pass.source)), "", None)

    def _use(self, balancer: Balancer, key: str, pool: IdlePool | None) -> None:
        self._balancer = balancer
        self._pick = balancer.start(key)
        self._retries = Retries(self._location.next_upstream, balancer.tries, self._head.method, self._clock.seconds())
        self._pool = pool

    def cancel(self) -> None:
        resolving, self._resolving = self._resolving, None
        super().cancel()
        if resolving is not None:
            resolving.cancel()
