"""
Whether an answer is gzipped, decided as nginx 1.22's gzip filter decides
it, and the head it then gets: ``Content-Encoding: gzip``, no
Content-Length or Accept-Ranges, a weak ETag, and ``Vary:
Accept-Encoding`` under ``gzip_vary``.  The same decision serves proxied
answers and files; the compressing itself is the protocols' (zlib does it
as the body streams).

The order of the tests is nginx's, which matters for Vary: it is added once
the answer could be compressed (status, type, length), whether or not this
client accepts gzip.
"""

from __future__ import annotations

import email.utils
from typing import NamedTuple, Sequence

from wstunnel.config.model import Gzip
from wstunnel.wire.request import RequestHead

__all__ = ["VARY", "Deflate", "Encoding", "StaticGzip", "accepts_gzip", "deflate_for", "gzip_ok", "msie6", "plan_encoding", "static_variant"]

Headers = Sequence[tuple[bytes, bytes]]

# The statuses nginx compresses; a 206 never is, so ranges go as they are.
_STATUSES = frozenset({200, 403, 404})
VARY = (b"Vary", b"Accept-Encoding")
_ENCODED = (b"Content-Encoding", b"gzip")
_DROPPED = frozenset({b"content-length", b"accept-ranges"})
_MAX_WBITS = 15
_MEMLEVEL = 8


class Deflate(NamedTuple):
    """zlib's parameters for one body: nginx's, with the window shrunk for a short known length."""

    level: int
    wbits: int
    memlevel: int


class Encoding(NamedTuple):
    """The head the client gets, and how its body is compressed (None: as it is)."""

    headers: list[tuple[bytes, bytes]]
    deflate: Deflate | None


def plan_encoding(
    settings: Gzip, request: RequestHead, status: int, headers: list[tuple[bytes, bytes]], now: float
) -> Encoding | None:
    """
    The answer's head and compression when gzip changes anything; None when
    it leaves the answer alone (nginx's first tests: off, status, an
    encoded body, the length, the type).  A HEAD answer gets the head a GET
    would, as from nginx, whose gzip filter runs before the request is
    marked header-only; it has no body to compress.
    """
    length = _compressible(settings, status, headers)
    if length is None:
        return None
    if not gzip_ok(settings, request, headers, now):
        return Encoding([*headers, VARY], None) if settings.vary else None
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"etag":
            value = _weak_etag(value)
        if lower not in _DROPPED and value is not None:
            out.append((name, value))
    if settings.vary:
        out.append(VARY)
    out.append(_ENCODED)
    return Encoding(out, deflate_for(settings.comp_level, length))


def _compressible(settings: Gzip, status: int, headers: Headers) -> int | None:
    """The answer's length (-1: unknown) when it passes nginx's first tests, else None."""
    if not settings.enabled or status not in _STATUSES:
        return None
    length = -1
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-encoding" and value:
            return None
        if lower == b"content-length":
            length = int(value) if value.isdigit() else -1
    if 0 <= length < settings.min_length or not _type_listed(settings.types, headers):
        return None
    return length


def deflate_for(level: int, length: int) -> Deflate:
    """A short body needs a small window, as nginx sizes it; zlib's gzip wrapper needs 9 bits at least."""
    wbits, memlevel = _MAX_WBITS, _MEMLEVEL
    if length > 0:
        while wbits > 9 and length < (1 << (wbits - 1)) - 262:
            wbits -= 1
            memlevel -= 1
    return Deflate(level, wbits, max(memlevel, 1))


def _weak_etag(value: bytes) -> bytes | None:
    """nginx's ngx_http_weak_etag: a strong ETag becomes weak, a malformed one is dropped (None)."""
    if len(value) > 2 and value.startswith(b"W/"):
        return value
    return b"W/" + value if value.startswith(b'"') else None


def _type_listed(types: frozenset[bytes] | None, headers: Headers) -> bool:
    if types is None:
        return True
    content_type = b""
    for name, value in headers:
        if name.lower() == b"content-type":
            content_type = value
    return bool(content_type) and _media_type(content_type).lower() in types


def _media_type(value: bytes) -> bytes:
    """nginx cuts the type at the ``;`` before a charset only; other parameters stay in it."""
    start = 0
    while True:
        semi = value.find(b";", start)
        if semi < 0:
            return value
        if value[semi + 1 :].lstrip(b" ")[:8].lower() == b"charset=":
            return value[:semi]
        start = semi + 1


def gzip_ok(settings: Gzip, request: RequestHead, headers: Headers, now: float) -> bool:
    """nginx's ngx_http_gzip_ok: the client accepts gzip, and nothing in the request or answer forbids it."""
    accept = request.values(b"accept-encoding")
    if not accept or not accepts_gzip(accept[0]):
        return False
    agent = request.values(b"user-agent")
    if settings.disable_msie6 and agent and msie6(agent[0]):
        return False
    if request.http_version < settings.http_version:
        return False
    if request.values(b"via") and not _proxied_ok(settings.proxied, request, headers, now):
        return False
    if agent and settings.disable:
        text = agent[0].decode("latin-1")
        return not any(pattern.search(text) for pattern in settings.disable)
    return True


def _proxied_ok(proxied: frozenset[str], request: RequestHead, headers: Headers, now: float) -> bool:
    """gzip_proxied, for a request that came through a proxy (it has Via), in nginx's order."""
    if "off" in proxied:
        return False
    if "any" in proxied or ("auth" in proxied and request.values(b"authorization")):
        return True
    found = {name.lower(): value for name, value in headers}
    expires = found.get(b"expires")
    if expires is not None:
        return "expired" in proxied and _expired(expires, found.get(b"date"), now)
    cache_control = found.get(b"cache-control")
    if cache_control is not None:
        tokens = {part.split(b"=")[0].strip(b" \t").lower() for part in _all(headers, b"cache-control")}
        return any(word in proxied and word.encode() in tokens for word in ("no-cache", "no-store", "private"))
    if "no_last_modified" in proxied and b"last-modified" in found:
        return False
    return not ("no_etag" in proxied and b"etag" in found)


def _all(headers: Headers, name: bytes) -> list[bytes]:
    return [part for n, v in headers if n.lower() == name for part in v.split(b",")]


def _expired(expires: bytes, date: bytes | None, now: float) -> bool:
    when = _http_time(expires)
    if when is None:
        return False
    reference = now if date is None else _http_time(date)
    return reference is not None and when < reference


def _http_time(value: bytes) -> float | None:
    parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    return None if parsed is None else float(email.utils.mktime_tz(parsed))


def accepts_gzip(value: bytes) -> bool:
    """
    nginx's reading of Accept-Encoding: a ``gzip`` token (any case) at the
    start or after a comma or space, and not ``q=0``.
    """
    if value[:5] == b"gzip,":
        return True
    lower = value.lower()
    start = 0
    while True:
        at = lower.find(b"gzip", start)
        if at < 0:
            return False
        if at == 0 or lower[at - 1 : at] in (b",", b" "):
            break
        start = at + 4
    rest = lower[at + 4 :]
    for pos, byte in enumerate(rest):
        if byte == 0x2C:  # ","
            return True
        if byte == 0x3B:  # ";"
            return _quality(rest[pos + 1 :]) > 0
        if byte != 0x20:
            return False
    return True


def _quality(text: bytes) -> int:
    """nginx's ngx_http_gzip_quantity: q=0 .. q=1 in thousandths at most, 0 for anything malformed."""
    text = text.lstrip(b" ")
    if text[:2] != b"q=" or text[2:3] not in (b"0", b"1"):
        return 0
    value = 100 if text[2:3] == b"1" else 0
    rest = text[3:]
    if not rest or rest[:1] in (b",", b" "):
        return value
    if rest[:1] != b".":
        return 0
    digits = 0
    for byte in rest[1:]:
        if byte in (0x2C, 0x20):
            break
        if not 0x30 <= byte <= 0x39:
            return 0
        value += byte - 0x30
        digits += 1
    return 0 if value > 100 or digits > 3 else value


def msie6(agent: bytes) -> bool:
    """nginx's ``msie6`` test: MSIE 4, 5, or 6 without SV1, and never Opera."""
    at = agent.find(b"MSIE ")
    if at < 0 or at + 7 >= len(agent) or b"Opera" in agent or agent[at + 6 : at + 7] != b".":
        return False
    major = agent[at + 5 : at + 6]
    return major in (b"4", b"5") or (major == b"6" and b"SV1" not in agent[at + 8 :])


class StaticGzip(NamedTuple):
    """gzip_static's choice for one file request, before the ``.gz`` sibling is looked for."""

    serve: bool  # when the sibling exists, it is the answer (Content-Encoding: gzip)
    vary: bool  # when the sibling exists, Vary: Accept-Encoding is added


def static_variant(settings: Gzip, request: RequestHead, uri: str) -> StaticGzip | None:
    """
    nginx's gzip_static handler: GET or HEAD of a file (not a directory),
    ``on`` when the client may have gzip, ``always`` whatever it says.
    None: no sibling is looked for.
    """
    if settings.static == "off" or request.method not in (b"GET", b"HEAD") or uri.endswith("/"):
        return None
    ok = settings.static == "always" or gzip_ok(settings, request, (), 0.0)
    if not ok and not settings.vary:
        return None
    return StaticGzip(serve=ok, vary=settings.vary)
