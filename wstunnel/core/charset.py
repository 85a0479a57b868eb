"""
``charset``: ``; charset=NAME`` added to a proxied answer's Content-Type,
as nginx 1.22's charset filter does without a ``charset_map``: only on
the ``charset_types`` and only when the upstream named no charset, or,
with ``override_charset``, replacing the one it named when it is the same
charset.  301 and 302 answers never get one.  A source charset other than
the charset would need recoding, which nginx without a map declines too:
the answer passes as it came.
"""

from __future__ import annotations

from wstunnel.config.model import Charset
from wstunnel.core.variables import RequestVars, render

__all__ = ["with_charset"]

_NO_CHARSET = frozenset({301, 302})


def with_charset(
    headers: list[tuple[bytes, bytes]], rule: Charset, status: int, rv: RequestVars
) -> list[tuple[bytes, bytes]]:
    """``headers`` with the last Content-Type given its charset, when one is due."""
    at = max((i for i, (n, _) in enumerate(headers) if n.lower() == b"content-type"), default=None)
    if at is None or not headers[at][1]:
        return headers
    value = headers[at][1].decode("latin-1")
    mime, named = _split(value)
    wanted = render(rule.name, rv)
    if named is not None:
        if not rule.override or named.lower() != wanted.lower():
            return headers
        written = mime if status in _NO_CHARSET else f"{mime}; charset={wanted}"
    else:
        if "*" not in rule.types and value.lower() not in rule.types:
            return headers
        if rule.source is not None and render(rule.source, rv).lower() != wanted.lower():
            return headers
        if not wanted or status in _NO_CHARSET:
            return headers
        written = f"{value}; charset={wanted}"
    if any(c in written for c in "\r\n\0"):
        return headers
    out = list(headers)
    out[at] = (headers[at][0], written.encode("latin-1", "replace"))
    return out


def _split(value: str) -> tuple[str, str | None]:
    """nginx's reading of Content-Type: the type before a ``charset=`` parameter, and that charset unquoted."""
    start = 0
    while (semicolon := value.find(";", start)) >= 0:
        rest = value[semicolon + 1 :].lstrip(" ")
        if rest[:8].lower() == "charset=":
            named = rest[8:]
            named = named[1:] if named.startswith('"') else named
            named = named[:-1] if named.endswith('"') else named
            return value[:semicolon], named
        start = semicolon + 1
    return value, None
