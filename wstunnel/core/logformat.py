"""
``log_format``: access-log lines made from nginx variables.

A format is compiled once, at load time (:mod:`wstunnel.config.logformats`),
into a :class:`~wstunnel.config.model.Template` whose variables are the
request variables of :mod:`wstunnel.core.variables` plus the log-only ones
below.  The frontend
fills a :class:`LogEntry` per request and the line is rendered when it is
written: at the end of the response, or for a WebSocket when the tunnel
ends, so ``$request_time`` and ``$upstream_response_time`` cover the
tunnel's life.

Escaping follows nginx: only variable values are escaped, never the
format's own text.  ``default`` writes ``"``, ``\\`` and bytes outside
0x20-0x7E as ``\\xHH``; ``json`` escapes for a JSON string; ``none``
escapes nothing.  A value that does not exist (a missing header, no
upstream) is ``-``, except with ``json``, where it is empty.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, Protocol

from attrs import frozen

from wstunnel.core.access import remote_user
from wstunnel.core.attempts import UpstreamRecord
from wstunnel.wire.errors import RequestError
from wstunnel.config.model import AccessLog, Config, LogFormat, Server
from wstunnel.wire.request import ConnInfo, RequestHead, Target
from wstunnel.core.routing import parse_target, request_host
from wstunnel.core.variables import RequestVars

__all__ = [
    "LineWriter",
    "LogEntry",
    "bare_vars",
    "escape",
    "format_time_local",
    "render_line",
    "write_entry",
]

# nginx's default log_format escaping (ngx_http_log_escape): '"', '\' and
# every byte below 0x20 or from 0x7F on become \xHH with upper-case hex.
_DEFAULT_ESCAPES = {c: f"\\x{c:02X}" for c in (*range(0x20), 0x22, 0x5C, *range(0x7F, 0x100))}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def escape(value: str | bytes | None) -> str:
    """
    A log field with nginx's default escaping; empty or missing is ``-``.

    A ``str`` is taken as latin-1 decoded bytes (the lossless way HTTP bytes
    become text); characters beyond U+00FF are written as their UTF-8 bytes.
    """
    if not value:
        return "-"
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif not value.isascii() and max(value) > "\xff":
        value = value.encode("utf-8", "surrogatepass").decode("latin-1")
    return value.translate(_DEFAULT_ESCAPES)


def format_time_local(when: float) -> str:
    """``$time_local``: ``21/Nov/2026:15:07:56 +0000``, in the local zone, English months."""
    tm = time.localtime(when)
    offset = abs(tm.tm_gmtoff) // 60
    sign = "-" if tm.tm_gmtoff < 0 else "+"
    return (
        f"{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {sign}{offset // 60:02d}{offset % 60:02d}"
    )


class LineWriter(Protocol):
    """The one thing a line needs of the access-log files, which obs opens and owns."""

    def write(self, targets: tuple[AccessLog, ...], line: str) -> None: ...


@frozen
class LogEntry:
    """
    The facts of one finished request that the log variables read.
    ``vars`` gives the request variables; ``upstream`` is None when the
    request never reached the upstream stage.
    """

    conn: ConnInfo
    head: RequestHead
    vars: RequestVars
    started: float
    ended: float
    status: int
    body_bytes_sent: int
    upstream: UpstreamRecord | None
    bytes_sent: int = 0  # status line, headers and body; a tunnel's bytes to the client
    request_length: int = 0  # request line, headers and body as read from the client
    connection: int = 0  # the connection's serial number
    connection_requests: int = 0  # requests on the connection so far, this one included
    close_reason: str | None = None  # a TunnelEnd name, lower-case; None for a plain request
    request_line: str | None = None  # $request of a head refused or not finished (gate.HeadSoFar)


def _request_line(entry: LogEntry) -> str:
    if entry.request_line is not None:
        return entry.request_line
    head = entry.head
    return f"{head.method.decode('latin-1')} {head.target.decode('latin-1')} HTTP/{head.http_version.decode('latin-1')}"


def _time_iso8601(when: float) -> str:
    tm = time.localtime(when)
    offset = abs(tm.tm_gmtoff) // 60
    sign = "-" if tm.tm_gmtoff < 0 else "+"
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f"{sign}{offset // 60:02d}:{offset % 60:02d}"


def _upstream(read: Callable[[UpstreamRecord], str]) -> Callable[[LogEntry], str | None]:
    def value(entry: LogEntry) -> str | None:
        record = entry.upstream
        return read(record) if record is not None and record.attempts else None

    return value


_LOG_GETTERS: dict[str, Callable[[LogEntry], str | None]] = {
    "status": lambda e: f"{e.status:03d}",
    "body_bytes_sent": lambda e: str(e.body_bytes_sent),
    "bytes_sent": lambda e: str(e.bytes_sent),
    "request_length": lambda e: str(e.request_length),
    "connection": lambda e: str(e.connection),
    "connection_requests": lambda e: str(e.connection_requests),
    "tunnel_close_reason": lambda e: e.close_reason,
    "request": _request_line,
    "request_time": lambda e: f"{max(0.0, e.ended - e.started):.3f}",
    "time_local": lambda e: format_time_local(e.ended),
    "time_iso8601": lambda e: _time_iso8601(e.ended),
    "msec": lambda e: f"{e.ended:.3f}",
    "remote_user": lambda e: remote_user(e.head),
    "upstream_addr": _upstream(UpstreamRecord.addr),
    "upstream_status": _upstream(UpstreamRecord.status),
    "upstream_connect_time": _upstream(UpstreamRecord.connect_time),
    "upstream_header_time": _upstream(UpstreamRecord.header_time),
    "upstream_response_time": _upstream(UpstreamRecord.response_time),
    "upstream_bytes_sent": _upstream(UpstreamRecord.bytes_sent),
    "upstream_bytes_received": _upstream(UpstreamRecord.bytes_received),
}

_JSON = {c: f"\\u{c:04x}" for c in range(0x20)}
_JSON.update({0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})


def _escape_json(value: str | None) -> str:
    return value.translate(_JSON) if value else ""


def _escape_none(value: str | None) -> str:
    return value or "-"


_ESCAPERS: dict[str, Callable[[str | None], str]] = {
    "default": escape,
    "json": _escape_json,
    "none": _escape_none,
}


def bare_vars(config: Config, server: Server, conn: ConnInfo, head: RequestHead) -> RequestVars:
    """
    The request variables of a request refused before routing (a bad
    target, an unknown Host, a refused method): what is known is there, the
    rest is empty.  ``$host`` is the request's host when it is a valid one,
    as nginx has it once the Host line (or an absolute URL) was read.
    """
    try:
        target = parse_target(head.target)
    except RequestError:
        target = Target(path="", args="", uri="", request_uri="")
    try:
        host = request_host(head, target) or ""
    except RequestError:
        host = ""
    return RequestVars(
        config=config, server=server, location=None, conn=conn, head=head, target=target, host=host
    )


def _value(name: str, entry: LogEntry) -> str | None:
    getter = _LOG_GETTERS.get(name)
    if getter is not None:
        return getter(entry)
    return entry.vars.get(name)


def render_line(fmt: LogFormat, entry: LogEntry) -> str:
    """One access-log line (without the newline)."""
    escaper = _ESCAPERS[fmt.escape]
    return "".join(
        part if part.__class__ is str else escaper(_value(part.name, entry))  # type: ignore[union-attr]
        for part in fmt.template.parts
    )


def write_entry(
    logs: LineWriter, formats: Mapping[str, LogFormat], targets: Iterable[AccessLog], entry: LogEntry
) -> None:
    """Write ``entry`` to each target in the target's format, rendering each format once."""
    lines: dict[str, str] = {}
    for target in targets:
        line = lines.get(target.format)
        if line is None:
            line = lines[target.format] = render_line(formats[target.format], entry)
        logs.write((target,), line)
