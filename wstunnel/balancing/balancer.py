"""
Choosing the peer of an upstream group for each connection attempt.

Each upstream gets one :class:`Balancer` per loaded configuration; it owns
the group's :class:`~wstunnel.balancing.peers.PeerState` objects.  A request asks it
for a :class:`Pick` (the request's own balancing state: the peers already
tried, the hash position) and then calls :meth:`Balancer.pick` once per
attempt and :meth:`Balancer.release` when each connection ends.

The algorithms are nginx's, so that a group behaves as it did behind nginx:

- ``round_robin``: smooth weighted round robin (weights 5, 1, 1 give
  a a b a c a a), primaries first, then the ``backup`` peers;
- ``least_conn``: fewest open connections relative to weight, ties by
  round robin.  A WebSocket tunnel is an open connection until it ends, which
  is why this is the method to use for long-lived connections;
- ``ip_hash``: nginx's hash of the first three bytes of an IPv4 client
  address (the whole IPv6 address);
- ``hash KEY``: CRC32 of the key, compatible with Cache::Memcached;
  ``consistent``: a ketama ring of 160 points per unit of weight, so adding
  a peer moves about 1/N of the keys;
- ``random``: weighted random; ``two``: the better of two random peers
  by connections.

The hashing methods and ``random`` fall back to round robin after 20
unusable candidates, and a group of one peer always uses it, as nginx does.
Nothing here reads a clock: ``now`` is passed in.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import random
import struct
import zlib
from abc import ABC, abstractmethod
from typing import Callable, Iterable, Sequence

from wstunnel.config.model import Upstream
from wstunnel.balancing.peers import PeerState, released, selected, usable
from wstunnel.core.variables import RequestVars, render

__all__ = ["Balancer", "Pick", "make_balancer", "request_key"]

# nginx gives up hashing after this many unusable candidates (then round robin).
_HASH_TRIES = 20
_POINTS_PER_WEIGHT = 160


class Pick:
    """
    One request's balancing state: the peers tried so far, the key and the
    hash position (so that a retry continues where the last choice was).
    """

    __slots__ = ("key", "tried", "hash", "rehash", "misses")

    def __init__(self, key: bytes, start: int) -> None:
        self.key = key
        self.tried: set[PeerState] = set()
        self.hash = start
        self.rehash = 0
        self.misses = 0


class Balancer:
    """Smooth weighted round robin; the base of the other methods."""

    def __init__(self, upstream: Upstream) -> None:
        self.name = upstream.name
        self.primary = tuple(PeerState(p) for p in upstream.peers if not p.backup)
        self.backup = tuple(PeerState(p) for p in upstream.peers if p.backup)
        # nginx's "single": one peer and no backup never counts failures.
        self.single = len(self.primary) == 1 and not self.backup

    @property
    def tries(self) -> int:
        """How many attempts a request may make: every peer not ``down``, once."""
        return sum(1 for s in (*self.primary, *self.backup) if not s.peer.down)

    def start(self, key: str = "") -> Pick:
        """The balancing state of a new request; ``key`` as :func:`balancing_key` made it."""
        return Pick(_key_bytes(key), 0)

    def pick(self, pick: Pick, now: float) -> PeerState | None:
        """The peer for the next attempt (counted as open), or None: no live upstreams."""
        for tier in (self.primary, self.backup):
            state = self._choose(tier, pick, now) if tier else None
            if state is not None:
                pick.tried.add(state)
                selected(state, now)
                return state
        return None

    def release(self, state: PeerState, now: float, *, failed: bool) -> bool:
        """The attempt's connection ended; True when a failure disabled the peer."""
        return released(state, now, failed=failed, single=self.single)

    def _ok(self, state: PeerState, pick: Pick, now: float) -> bool:
        return state not in pick.tried and usable(state, now, single=self.single)

    def _choose(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        return _smooth(s for s in tier if self._ok(s, pick, now))


def _smooth(candidates: Iterable[PeerState]) -> PeerState | None:
    """
    One round of smooth weighted round robin (ngx_http_upstream_get_peer):
    every candidate gains its effective weight, the highest (earliest on a
    tie) is chosen and loses the round's total.
    """
    best: PeerState | None = None
    total = 0
    for state in candidates:
        state.current_weight += state.effective_weight
        total += state.effective_weight
        if state.effective_weight < state.peer.weight:
            state.effective_weight += 1
        if best is None or state.current_weight > best.current_weight:
            best = state
    if best is not None:
        best.current_weight -= total
    return best


def _less_loaded(a: PeerState, b: PeerState) -> bool:
    """``a.conns / a.weight < b.conns / b.weight``, in integers as nginx compares."""
    return a.conns * b.peer.weight < b.conns * a.peer.weight


class LeastConn(Balancer):
    """Fewest connections per weight; ties go to smooth round robin among them."""

    def _choose(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        if self.single:
            return super()._choose(tier, pick, now)
        candidates = [s for s in tier if self._ok(s, pick, now)]
        if not candidates:
            return None
        best = candidates[0]
        for state in candidates[1:]:
            if _less_loaded(state, best):
                best = state
        tied = (s for s in candidates if not _less_loaded(best, s))
        return _smooth(tied)


class _Hashing(Balancer, ABC):
    """
    The methods that try candidates one by one: after ``_HASH_TRIES``
    unusable ones (counted per request), round robin decides.
    """

    keyed = False  # an empty key means round robin (``hash``)

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self._total = sum(s.peer.weight for s in self.primary)

    def _choose(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        if self.single or (self.keyed and not pick.key):
            return super()._choose(tier, pick, now)
        while pick.misses <= _HASH_TRIES:
            state = self._candidate(tier, pick, now)
            if state is not None:
                return state
            pick.misses += 1
        return super()._choose(tier, pick, now)

    @abstractmethod
    def _candidate(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        """The next candidate if it is usable, else None (a miss)."""

    def _by_weight(self, point: int) -> PeerState:
        """The primary peer owning ``point % total weight``, each owning ``weight`` points."""
        point %= self._total
        for state in self.primary:
            if point < state.peer.weight:
                return state
            point -= state.peer.weight
        raise AssertionError("point beyond the total weight")


class IpHash(_Hashing):
    """nginx's ip_hash: ``hash = (hash * 113 + byte) % 6271`` from 89."""

    def start(self, key: str = "") -> Pick:
        return Pick(_ip_hash_bytes(key), 89)

    def _candidate(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        value = pick.hash
        for byte in pick.key:
            value = (value * 113 + byte) % 6271
        pick.hash = value
        state = self._by_weight(value)
        return state if self._ok(state, pick, now) else None


class Hash(_Hashing):
    """``hash KEY``: CRC32 with Cache::Memcached's rehashing on a miss."""

    keyed = True

    def _candidate(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        prefix = str(pick.rehash).encode() if pick.rehash else b""
        pick.hash += (zlib.crc32(prefix + pick.key) >> 16) & 0x7FFF
        pick.rehash += 1
        state = self._by_weight(pick.hash)
        return state if self._ok(state, pick, now) else None


class ConsistentHash(_Hashing):
    """
    ``hash KEY consistent``: the ketama ring of Cache::Memcached::Fast.  A
    peer's points depend only on its ``server`` text and weight, so a peer
    added or removed moves only the keys that land on its points.
    """

    keyed = True

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        ring: dict[int, str] = {}
        for state in self.primary:
            for point in _ketama_points(state.peer.name, state.peer.weight):
                ring.setdefault(point, state.peer.name)
        self._points = sorted(ring)
        self._servers = [ring[p] for p in self._points]

    def start(self, key: str = "") -> Pick:
        data = _key_bytes(key)
        return Pick(data, bisect.bisect_left(self._points, zlib.crc32(data)))

    def _candidate(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        server = self._servers[pick.hash % len(self._servers)]
        # Every address of one server line shares its points.
        state = _smooth(s for s in tier if s.peer.name == server and self._ok(s, pick, now))
        if state is None:
            pick.hash += 1
        return state


class Random(_Hashing):
    """Weighted random choice; ``two``: the less loaded of two distinct picks."""

    def __init__(self, upstream: Upstream, rng: random.Random, two: bool) -> None:
        super().__init__(upstream)
        self._rng = rng
        self._two = two
        self._ranges = list(itertools.accumulate(s.peer.weight for s in self.primary))

    def _peek(self) -> PeerState:
        point = self._rng.randrange(self._total)
        return self.primary[bisect.bisect_right(self._ranges, point)]

    def _candidate(self, tier: Sequence[PeerState], pick: Pick, now: float) -> PeerState | None:
        first = self._peek()
        if not self._ok(first, pick, now):
            return None
        if not self._two:
            return first
        while pick.misses <= _HASH_TRIES:
            second = self._peek()
            if second is not first and self._ok(second, pick, now):
                return second if _less_loaded(second, first) else first
            pick.misses += 1
        return None


def _ketama_points(server: str, weight: int) -> list[int]:
    """
    ``weight * 160`` points: CRC32 of ``host \\0 port`` followed by the
    previous point's four little-endian bytes, as nginx computes them.
    """
    if server.lower().startswith("unix:"):
        host, port = server[5:], ""
    else:
        host, sep, port = server.rpartition(":")
        if not sep:
            host, port = server, ""
    base = host.encode() + b"\0" + port.encode()
    points = []
    previous = 0
    for _ in range(weight * _POINTS_PER_WEIGHT):
        previous = zlib.crc32(base + struct.pack("<I", previous))
        points.append(previous)
    return points


def _key_bytes(key: str) -> bytes:
    """Variable values are latin-1 decoded bytes; anything wider goes as UTF-8."""
    try:
        return key.encode("latin-1")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogatepass")


def _ip_hash_bytes(remote_addr: str) -> bytes:
    """
    What ip_hash hashes: the first three bytes of an IPv4 address (also when
    IPv4-mapped), all sixteen of an IPv6 one, three zero bytes for anything
    else (a unix-socket client).
    """
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return b"\0\0\0"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return address.packed[:3]
    return address.packed


def make_balancer(upstream: Upstream, rng: random.Random | None = None) -> Balancer:
    """The balancer for ``upstream``'s configured method (``rng`` for ``random``)."""
    balancing = upstream.balancing
    makers: dict[str, Callable[[], Balancer]] = {
        "round_robin": lambda: Balancer(upstream),
        "least_conn": lambda: LeastConn(upstream),
        "ip_hash": lambda: IpHash(upstream),
        "hash": lambda: (ConsistentHash if balancing.consistent else Hash)(upstream),
        "random": lambda: Random(upstream, rng or random.Random(), balancing.two),
    }
    return makers[balancing.method]()


def request_key(upstream: Upstream, rv: RequestVars) -> str:
    """What the upstream's method hashes for this request: the client address, ``hash KEY``, or nothing."""
    balancing = upstream.balancing
    if balancing.method == "ip_hash":
        return rv.conn.remote_addr
    if balancing.method == "hash" and balancing.key is not None:
        return render(balancing.key, rv)
    return ""
