"""
Message bodies on the wire: Content-Length, chunked, and read-until-close.

The heads around a body are parsed and checked by :mod:`wstunnel.wire.heads`;
what is left of HTTP/1.1 framing is small enough to write here, sans-IO,
instead of running every request through a general parser's event state
machine (doc/performance.md: that machine is the largest single cost of a
request).  The readers are held to the strict side of RFC 9112 section 7.1,
because a proxy that decodes a chunked body more leniently than the peer
behind it can be made to see a different message than that peer does:
CRLF everywhere, 1 to 16 hex digits of chunk size and a size of at most
2**59 - 1 (nginx's bound: its parser refuses a size over the largest
``off_t`` divided by 16), and a bound on every line and on the trailer
section.  Trailer fields are checked and dropped: we re-frame what we
forward and send none.

Each reader hands the decoded bytes of one fed buffer to a ``sink`` in one
call, so a body is never held whole, and ``feed`` returns the bytes that
followed the body once it has ended (the next message, or a tunnel's first
bytes).  One call per buffer, however many chunks it held, is what keeps a
flood of tiny chunks cheap: the sink's caller writes one chunk upstream (or
to the client) per call, so the peer gets the body re-chunked in buffer-sized
pieces rather than the sender's.
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

_MAX_CHUNK = (2**63 - 1) // 16  # nginx 1.22 takes 0x7ffffffffffffff and answers 0x800000000000000 with 400
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_FIRST_WINDOW = 128  # bytes split at a time when a run of whole chunks starts; doubles as the run goes on
_MAX_MISSES = 6  # after short runs in a row, up to 2**6 - 1 chunks are read one at a time before the next try


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

    # ``done`` is kept as a slot, not a property: it is read several times per request.
    __slots__ = ("_left", "done")

    def __init__(self, length: int) -> None:
        self._left = length
        self.done = not length

    def feed(self, data: bytes, sink: Sink) -> bytes | None:
        left = self._left
        size = len(data)
        if size < left:
            self._left = left - size
            if size:
                sink(data)
            return None
        self._left = 0
        self.done = True
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

    Whole chunks whose data holds no CRLF, the bulk of any body and all of
    a flood of tiny ones, are decoded a window at a time by splitting the
    window at CRLF (:meth:`_whole_chunks`): the checks then run over lists
    in C, not chunk by chunk in Python.  A chunk whose data holds a CRLF
    is read on its own (:meth:`_one_chunk`, index arithmetic); the last
    chunk, a chunk cut by the buffer's end and every refusal go through the
    line-by-line reader, which holds all the rules.
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
        out: list[bytes] = []
        try:
            return self._decode(data, out)
        finally:  # the data before a framing error too, as the peer sent it
            if out:
                sink(out[0] if len(out) == 1 else b"".join(out))

    def eof(self) -> None:
        if self._state != _DONE:
            raise BodyError("chunked body cut short")

    def _decode(self, data: bytes, out: list[bytes]) -> bytes | None:
        """``data``'s chunk data onto ``out``; what follows the body once it has ended."""
        pos = 0
        size = len(data)
        misses = wait = 0  # short runs in a row; chunks to read one at a time before trying a run again
        while pos < size:
            if self._state == _DATA:
                pos = self._data(data, pos, out)
                continue
            if self._state == _SIZE and not self._line:
                start = pos
                if wait:
                    wait -= 1
                    pos = self._one_chunk(data, pos, out)
                    if pos > start:
                        continue
                else:
                    pos = self._whole_chunks(data, pos, out)
                    if pos == size:
                        return None
                    misses = 0 if pos - start >= _FIRST_WINDOW else min(misses + 1, _MAX_MISSES)
                    wait = (1 << misses) - 1
            pos = self._next_line(data, pos)
            if self._state == _DONE:
                return data[pos:]
        return None

    def _data(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """The current chunk's data from ``pos`` onto ``out``; where it ended (or the buffer did)."""
        size = len(data)
        end = pos + self._left
        if end >= size:
            out.append(data[pos:] if pos else data)
            self._left = end - size
            if not self._left:
                self._state = _DATA_END
            return size
        out.append(data[pos:end])
        self._left = 0
        self._state = _DATA_END
        return end

    def _next_line(self, data: bytes, pos: int) -> int:
        """The line from ``pos`` read (or held, when the buffer ends first); where the next one starts."""
        lf = data.find(b"\n", pos)
        if lf < 0:
            self._hold(data[pos:])
            return len(data)
        line = data[pos:lf]
        if self._line:
            line = self._line + line
            self._line = b""
        self._check_length(len(line) + 1)
        self._line_ended(line)
        return lf + 1

    def _whole_chunks(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """
        The run of regular whole chunks from ``pos`` (a size line's start):
        their data onto ``out``, and where the run stopped.  The window
        doubles while every chunk in it is regular, so the bytes split and
        not used after an irregular chunk are never more than those used.
        """
        size = len(data)
        window = _FIRST_WINDOW
        while True:
            end = pos + window
            pieces = data[pos:end].split(b"\r\n")
            del pieces[-1]  # not followed by CRLF within the window
            del pieces[len(pieces) & ~1:]  # size line and data in pairs
            count = self._regular(pieces) if pieces else 0
            if count:
                out += pieces[1 : 2 * count : 2]
                pos += sum(map(len, pieces[: 2 * count])) + 4 * count
            if end >= size or not pieces or 2 * count < len(pieces):
                return pos
            window *= 2

    def _one_chunk(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """
        One whole chunk at ``pos`` (its data may hold a CRLF), its data onto
        ``out``: the position after it, or ``pos`` to leave it to the line reader.
        """
        lf = data.find(b"\r\n", pos)
        if lf < 0 or lf + 2 - pos > self._limit:
            return pos
        match = _SIZE_LINE.match(data[pos:lf].rstrip(b" \t"))
        if match is None:
            return pos
        start = lf + 2
        end = start + int(match.group(1), 16)
        if end == start or end - start > _MAX_CHUNK or not data.startswith(b"\r\n", end):
            return pos
        out.append(data[start:end])
        return end + 2

    def _regular(self, pieces: list[bytes]) -> int:
        """
        How many leading (size line, data) pairs of ``pieces`` are whole
        chunks: a valid size line within the bounds, and data exactly that
        long (a shorter piece is data with a CRLF in it, left to the line
        reader, as is the last chunk).  A piece that follows a whole chunk
        starts the next chunk's size line, so the pairs stay aligned.
        """
        lines = pieces[0::2]
        lengths = list(map(len, lines))
        longest = max(lengths)
        if 0 < min(lengths) and longest <= min(16, self._limit - 2) and not b"".join(lines).translate(None, _HEX_DIGITS):
            digits = lines
        else:
            digits = self._size_digits(lines, lengths)
        count = len(digits)
        sizes = list(map(int, digits, [16] * count))
        data_lengths = list(map(len, pieces[1 : 2 * count : 2]))
        if sizes != data_lengths:
            count = list(map(int.__eq__, sizes, data_lengths)).index(False)
        if 0 in data_lengths[:count]:
            count = data_lengths.index(0)
        if count and max(sizes[:count]) > _MAX_CHUNK:
            count = next(i for i, n in enumerate(sizes) if n > _MAX_CHUNK)
        return count

    def _size_digits(self, lines: list[bytes], lengths: list[int]) -> list[bytes]:
        """The hex digits of the leading valid size lines (extensions, spaces, within the line bound)."""
        bound = self._limit - 2
        if max(lengths) > bound:
            lines = lines[: next(i for i, n in enumerate(lengths) if n > bound)]
        count = len(lines)
        matches = list(map(_SIZE_LINE.match, map(bytes.rstrip, lines, [b" \t"] * count)))
        if None in matches:
            count = matches.index(None)
            del matches[count:]
        return list(map(re.Match.group, matches, [1] * count))

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
            if self._left > _MAX_CHUNK:
                raise BodyError(f"chunk size {line[:32]!r} over 2**59 - 1")
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
