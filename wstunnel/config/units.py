"""
nginx's time and size notation (``300s``, ``1h30m``, ``500ms``, ``64k``).

Configs written for nginx must mean the same thing here, so the rules follow
ngx_parse_time and ngx_parse_size: units in decreasing order, each at most
once, a trailing bare number counted in seconds.
"""

from __future__ import annotations

import re

__all__ = ["parse_size", "parse_time"]

# Milliseconds per unit, in the only order nginx accepts them.
_TIME_UNITS = {
    "y": 365 * 86_400_000,
    "M": 30 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_TIME_RANK = {unit: rank for rank, unit in enumerate(_TIME_UNITS)}
_TIME_PART = re.compile(r"(\d+)(ms|[yMwdhms])? *")
# nginx stores times in a 32-bit integer; anything larger is a typo.
_TIME_MAX_MS = (2**31 - 1) * 1000

_SIZE = re.compile(r"(\d+)([kKmMgG]?)")
_SIZE_SCALE = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_time(text: str) -> float:
    """Seconds in an nginx time value; a bare number means seconds."""
    total_ms = 0
    rank = -1
    pos = 0
    while pos < len(text):
        match = _TIME_PART.match(text, pos)
        if match is None:
            raise ValueError(f'invalid time value "{text}"')
        digits, unit = match.groups()
        if unit is None:
            if match.end() != len(text):
                raise ValueError(f'invalid time value "{text}"')
            unit = "s"
        elif _TIME_RANK[unit] <= rank:
            raise ValueError(f'invalid time value "{text}": units out of order')
        else:
            rank = _TIME_RANK[unit]
        total_ms += int(digits) * _TIME_UNITS[unit]
        pos = match.end()
    if pos == 0:
        raise ValueError(f'invalid time value "{text}"')
    if total_ms > _TIME_MAX_MS:
        raise ValueError(f'time value "{text}" is too large')
    return total_ms / 1000


def parse_size(text: str) -> int:
    """Bytes in an nginx size value (``1024``, ``8k``, ``1m``, ``1g``)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f'invalid size value "{text}"')
    digits, unit = match.groups()
    return int(digits) * _SIZE_SCALE[unit.lower()]
