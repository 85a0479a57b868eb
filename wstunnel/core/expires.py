"""
``expires``: the Expires and Cache-Control an answer gets, as nginx 1.22's
headers filter writes them, on the statuses add_header uses.  ``now`` is
the answer's Date (from the caller's clock), to the second as nginx keeps
time; ``daily`` counts in the server's local time, as nginx does.
"""

from __future__ import annotations

import email.utils
import time

from wstunnel.config.expires import parse_expires
from wstunnel.config.model import Expires
from wstunnel.core.add_header import ADDED_STATUSES
from wstunnel.core.variables import RequestVars, render

__all__ = ["with_expires", "expires_values"]

_EPOCH = (b"Thu, 01 Jan 1970 00:00:01 GMT", b"no-cache")
_MAX = (b"Thu, 31 Dec 2037 23:55:55 GMT", b"max-age=315360000")


def with_expires(
    headers: list[tuple[bytes, bytes]], rule: Expires, status: int, date: bytes, rv: RequestVars
) -> list[tuple[bytes, bytes]]:
    """
    ``headers`` with the values set as nginx sets them: the upstream's last
    Expires and first Cache-Control are rewritten in place, its other
    Cache-Control lines dropped, and what it lacked appended.
    """
    modified = next((v for n, v in reversed(headers) if n.lower() == b"last-modified"), None)
    values = expires_values(rule, status, date, modified, rv)
    if values is None:
        return headers
    expires_at = max((i for i, (n, _) in enumerate(headers) if n.lower() == b"expires"), default=None)
    out: list[tuple[bytes, bytes]] = []
    control_seen = False
    for index, (name, value) in enumerate(headers):
        if index == expires_at:
            value = values[0]
        elif name.lower() == b"cache-control":
            if control_seen:
                continue
            control_seen, value = True, values[1]
        out.append((name, value))
    if expires_at is None:
        out.append((b"Expires", values[0]))
    if not control_seen:
        out.append((b"Cache-Control", values[1]))
    return out


def expires_values(
    rule: Expires, status: int, date: bytes, last_modified: bytes | None, rv: RequestVars
) -> tuple[bytes, bytes] | None:
    """The Expires and Cache-Control values for an answer, or None when it gets none."""
    if status not in ADDED_STATUSES:
        return None
    kind, seconds = rule.kind, rule.seconds
    if rule.value is not None:
        try:
            kind, seconds = parse_expires(render(rule.value, rv), modified=kind == "modified")
        except ValueError:
            return None
    if kind == "off":
        return None
    if kind == "epoch":
        return _EPOCH
    if kind == "max":
        return _MAX
    if seconds == 0 and kind != "daily":
        return date, b"max-age=0"
    now = _seconds(date)
    if now is None:
        return None
    return _timed(kind, seconds, now, _seconds(last_modified), rule.seconds < 0)


def _timed(kind: str, seconds: int, now: int, modified: int | None, negative: bool) -> tuple[bytes, bytes]:
    if kind == "daily":
        when = _next_time_of_day(seconds, now)
        max_age = when - now
    elif kind == "access" or modified is None:
        when, max_age = now + seconds, seconds
    else:
        when = modified + seconds
        max_age = when - now
    control = b"no-cache" if negative or max_age < 0 else b"max-age=%d" % max_age
    return email.utils.formatdate(when, usegmt=True).encode("ascii"), control


def _next_time_of_day(seconds: int, now: int) -> int:
    """The next moment, after ``now``, the local clock shows ``seconds`` past midnight."""
    local = list(time.localtime(now))
    local[3:6] = seconds // 3600, seconds % 3600 // 60, seconds % 60
    local[8] = -1
    when = int(time.mktime(tuple(local)))  # type: ignore[arg-type]
    if when - now > 0:
        return when
    local[2] += 1
    return int(time.mktime(tuple(local)))  # type: ignore[arg-type]


def _seconds(value: bytes | None) -> int | None:
    if value is None:
        return None
    parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    return None if parsed is None else int(email.utils.mktime_tz(parsed))
