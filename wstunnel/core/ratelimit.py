"""
nginx's per-client limits as decisions: ``limit_req``'s leaky bucket and
``limit_conn``'s counters, kept in fixed tables of 64-bit words.

A zone is a table of a fixed number of states (its size), so a zone can
fill up, as nginx's can.  The words live wherever the caller put them: a
bytearray, or a shared mapping that every worker of a ``worker_processes N``
run sees (:mod:`wstunnel.net.zones`); the caller also hands in the lock
that makes one check atomic across those workers.  A key's state is found
by its 64-bit hash among ``WINDOW`` neighbouring slots, so a lookup or an
insert costs at most ``WINDOW`` word reads whatever the zone's size.

Times are integer milliseconds and the bucket counts milli-requests, as
nginx's does, so the same request pattern gets the same answers.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from typing import Callable, NamedTuple

from wstunnel.config.model import LimitZone, RateLimits
from wstunnel.core.variables import RequestVars, render

__all__ = [
    "WINDOW",
    "ConnTable",
    "Held",
    "Lock",
    "ReqTable",
    "Verdict",
    "count_connections",
    "check_requests",
    "key_hash",
]

WINDOW = 32
# nginx's bounds on a key's length, past which the limit is skipped with a log line.
_CONN_KEY_MAX = 255
_REQ_KEY_MAX = 65535
# nginx: a clock that went back more than a minute counts as 1 ms.
_CLOCK_SLACK = 60_000
_NO_DELAY = -1
_QUIETER = {"info": "info", "notice": "info", "warn": "notice", "error": "warn"}

Lock = AbstractContextManager[object]


def key_hash(key: str) -> int:
    """A key's slot tag, the same in every process (never 0, the tag of an empty slot)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True) or 1


class ConnTable:
    """
    ``limit_conn_zone``: per key, how many requests and tunnels are open.
    Two words a slot: tag, count.  A tag is in at most one slot of its
    window (a new one goes in only where none is found), and keeps it at
    count 0 until another key needs the slot, so a returning key finds its
    slot at once.
    """

    def __init__(self, words: memoryview, lock: Lock) -> None:
        self.words = words
        self.slots = len(words) // 2
        self.lock = lock

    def acquire(self, tag: int, limit: int) -> bool | None:
        """Count one more for ``tag``: True if under ``limit``, False at it, None if the zone is full."""
        words, slots = self.words, self.slots
        with self.lock:
            free = -1
            start = tag % slots
            for step in range(min(WINDOW, slots)):
                at = (start + step) % slots * 2
                if words[at] == tag:
                    if words[at + 1] >= limit:
                        return False
                    words[at + 1] += 1
                    return True
                if free < 0 and words[at + 1] == 0:
                    free = at
            if free < 0:
                return None
            words[free] = tag
            words[free + 1] = 1
            return True

    def release(self, tag: int) -> None:
        words, slots = self.words, self.slots
        with self.lock:
            start = tag % slots
            for step in range(min(WINDOW, slots)):
                at = (start + step) % slots * 2
                if words[at] == tag:
                    if words[at + 1] > 0:
                        words[at + 1] -= 1
                    return

    def count(self, tag: int) -> int:
        """The open count of ``tag`` (for tests and the status of a zone)."""
        words, slots = self.words, self.slots
        start = tag % slots
        for step in range(min(WINDOW, slots)):
            at = (start + step) % slots * 2
            if words[at] == tag:
                return words[at + 1]
        return 0


class ReqTable:
    """
    ``limit_req_zone``: per key, nginx's leaky bucket.  Three words a slot:
    tag, excess (milli-requests), the last accounted time (ms).  A new key
    takes a free slot, else one whose bucket has drained, else the least
    recently used of its window: like nginx's zone, which expires its
    oldest state to make room, a bucket zone never refuses a key.
    """

    def __init__(self, words: memoryview, rate: int, lock: Lock) -> None:
        self.words = words
        self.slots = len(words) // 3
        self.rate = rate
        self.lock = lock

    def excess(self, tag: int, now: int) -> int:
        """What one more request at ``now`` would leave in the bucket, without counting it."""
        with self.lock:
            at = self._find(tag)
            return 0 if at < 0 else self._next(at, now)[0]

    def charge(self, tag: int, now: int) -> int:
        """Count a request of ``tag`` at ``now``; the bucket's excess after it."""
        words = self.words
        with self.lock:
            at = self._find(tag)
            if at < 0:
                at = self._claim(tag, now)
                words[at], words[at + 1], words[at + 2] = tag, 0, now
                return 0
            excess, elapsed = self._next(at, now)
            words[at + 1] = excess
            if elapsed:
                words[at + 2] = now
            return excess

    def _next(self, at: int, now: int) -> tuple[int, int]:
        words = self.words
        elapsed = now - words[at + 2]
        if elapsed < -_CLOCK_SLACK:
            elapsed = 1
        elif elapsed < 0:
            elapsed = 0
        return max(0, words[at + 1] - self.rate * elapsed // 1000 + 1000), elapsed

    def _find(self, tag: int) -> int:
        words, slots = self.words, self.slots
        start = tag % slots
        for step in range(min(WINDOW, slots)):
            at = (start + step) % slots * 3
            if words[at] == tag:
                return at
        return -1

    def _claim(self, tag: int, now: int) -> int:
        words, slots = self.words, self.slots
        start = tag % slots
        oldest, oldest_time = -1, 0
        for step in range(min(WINDOW, slots)):
            at = (start + step) % slots * 3
            if words[at] == 0 or words[at + 1] - self.rate * abs(now - words[at + 2]) // 1000 <= 0:
                return at
            if oldest < 0 or words[at + 2] < oldest_time:
                oldest, oldest_time = at, words[at + 2]
        return oldest


class Held(NamedTuple):
    """A ``limit_conn`` count taken by a request, given back when it ends."""

    table: ConnTable
    tag: int


class Verdict(NamedTuple):
    """
    What a limit says of a request: ``status`` 0 to go on (after ``delay``
    seconds), else the answer's status; ``held`` the counts to give back at
    its end; ``log`` the error-log line as (nginx level, text), if any.
    """

    status: int = 0
    delay: float = 0.0
    held: tuple[Held, ...] = ()
    log: tuple[str, str] | None = None


_GO = Verdict()


def check_requests(
    limits: RateLimits, rv: RequestVars, table: Callable[[LimitZone], ReqTable], now: int
) -> Verdict:
    """
    ``limit_req``, as nginx's preaccess handler runs it: every zone is
    checked, and a request over any burst is refused without being counted
    anywhere; otherwise it is counted in each zone and held for the longest
    delay any of them asks.
    """
    checked = []
    for zone, burst, delay in limits.reqs:
        key = render(zone.key, rv)
        if not key or len(key) > _REQ_KEY_MAX:
            continue
        tag, bucket = key_hash(key), table(zone)
        excess = bucket.excess(tag, now)
        if excess > burst:
            return _refused_request(limits, rv, zone, excess)
        checked.append((zone, bucket, tag, delay))
    if not checked:
        return _GO
    _note(rv, "limit_req_status", "PASSED")
    longest, why = 0, None
    for zone, bucket, tag, delay in checked:
        excess = bucket.charge(tag, now)
        wait = 0 if delay == _NO_DELAY or excess <= delay else (excess - delay) * 1000 // bucket.rate
        if wait > longest:
            longest, why = wait, (excess, zone.name)
    if why is None:
        return _GO
    excess, zone_name = why
    dry = ", dry run" if limits.req_dry_run else ""
    text = f'delaying request{dry}, excess: {_milli(excess)}, by zone "{zone_name}"'
    _note(rv, "limit_req_status", "DELAYED_DRY_RUN" if dry else "DELAYED")
    return Verdict(delay=0.0 if dry else longest / 1000, log=(_QUIETER[limits.req_log_level], text))


def count_connections(
    limits: RateLimits, rv: RequestVars, table: Callable[[LimitZone], ConnTable]
) -> Verdict:
    """
    ``limit_conn``: one more open request (or tunnel) per key in each zone;
    at a zone's number, or with the zone full, the counts taken so far are
    given back and the request refused (only logged with ``dry_run``).
    """
    held: list[Held] = []
    skipped = None
    for zone, number in limits.conns:
        key = render(zone.key, rv)
        if not key:
            continue
        if len(key) > _CONN_KEY_MAX:
            skipped = ("error", f'the value of the "{zone.key.text}" key is more than {_CONN_KEY_MAX} bytes: "{key}"')
            continue
        _note(rv, "limit_conn_status", "PASSED")
        counts = table(zone)
        tag = key_hash(key)
        taken = counts.acquire(tag, number)
        if taken:
            held.append(Held(counts, tag))
            continue
        for hold in held:
            hold.table.release(hold.tag)
        dry = limits.conn_dry_run
        if taken is None:
            log = ("crit", f'ngx_slab_alloc() failed: no memory in limit_conn_zone "{zone.name}"')
        else:
            log = (limits.conn_log_level, f'limiting connections{", dry run," if dry else ""} by zone "{zone.name}"')
        _note(rv, "limit_conn_status", "REJECTED_DRY_RUN" if dry else "REJECTED")
        return Verdict(status=0 if dry else limits.conn_status, log=log)
    return Verdict(held=tuple(held), log=skipped) if held or skipped else _GO


def _refused_request(limits: RateLimits, rv: RequestVars, zone: LimitZone, excess: int) -> Verdict:
    dry = limits.req_dry_run
    text = f'limiting requests{", dry run" if dry else ""}, excess: {_milli(excess)} by zone "{zone.name}"'
    _note(rv, "limit_req_status", "REJECTED_DRY_RUN" if dry else "REJECTED")
    return Verdict(status=0 if dry else limits.req_status, log=(limits.req_log_level, text))


def _note(rv: RequestVars, name: str, value: str) -> None:
    if rv.limited is None:
        rv.limited = {}
    rv.limited[name] = value


def _milli(value: int) -> str:
    return f"{value // 1000}.{value % 1000:03d}"
