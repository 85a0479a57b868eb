"""
One client request's bookkeeping, from its first byte to its access-log
line: when it started, what it was (its head, or as much of a refused head
as was read), where it went, and what was sent back.  The upstream side
keeps its own in :class:`~wstunnel.core.attempts.UpstreamRecord`.
"""

from __future__ import annotations

from typing import Callable

from attrs import define

from wstunnel.config.model import Location, Server
from wstunnel.core.attempts import UpstreamRecord
from wstunnel.core.logformat import LogEntry, bare_vars, write_entry
from wstunnel.core.variables import RequestVars
from wstunnel.net.gate import Gate
from wstunnel.net.pace import Pace
from wstunnel.net.runtime import Runtime
from wstunnel.obs.metrics import Stats
from wstunnel.wire.heads import HeadSoFar
from wstunnel.wire.request import ConnInfo, RequestHead

__all__ = ["RequestRecord", "log_request"]


@define
class RequestRecord:
    """
    What one request did.  ``head`` is None for a head refused or left
    unfinished (``so_far`` then holds what was read) and once the request
    is over and logged; ``close_after`` says the connection closes after
    this answer whatever the client asked.
    """

    started: float
    head: RequestHead | None = None
    so_far: HeadSoFar | None = None
    location: Location | None = None
    vars: RequestVars | None = None
    upstream: UpstreamRecord | None = None
    status: int = 0
    sent: int = 0  # $bytes_sent: every byte written to the client for this request
    body_bytes: int = 0  # $body_bytes_sent
    fed: int = 0  # $request_length: the head and the body bytes read so far
    close_reason: str | None = None  # $tunnel_close_reason
    close_after: bool = False
    gate: Gate | None = None  # limit_req and limit_conn, when its location has them
    pace: Pace | None = None  # limit_rate, when its location has one


def log_request(
    record: RequestRecord,
    *,
    runtime: Runtime,
    conn: ConnInfo,
    default: Callable[[], Server],
    stats: Stats,
    now: Callable[[], float],
    connection: int,
    requests: int,
) -> None:
    """
    Count the request and write its access-log lines.  Requests refused
    or unmatched before a location log where ``default()``, the address's
    default server, says.
    """
    head, location, so_far = record.head, record.location, record.so_far
    if head is None:
        if so_far is None:
            return
        head = so_far.head
    stats.request_done(record.status, bool(head.values(b"upgrade")))
    targets = location.access_logs if location is not None else default().access_logs
    if not targets:
        return
    rv = record.vars
    if rv is None:
        rv = bare_vars(runtime.config, default(), conn, head)
    entry = LogEntry(
        conn=conn,
        head=head,
        vars=rv,
        started=record.started,
        ended=now(),
        status=record.status,
        body_bytes_sent=record.body_bytes,
        upstream=record.upstream,
        bytes_sent=record.sent,
        request_length=record.fed if so_far is None else so_far.length,
        connection=connection,
        connection_requests=requests,
        close_reason=record.close_reason,
        request_line=None if so_far is None else so_far.line.decode("latin-1"),
    )
    write_entry(runtime.access_logs, runtime.config.log_formats, targets, entry)
