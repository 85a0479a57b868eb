"""
Message bodies on the wire: Content-Length, chunked, and read-until-close.

The heads around a body are parsed and checked by :mod:`wstunnel.wire.heads`;
what is left of HTTP/1.1 framing is small enough to write here, sans-IO,
instead of running every request through a general parser's event state
machine (doc/performance.md: that machine is the largest single cost of a
request).  The readers are held to the strict side of RFC 9112 section 7.1,
because a proxy that decodes a chunked body more leniently than the peer
behind it can be made to see a different message than that peer does:
CRLF everywhere, 1 to 16 hex digits of chunk size, and a bound on every
line and on the trailer section.  Trailer fields are checked and dropped:
we re-frame what we forward and send none.

Each reader hands decoded bytes to a ``sink`` as they come, so a body is
never held whole, and ``feed`` returns the bytes that followed the body
once it has ended (the next message, or a tunnel's first bytes).
"""

from __future__ import annotations

import re
from typing import Callable

from wstunnel.config.tokens import TOKEN

__all__ = ["LAST_CHUNK", "BodyError", "ChunkedBody", "LengthBody", "UntilClose", "chunk"]

LAST_CHUNK = b"0\r\n\r\n"

Sink = Callable[[bytes], None]

_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;[\t\x20-\x7e\x80-\xff]*)?\Z")
_TRAILER_LINE = re.compile(TOKEN.encode("ascii") + rb":[\t\x20-\x7e\x80-\xff]*\Z")

# ChunkedBody states: which kind of line, or chunk data, comes next.
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class BodyError(Exception):
    """The body broke its framing; the message says how."""


def chunk(data: bytes) -> list[bytes]:
    """
    ``data`` as one chunk, in pieces for ``writeSequence`` so the data is
    not copied; never empty data (an empty chunk would end the body).
    """
    return [b"%x\r\n" % len(data), data, b"\r\n"]


class LengthBody:
    """A body of ``length`` bytes (Content-Length)."""

    __slots__ = ("_left",)

    def __init__(self, length: int) -> None:
        self._left = length

    @property
    def done(self) -> bool:
        return not self._left

    def feed(self, data: bytes, sink: Sink) -> bytes | None:
        left = self._left
        size = len(data)
        if size < left:
            self._left = left - size
            if size:
                sink(data)
            return None
        self._left = 0
        if size == left:
            if size:
                sink(data)
            return b""
        if left:
            sink(data[:left])
        return data[left:]

    def eof(self) -> None:
        if self._left:
            raise BodyError(f"body cut short, {self._left} bytes missing")


class UntilClose:
    """A response body that ends when the upstream closes (no length given)."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def feed(self, data: bytes, sink: Sink) -> bytes | None:
        if data:
            sink(data)
        return None

    def eof(self) -> None:
        self.done = True


class ChunkedBody:
    """
    A chunked body.  Only a line being read is held (``_line``): chunk data
    goes to the sink as it arrives.  ``limit`` bounds one chunk-size line
    and, separately, the whole trailer section.
    """

    __slots__ = ("_state", "_left", "_line", "_limit", "_trailer")

    def __init__(self, limit: int) -> None:
        self._state = _SIZE
        self._left = 0
        self._line = b""
        self._limit = limit
        self._trailer = 0  # bytes of trailer section so far

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes, sink: Sink) -> bytes | None:
        pos = 0
        size = len(data)
        while pos < size:
            if self._state == _DATA:
                end = pos + self._left
                if end >= size:
                    sink(data[pos:] if pos else data)
                    self._left = end - size
                    if not self._left:
                        self._state = _DATA_END
                    return None
                sink(data[pos:end])
                self._left = 0
                self._state = _DATA_END
                pos = end
                continue
            lf = data.find(b"\n", pos)
            if lf < 0:
                self._hold(data[pos:])
                return None
            line = data[pos:lf]
            if self._line:
                line = self._line + line
                self._line = b""
            self._check_length(len(line) + 1)
            pos = lf + 1
            self._line_ended(line)
            if self._state == _DONE:
                return data[pos:]
        return None

    def eof(self) -> None:
        if self._state != _DONE:
            raise BodyError("chunked body cut short")

    def _hold(self, part: bytes) -> None:
        """Part of a line: kept, within the same bounds as a whole line."""
        line = self._line + part
        self._check_length(len(line))
        self._line = line

    def _check_length(self, length: int) -> None:
        if self._state == _TRAILER:
            if self._trailer + length > self._limit:
                raise BodyError("chunked trailer section too large")
        elif length > self._limit:
            raise BodyError("chunk size line too long")

    def _line_ended(self, line: bytes) -> None:
        if not line.endswith(b"\r"):
            raise BodyError("bare LF in chunked body")
        line = line[:-1]
        state = self._state
        if state == _SIZE:
            match = _SIZE_LINE.match(line.rstrip(b" \t"))
            if match is None:
                raise BodyError(f"invalid chunk size line {line[:32]!r}")
            self._left = int(match.group(1), 16)
            self._state = _DATA if self._left else _TRAILER
        elif state == _DATA_END:
            if line:
                raise BodyError("chunk data longer than its size")
            self._state = _SIZE
        elif not line:
            self._state = _DONE
        else:
            self._trailer += len(line) + 2
            if not _TRAILER_LINE.match(line):
                raise BodyError(f"invalid trailer line {line[:32]!r}")
