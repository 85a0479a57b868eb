"""
The answer for one open file, as nginx's not-modified and range filters
give it: ``If-Unmodified-Since`` and ``If-Match`` (412), then
``If-Modified-Since`` (with ``if_modified_since``) and ``If-None-Match``
(304), then ``Range`` (206, several ranges as ``multipart/byteranges``,
416), with ``If-Range``.  ``ETag`` is nginx's ``"mtime-size"`` in hex, so
caches keep validating after a move from nginx.

Only the size and time of the file are read, so the answer is computed
from the descriptor's ``fstat`` where the file is opened.
"""

from __future__ import annotations

import calendar
import time
from email.utils import parsedate_tz
from typing import Callable, NamedTuple

from wstunnel.config.model import FileSettings
from wstunnel.wire.request import RequestHead

__all__ = ["FileReply", "content_type", "etag", "file_reply"]

_Headers = tuple[tuple[bytes, bytes], ...]
_DAYS = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


class FileReply(NamedTuple):
    """
    ``status`` and ``headers`` (Content-Length included whenever a body
    would follow); the body is each part's prefix then ``length`` bytes of
    the file from ``offset``, then ``trailer``.  An error (412, 416) has
    no parts: its standard page is the body.
    """

    status: int
    headers: _Headers
    parts: tuple[tuple[bytes, int, int], ...] = ()
    trailer: bytes = b""


def content_type(path: str, files: FileSettings) -> bytes:
    """By the extension after the last dot of the file name, case-insensitively, else ``default_type``."""
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    kind = files.types.get(name[dot + 1 :].lower()) if dot >= 0 else None
    return (kind or files.default_type).encode("latin-1")


def etag(size: int, mtime: int) -> bytes:
    return b'"%x-%x"' % (mtime, size)


def file_reply(
    head: RequestHead,
    files: FileSettings,
    size: int,
    mtime: int,
    kind: bytes,
    boundary: Callable[[], bytes],
    encoding: _Headers = (),
    ranges: bool = True,
) -> FileReply:
    """
    What ``head`` gets of a file of ``size`` bytes last modified at
    ``mtime`` (whole seconds); ``boundary`` makes a multipart boundary,
    asked only for several ranges.  ``encoding`` goes with every answer
    but an error (a ``.gz`` sibling's Content-Encoding); without
    ``ranges`` a Range is ignored, as when the answer will be gzipped.
    """
    tag = etag(size, mtime) if files.etag else None
    validators: _Headers = (*encoding, (b"Last-Modified", _http_time(mtime)), *(((b"ETag", tag),) if tag else ()))
    unmodified = _first(head, b"if-unmodified-since")
    if unmodified is not None and not _parsed_time(unmodified) >= mtime:
        return FileReply(412, ())
    match = _first(head, b"if-match")
    if match is not None and not _matches(match, tag, weak=False):
        return FileReply(412, ())
    if _not_modified(head, files, mtime, tag):
        return FileReply(304, validators)
    whole = FileReply(
        200,
        ((b"Content-Type", kind), (b"Content-Length", b"%d" % size), *validators, (b"Accept-Ranges", b"bytes")),
        ((b"", 0, size),),
    )
    spec = _first(head, b"range")
    if not ranges or spec is None or len(spec) < 7 or spec[:6].lower() != b"bytes=" or not _if_range(head, mtime, tag):
        return whole
    wanted = _ranges(spec[6:], size)
    if wanted is None:
        return whole
    if not wanted:
        return FileReply(416, ((b"Content-Range", b"bytes */%d" % size),))
    return _partial(wanted, size, kind, validators, boundary)


def _http_time(seconds: int) -> bytes:
    """IMF-fixdate, spelled without the locale."""
    t = time.gmtime(seconds)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec
    )


def _first(head: RequestHead, name: bytes) -> bytes | None:
    """nginx 1.22 keeps the first of these request headers."""
    values = head.values(name)
    return values[0] if values else None


def _parsed_time(value: bytes) -> int:
    """ngx_parse_http_time: the three HTTP date formats; -1 for anything else."""
    parsed = parsedate_tz(value.decode("latin-1"))
    if parsed is None:
        return -1
    return calendar.timegm(parsed[:9]) - (parsed[9] or 0)


def _not_modified(head: RequestHead, files: FileSettings, mtime: int, tag: bytes | None) -> bool:
    since = _first(head, b"if-modified-since")
    none_match = _first(head, b"if-none-match")
    if since is None and none_match is None:
        return False
    if since is not None and _modified(since, files.if_modified_since, mtime):
        return False
    return none_match is None or _matches(none_match, tag, weak=True)


def _modified(value: bytes, mode: str, mtime: int) -> bool:
    if mode == "off":
        return True
    since = _parsed_time(value)
    if since == mtime:
        return False
    return mode == "exact" or since < mtime


def _matches(value: bytes, tag: bytes | None, *, weak: bool) -> bool:
    """ngx_http_test_if_match: ``*``, or the ETag among the list (a ``W/`` prefix ignored when weak)."""
    if value == b"*":
        return True
    if tag is None:
        return False
    for item in value.split(b","):
        item = item.strip(b" \t")
        if weak and item.startswith(b"W/"):
            item = item[2:]
        if item == tag:
            return True
    return False


def _if_range(head: RequestHead, mtime: int, tag: bytes | None) -> bool:
    """Whether the Range applies: no If-Range, or one naming this very file (ETag, else exact date)."""
    value = _first(head, b"if-range")
    if value is None:
        return True
    if len(value) >= 2 and value.endswith(b'"'):
        return tag is not None and value == tag
    return _parsed_time(value) == mtime


def _ranges(spec: bytes, size: int) -> list[tuple[int, int]] | None:
    """
    ngx_http_range_parse: the [start, end) ranges; [] when none is
    satisfiable (416), None when the whole file is sent instead (a range
    from 0 of an empty file, or ranges adding up to more than the file).
    """
    ranges: list[tuple[int, int]] = []
    total = 0
    for item in spec.split(b","):
        bounds = _bounds(item.strip(b" "), size)
        if bounds is None:
            return []
        start, end = bounds
        if start < end:
            ranges.append(bounds)
            total += end - start
        elif start == 0:
            return None
    if total > size:
        return None
    return ranges


def _bounds(item: bytes, size: int) -> tuple[int, int] | None:
    """One ``first-last``, ``first-`` or ``-suffix``, clamped to the file; None when malformed."""
    first, dash, last = item.partition(b"-")
    first, last = first.strip(b" "), last.strip(b" ")
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None
    if not first:
        suffix = int(last)
        return (size - suffix if suffix < size else 0), size
    start = int(first)
    if not last:
        return start, size
    end = int(last)
    return start, (size if end >= size else end + 1)


def _partial(
    ranges: list[tuple[int, int]], size: int, kind: bytes, validators: _Headers, make_boundary: Callable[[], bytes]
) -> FileReply:
    """206: one range as it is, several as multipart/byteranges."""
    if len(ranges) == 1:
        start, end = ranges[0]
        headers = (
            (b"Content-Type", kind),
            (b"Content-Length", b"%d" % (end - start)),
            *validators,
            (b"Content-Range", b"bytes %d-%d/%d" % (start, end - 1, size)),
        )
        return FileReply(206, headers, ((b"", start, end - start),))
    boundary = make_boundary()
    parts = tuple(
        (
            b"\r\n--%s\r\nContent-Type: %s\r\nContent-Range: bytes %d-%d/%d\r\n\r\n"
            % (boundary, kind, start, end - 1, size),
            start,
            end - start,
        )
        for start, end in ranges
    )
    trailer = b"\r\n--%s--\r\n" % boundary
    length = sum(len(prefix) + n for prefix, _, n in parts) + len(trailer)
    headers = (
        (b"Content-Type", b"multipart/byteranges; boundary=" + boundary),
        (b"Content-Length", b"%d" % length),
        *validators,
    )
    return FileReply(206, headers, parts, trailer)
