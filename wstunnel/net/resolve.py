"""
Names resolved at request time, for ``proxy_pass`` with variables, through
the DNS servers a ``resolver`` names (Twisted's DNS client, never the
system's resolver, which would block the reactor).

Answers are kept for their TTL, or for ``valid=``, and requests that wait
for the same name share one query.  ``resolver_timeout`` bounds the wait
on the request's clock, whatever the client library does.  The errors
carry nginx's codes and words, which its error log shows.
"""

from __future__ import annotations

import socket
from typing import Callable, NamedTuple

from twisted.internet.defer import Deferred, DeferredList, TimeoutError as QueryTimeout, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.names import client, dns, error
from twisted.python.failure import Failure

from wstunnel.config.model import Resolver
from wstunnel.net.throttle import cancel_timer

__all__ = ["Answer", "CachedResolver", "Lookup", "ResolveError", "Resolvers", "dns_lookup"]


class Answer(NamedTuple):
    """The addresses of a name, and how long they may be kept (seconds)."""

    addresses: tuple[str, ...]
    ttl: float


# A name and the seconds to wait, to its Answer (or a ResolveError).
Lookup = Callable[[str, float], "Deferred[Answer]"]


class ResolveError(Exception):
    """nginx's resolver error: its code and text, ``(3: Host not found)``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    @property
    def timed_out(self) -> bool:
        return self.code == 110

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"


_TIMED_OUT = ResolveError(110, "Operation timed out")
_NOT_FOUND = ResolveError(3, "Host not found")
_ERRORS = (
    (error.DNSNameError, _NOT_FOUND),
    (error.DNSFormatError, ResolveError(1, "Format error")),
    (error.DNSServerError, ResolveError(2, "Server failure")),
    (error.DNSNotImplementedError, ResolveError(4, "Unimplemented")),
    (error.DNSQueryRefusedError, ResolveError(5, "Operation refused")),
    (QueryTimeout, _TIMED_OUT),
)


def dns_lookup(settings: Resolver, reactor: object) -> Lookup:
    """A Lookup through the resolver's servers, asking A and/or AAAA as ``ipv4=``/``ipv6=`` say."""
    resolver = client.Resolver(servers=list(settings.servers), reactor=reactor)
    kinds = [kind for kind, wanted in ((dns.A, settings.ipv4), (dns.AAAA, settings.ipv6)) if wanted]
    asks = {dns.A: resolver.lookupAddress, dns.AAAA: resolver.lookupIPV6Address}

    def lookup(name: str, timeout: float) -> Deferred[Answer]:
        queries = [asks[kind](name, (timeout,)) for kind in kinds]
        return DeferredList(queries, consumeErrors=True).addCallback(_answer, kinds)

    return lookup


def _answer(results: list[tuple[bool, object]], kinds: list[int]) -> Answer:
    """Every address both queries found; failing that, the first query's error."""
    addresses: list[str] = []
    ttls: list[float] = []
    for (ok, result), kind in zip(results, kinds):
        if not ok:
            continue
        answers = result[0]  # type: ignore[index]
        for record in answers:
            if record.type == kind:
                addresses.append(record.payload.dottedQuad() if kind == dns.A else _v6(record.payload))
                ttls.append(record.ttl)
    if addresses:
        return Answer(tuple(dict.fromkeys(addresses)), min(ttls))
    for ok, result in results:
        if not ok:
            raise _resolve_error(result)  # type: ignore[arg-type]
    raise _NOT_FOUND


def _v6(record: dns.Record_AAAA) -> str:
    return socket.inet_ntop(socket.AF_INET6, record.address)


def _resolve_error(failure: Failure) -> ResolveError:
    for kind, known in _ERRORS:
        if failure.check(kind):
            return known
    return ResolveError(2, "Server failure")


class _Entry(NamedTuple):
    addresses: tuple[str, ...]
    expires: float


class CachedResolver:
    """One ``resolver``'s answers, kept on ``clock`` for their TTL or ``valid=``."""

    def __init__(self, settings: Resolver, lookup: Lookup, clock: IReactorTime) -> None:
        self._valid = settings.valid
        self._timeout = settings.timeout
        self._lookup = lookup
        self._clock = clock
        self._answers: dict[str, _Entry] = {}
        self._waiting: dict[str, list[Deferred[tuple[str, ...]]]] = {}

    def resolve(self, name: str) -> Deferred[tuple[str, ...]]:
        """``name``'s addresses: at once when known, else after one shared query; fails with ResolveError."""
        key = name.lower()
        entry = self._answers.get(key)
        if entry is not None and entry.expires > self._clock.seconds():
            return succeed(entry.addresses)
        waiter: Deferred[tuple[str, ...]] = Deferred()
        waiters = self._waiting.get(key)
        if waiters is None:
            self._waiting[key] = [waiter]
            self._ask(key)
        else:
            waiters.append(waiter)
        return waiter

    def _ask(self, key: str) -> None:
        query = self._lookup(key, self._timeout)
        timer = self._clock.callLater(self._timeout, self._timed_out, key, query)
        query.addBoth(self._done, key, timer)

    def _timed_out(self, key: str, query: Deferred[Answer]) -> None:
        self._done(Failure(_TIMED_OUT), key, None)
        query.cancel()

    def _done(self, result: Answer | Failure, key: str, timer: IDelayedCall | None) -> None:
        """The query's answer or error, or the timeout (no ``timer``): every waiter gets the first."""
        cancel_timer(timer)
        waiters = self._waiting.pop(key, None)
        if waiters is None:
            return
        if isinstance(result, Answer):
            self._answers[key] = _Entry(result.addresses, self._clock.seconds() + self._kept(result))
            for waiter in waiters:
                waiter.callback(result.addresses)
            return
        reason = result.value if isinstance(result.value, ResolveError) else _resolve_error(result)
        for waiter in waiters:
            waiter.errback(Failure(reason))

    def _kept(self, answer: Answer) -> float:
        return answer.ttl if self._valid is None else self._valid


class Resolvers:
    """
    The resolvers of one configuration, one per distinct ``resolver`` and
    ``resolver_timeout``, made at first use on the reactor that needs them.
    """

    def __init__(self, make_lookup: Callable[[Resolver, object], Lookup] = dns_lookup) -> None:
        self.make_lookup = make_lookup
        self._made: dict[tuple, CachedResolver] = {}

    def get(self, settings: Resolver, reactor: object, clock: IReactorTime) -> CachedResolver:
        key = (settings.servers, settings.valid, settings.ipv4, settings.ipv6, settings.timeout)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = CachedResolver(settings, self.make_lookup(settings, reactor), clock)
        return made
