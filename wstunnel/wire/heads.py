"""
The strict gate every message head passes, and the parse of each head.

General parsers such as h11 are lenient where a proxy must not be: they
join obs-fold lines, merge duplicate Content-Length values, accept bare LF,
let Content-Length ride along with Transfer-Encoding and parse any
``HTTP/x.y``.  Each of those is a way for two parsers in a chain to disagree
about where a message ends (request smuggling), so a head is checked here,
whole.  A request head is refused for everything h11 refused (the Host
and request-target rules with h11's 400), for each of those leniencies
(tests/unit/wire/test_wire_client.py), and for what nginx 1.22 refuses and h11
takes: a target in authority or asterisk form (400), CONNECT and TRACE
(405).  :class:`HeadGate` also enforces
the size limits as bytes arrive, so a client can never make us hold more
than the limit.

Requests are held to CRLF; upstream responses may use bare LF, as nginx
accepts from upstreams (we re-frame what we relay, so it cannot smuggle).
A response head is parsed here too, from the lines just checked:
:func:`check_response_head` returns it as a :class:`ResponseHead`.
"""

from __future__ import annotations

import re

from attrs import frozen

from wstunnel.config.tokens import TOKEN
from wstunnel.wire.errors import RequestError
from wstunnel.wire.request import RequestHead
from wstunnel.wire.response import ResponseHead

__all__ = [
    "H2_PREFACE_LINE",
    "HeadGate",
    "HeadLimits",
    "HeadSoFar",
    "Http2Preface",
    "check_request_head",
    "check_response_head",
    "head_so_far",
]

H2_PREFACE_LINE = b"PRI * HTTP/2.0"

_TOKEN = TOKEN.encode("ascii")
# nginx's request line takes an origin-form path or an absolute-form URL
# (``scheme://``) and nothing else: authority-form (``CONNECT host:443``) and
# asterisk-form (``OPTIONS *``) are refused with 400 before any header is read.
_FORM = rb"(?:/|[A-Za-z][A-Za-z0-9+.-]*://)"
# A method is what nginx's parser takes, read first: capitals, "_" and "-"
# ("get" and "G3T" are 400 however the rest of the line reads).
_METHOD = rb"[A-Z_-]+"
_METHOD_BYTES = re.compile(rb"[A-Z_-]*")
_TOKEN_METHOD = re.compile(rb"(?![A-Z_-]+ )" + _TOKEN + rb" ")  # a token h11 would take as a method
_REQUEST_LINE = re.compile(rb"(" + _METHOD + rb") (" + _FORM + rb"\S*) HTTP/([0-9])\.([0-9])\Z")
_OTHER_FORM_LINE = re.compile(_METHOD + rb" ((?!" + _FORM + rb")\S+) HTTP/")
# nginx 1.22 answers 505 as soon as the major version is over 1, whatever follows ("HTTP/3").
_NEWER_MAJOR = re.compile(rb"(" + _METHOD + rb") (" + _FORM + rb"\S*) HTTP/[2-9]")
# Methods nginx 1.22 refuses with 405 once the head is read, whatever the
# location: TRACE would echo the head (cookies included) back, CONNECT would
# turn the upstream connection into a tunnel of the client's choosing.
_NOT_ALLOWED = frozenset({b"CONNECT", b"TRACE"})
# A status of 000-099 is none: nginx and h11 both refuse it.
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-9][0-9]{2}(?: [\t\x20-\x7e\x80-\xff]*)?\Z")
# A header line: a token, a colon, and a value of visible bytes, spaces,
# tabs and obs-text (no other control byte), stripped of spaces and tabs
# after the match.  One possessive run to the end: linear on any line (a
# value pattern that also trims can backtrack quadratically on blanks).
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):([\t\x20-\x7e\x80-\xff]*+)\Z")
_HEADER_NAME = re.compile(rb"(" + _TOKEN + rb"):")
# nginx 1.22 ignores a request header whose name has a byte other than a
# letter, a digit or "-" (ignore_invalid_headers on, underscores_in_headers
# off): never forwarded, never read by $http_*.  A backend that reads "_"
# as "-" (CGI, WSGI) would otherwise take a client's X_Real_IP for the
# X-Real-IP the config sets.
_NGINX_NAME = re.compile(rb"[A-Za-z0-9-]+\Z")
_DIGITS = re.compile(rb"[0-9]{1,18}\Z")
_TOKEN_ONLY = re.compile(_TOKEN + rb"\Z")
# A request-target is visible ASCII (RFC 9112 section 3.2, h11's rule): raw
# spaces, controls and obs-text could be read differently by the upstream.
_TARGET = re.compile(rb"[\x21-\x7e]+\Z")
_LINE_END = re.compile(rb"[\r\n]")
_NOTHING_PARSED = RequestHead(method=b"", target=b"", http_version=b"", headers=())


class Http2Preface(Exception):
    """The client opened with HTTP/2's connection preface (prior knowledge)."""


@frozen
class HeadLimits:
    """
    ``line``: the request line (414) or one header line (431) may not be
    longer; ``total``: the whole head; ``count``: header lines.  For a
    response only ``total`` counts (nginx's proxy_buffer_size).
    """

    line: int
    total: int
    count: int | None = 100
    drop_invalid_names: bool = True  # ignore_invalid_headers

    @classmethod
    def for_buffers(cls, number: int, size: int, drop_invalid_names: bool = True) -> "HeadLimits":
        """
        ``large_client_header_buffers NUMBER SIZE`` as nginx applies it: a
        line and its CRLF must fit in one buffer, so the longest line is
        SIZE - 2 bytes (nginx 1.22 answers a request line of SIZE - 1 with 414).
        """
        return cls(line=size - 2, total=number * size, drop_invalid_names=drop_invalid_names)


class HeadGate:
    """
    Collects one head from a byte stream.  :meth:`feed` returns the complete
    head (terminator included) once it is there and keeps what follows for
    :meth:`take_rest`; it raises :class:`RequestError` as soon as a limit is
    passed or a bare LF is seen in a request, so slow or endless heads are
    refused without buffering them.
    """

    __slots__ = ("_limits", "_request", "_status", "_buffer", "_scanned", "_begun", "_line")

    def __init__(self, limits: HeadLimits, *, request: bool) -> None:
        self._limits = limits
        self._request = request
        self._status = 400 if request else 502
        self._buffer = bytearray()
        self._scanned = 0
        self._begun = not request  # a request head begins after any empty lines
        self._line = 0  # requests: where the first line not yet checked starts

    @property
    def limits(self) -> HeadLimits:
        return self._limits

    @property
    def pending(self) -> int:
        """Bytes held and not yet part of a returned head."""
        return len(self._buffer)

    @property
    def held(self) -> bytes:
        """The bytes held (after a refusal: the head as far as it was read)."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> bytes | None:
        buffer = self._buffer
        buffer += data
        if not self._begun:
            self._skip_empty_lines()
        end = self._find_end()
        if end < 0:
            self._check_partial()
            return None
        head = bytes(buffer[:end])
        del buffer[:end]
        self._scanned = 0
        self._line = 0
        self._begun = not self._request
        if end > self._limits.total:
            raise RequestError(self._status, "upstream sent too big header")
        return head

    def push(self, data: bytes) -> None:
        """Hold bytes for the next head without scanning them yet."""
        self._buffer += data

    def take_rest(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return rest

    def peek(self, size: int) -> bytes:
        """The first ``size`` bytes held (fewer if fewer are held), left in place."""
        return bytes(self._buffer[:size])

    def drop(self, size: int) -> None:
        """
        The first ``size`` bytes were used (a body's part): consumed from
        the front, so what is held after them is never copied again.
        """
        del self._buffer[:size]
        self._scanned = 0
        self._line = 0

    def clear(self) -> None:
        """Nothing held from now on, and the buffer's memory given back."""
        self._buffer = bytearray()
        self._scanned = 0
        self._line = 0

    def _skip_empty_lines(self) -> None:
        """RFC 9112 section 2.2: ignore CRLFs before a request line (whatever the split)."""
        buffer = self._buffer
        skip = 0
        while buffer[skip : skip + 2] == b"\r\n":
            skip += 2
        if skip:
            del buffer[:skip]
            self._scanned = 0
            self._line = 0
        if buffer[:1] not in (b"", b"\r") or len(buffer) > 1:
            self._begun = True

    def _find_end(self) -> int:
        if self._request:
            return self._scan_request()
        buffer = self._buffer
        start = max(0, self._scanned - 3)
        self._scanned = len(buffer)
        ends = [i + n for i, n in ((buffer.find(b"\n\n", start), 2), (buffer.find(b"\n\r\n", start), 3)) if i >= 0]
        return min(ends, default=-1)

    def _scan_request(self) -> int:
        """
        Check complete lines in order, each first for its length, then for
        the head's size, then for its CR.  A partial line is held to the
        same length and size rules, so the verdict never depends on where
        the bytes were split.
        """
        buffer = self._buffer
        limits = self._limits
        pos = self._line
        while True:
            lf = buffer.find(b"\n", pos)
            if lf < 0:
                return -1
            crlf = lf > 0 and buffer[lf - 1] == 0x0D
            if pos == 0:
                self._check_method(lf - crlf)
            if lf - pos - crlf > limits.line:
                self._check_line(pos, lf - pos - crlf)
            if lf >= limits.total:
                raise RequestError(431, "request head too large")
            if not crlf:
                raise RequestError(400, "bare LF in request head")
            if lf == pos + 1 and pos > 0:
                return lf + 1
            if pos == 0 and buffer[:lf - 1] == H2_PREFACE_LINE:
                raise Http2Preface()
            pos = self._line = lf + 1

    def _check_method(self, end: int) -> None:
        """
        The request line up to ``end`` so far: as in nginx, a byte that
        cannot be part of a method before the first space (a WebSocket
        frame, a TLS hello, a leading space) is a 400 at once, not after a
        whole head or at client_header_timeout.
        """
        buffer = self._buffer
        taken = _METHOD_BYTES.match(buffer, 0, end).end()  # type: ignore[union-attr]
        if taken < end and (taken == 0 or buffer[taken] != 0x20):
            raise RequestError(400, f"method {bytes(buffer[:min(taken + 1, 32)])!r} is not capitals, '_' and '-'")

    def _check_line(self, start: int, length: int) -> None:
        if length > self._limits.line:
            if start == 0:
                raise RequestError(414, "request line too long")
            raise RequestError(431, "header line too long")

    def _check_partial(self) -> None:
        buffer = self._buffer
        if not self._request:
            if len(buffer) > self._limits.total:
                raise RequestError(502, "upstream sent too big header")
            return
        start = self._line
        end = len(buffer) - buffer.endswith(b"\r")
        if start == 0:
            self._check_method(end)
        self._check_line(start, end - start)
        if len(buffer) > self._limits.total:
            raise RequestError(431, "request head too large")


def _lines(head: bytes) -> list[bytes]:
    """The lines of a head without the terminating empty line; CR stripped once."""
    lines = head.split(b"\n")
    while lines and lines[-1] in (b"", b"\r"):
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _headers(lines: list[bytes], status: int, limits: HeadLimits, request: bool) -> list[tuple[bytes, bytes]]:
    if limits.count is not None and len(lines) > limits.count:
        raise RequestError(431 if request else status, f"more than {limits.count} header lines")
    headers = []
    for line in lines:
        if len(line) > limits.line:
            raise RequestError(431 if request else status, "header line too long")
        match = _HEADER_LINE.match(line)
        if match is None:
            raise _header_error(line, status)
        headers.append((match.group(1), match.group(2).strip(b" \t")))
    return headers


def _header_error(line: bytes, status: int) -> RequestError:
    """Why ``_HEADER_LINE`` refused a line: after a name and a colon, only a control byte can."""
    if line[:1] in (b" ", b"\t"):
        return RequestError(status, "obsolete line folding in header")
    name = _HEADER_NAME.match(line)
    if name is None:
        return RequestError(status, f"invalid header line {line[:64]!r}")
    return RequestError(status, f"control character in header {name.group(1).decode('ascii')!r}")


def check_request_head(head: bytes, limits: HeadLimits) -> RequestHead:
    """
    Parse a complete request head, header names as the client spelled them;
    refuse it with the status that says why (400, 405, 414, 431, 501, 505), or
    :class:`Http2Preface` for HTTP/2 with prior knowledge.  The checks run
    in a fixed order (request line, version, header lines, framing, Host,
    target), so a head breaking two rules gets the first one's status;
    CONNECT and TRACE (405) come last, as nginx refuses them once the head
    is read.  Lines end in CRLF
    (the gate refuses a bare LF in a request, and a LF left inside a line
    breaks it).
    """
    lines = head.split(b"\r\n")
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise RequestError(400, "empty request")
    request_line = lines[0]
    if request_line == H2_PREFACE_LINE:
        raise Http2Preface()
    if len(request_line) > limits.line:
        raise RequestError(414, "request line too long")
    match = _REQUEST_LINE.match(request_line)
    if match is None:
        raise _request_line_error(request_line)
    version = match.group(3) + b"." + match.group(4)
    if version not in (b"1.0", b"1.1"):
        raise RequestError(505, f"HTTP/{version.decode('ascii')} is not supported")
    headers = _headers(lines[1:], 400, limits, True)
    if limits.drop_invalid_names:
        headers = [h for h in headers if _NGINX_NAME.match(h[0])]
    request = RequestHead(match.group(1), match.group(2), version, tuple(headers))
    _check_framing(request.values(b"content-length"), request.values(b"transfer-encoding"), version, 400, request=True)
    _check_host(request)
    if not _TARGET.match(request.target):
        raise RequestError(400, f"invalid character in request target {request.target[:64]!r}")
    if request.method in _NOT_ALLOWED:
        raise RequestError(405, f"{request.method.decode('ascii')} method is not allowed")
    return request


def _request_line_error(line: bytes) -> RequestError:
    """Why ``_REQUEST_LINE`` refused a line, with nginx's status for it."""
    if _TOKEN_METHOD.match(line):
        return RequestError(400, f"method {line.partition(b' ')[0][:32]!r} is not capitals, '_' and '-'")
    if _NEWER_MAJOR.match(line):
        return RequestError(505, f"HTTP version in {line[-16:]!r} is not supported")
    other_form = _OTHER_FORM_LINE.match(line)
    if other_form is not None:
        return RequestError(400, f"request target {other_form.group(1)[:64]!r} is neither a path nor an absolute URL")
    return RequestError(400, f"invalid request line {line[:64]!r}")


def _check_host(request: RequestHead) -> None:
    """RFC 9112 section 3.2: one Host, and no HTTP/1.1 request without it."""
    hosts = request.values(b"host")
    if len(hosts) > 1:
        raise RequestError(400, "duplicate Host header")
    if not hosts and request.http_version == b"1.1":
        raise RequestError(400, "HTTP/1.1 request without Host header")


def check_response_head(head: bytes, limits: HeadLimits) -> ResponseHead:
    """
    The upstream response head, parsed; refused (502) when it is invalid
    or its body length is ambiguous.
    """
    lines = _lines(head)
    if not lines or not _STATUS_LINE.match(lines[0]):
        raise RequestError(502, "upstream sent no valid HTTP/1.x status line")
    headers = _headers(lines[1:], 502, limits, False)
    _check_framing(*_framing_values(headers), b"1.1", 502, request=False)
    status_line = lines[0]
    return ResponseHead(int(status_line[9:12]), status_line[13:], status_line[5:8], tuple(headers))


def _framing_values(headers: list[tuple[bytes, bytes]]) -> tuple[list[bytes], list[bytes]]:
    """The Content-Length and the Transfer-Encoding values, in one pass."""
    lengths = []
    codings = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            lengths.append(value)
        elif lower == b"transfer-encoding":
            codings.append(value)
    return lengths, codings


def _check_framing(lengths: list[bytes], codings: list[bytes], version: bytes, status: int, *, request: bool) -> None:
    """One unambiguous body length (the Content-Length and Transfer-Encoding values): RFC 9112 section 6.3, strictly."""
    if len(lengths) > 1:
        raise RequestError(status, "duplicate Content-Length")
    if lengths and not _DIGITS.match(lengths[0]):
        raise RequestError(status, f"invalid Content-Length {lengths[0][:32]!r}")
    if not codings:
        return
    if len(codings) > 1:
        raise RequestError(status, "duplicate Transfer-Encoding")
    if lengths:
        raise RequestError(status, "Content-Length with Transfer-Encoding")
    if request and version == b"1.0":
        raise RequestError(status, "Transfer-Encoding in an HTTP/1.0 request")
    tokens = [t.strip(b" \t") for t in codings[0].split(b",")]
    if tokens == [b""] or not all(_TOKEN_ONLY.match(t) for t in tokens):
        raise RequestError(status, f"invalid Transfer-Encoding {codings[0][:32]!r}")
    if [t.lower() for t in tokens] != [b"chunked"]:
        raise RequestError(501 if request else status, f"Transfer-Encoding {codings[0][:32]!r} is not implemented")


@frozen
class HeadSoFar:
    """
    What the access log says about a request head that was refused or never
    finished, read as nginx 1.22 reads it.  ``line`` is ``$request``: the
    request line, or the bytes before the first CR or LF when it did not
    parse, or its first SIZE bytes when it was too long.  ``head`` has the
    request line's parts and the header lines before the first bad or
    unfinished one (all empty when the request line did not parse);
    ``length`` (``$request_length``) counts the bytes of those lines.
    """

    line: bytes
    head: RequestHead
    length: int


def head_so_far(data: bytes, *, buffer_size: int, too_long: bool = False) -> HeadSoFar | None:
    """
    ``data`` is what the client sent of one head; None when it sent nothing
    but empty lines (nginx logs no request then).  ``too_long``: the
    request line was refused for its length (414).
    """
    data = data.lstrip(b"\r\n")
    if not data:
        return None
    if too_long:
        return HeadSoFar(data[:buffer_size], _NOTHING_PARSED, 0)
    found = _LINE_END.search(data)
    end = found.start() if found is not None else len(data)
    line = data[:end]
    match = _REQUEST_LINE.match(line)
    if match is None or not data.startswith(b"\r\n", end) or match.group(3, 4) not in ((b"1", b"0"), (b"1", b"1")):
        return HeadSoFar(line, _NOTHING_PARSED, 0)
    headers, length = _header_lines_so_far(data, end + 2, buffer_size - 2)
    version = match.group(3) + b"." + match.group(4)
    return HeadSoFar(line, RequestHead(match.group(1), match.group(2), version, headers), length)


def _header_lines_so_far(data: bytes, pos: int, longest: int) -> tuple[tuple[tuple[bytes, bytes], ...], int]:
    """The valid, complete header lines from ``pos`` on, and where they (or the head) end."""
    headers: list[tuple[bytes, bytes]] = []
    while (crlf := data.find(b"\r\n", pos)) >= 0:
        if crlf == pos:
            return tuple(headers), pos + 2
        line = data[pos:crlf]
        match = _HEADER_LINE.match(line)
        if len(line) > longest or match is None:
            break
        headers.append((match.group(1), match.group(2).strip(b" \t")))
        pos = crlf + 2
    return tuple(headers), pos
