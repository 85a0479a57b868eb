"""
Inheritance for the directives that shape a proxied exchange (cookies,
expires, charset, the upstream request's method and headers): each is written at a level as a list of lines, compiled once
there, and the nearest level that writes a directive gives all of it, as
nginx merges each of them.
"""

from __future__ import annotations

from typing import Callable, Mapping

from wstunnel.config import charset, cookies, expires, request_shape
from wstunnel.config.levels import Level
from wstunnel.config.walk import Load

__all__ = ["merged_shaping"]

_COMPILERS: dict[str, Callable[..., object]] = {
    **cookies.COMPILERS,
    **expires.COMPILERS,
    **charset.COMPILERS,
    **request_shape.COMPILERS,
}


def merged_shaping(load: Load, level: Level, parent: Mapping[str, object]) -> Mapping[str, object]:
    """``parent``'s values with those ``level`` writes compiled over them."""
    if not level.shaping:
        return parent
    merged = dict(parent)
    for name, written in level.shaping.items():
        merged[name] = _COMPILERS[name](load, written)
    return merged
