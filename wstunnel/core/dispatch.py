"""
What a request gets, decided from its head before a byte of the answer is
written: an answer wstunnel writes itself, a status page, a refusal, or a
trip upstream.

:func:`prepare` runs the core's steps in nginx's order (target, Host,
virtual server, the TLS rules of the connection, location, body size) and
returns one value; the client protocol acts on it.  Each kind of decision
is an immutable value carrying the connection's values as the request knew
them and the location that took it (its logs, limits and error pages), so a
new kind of answer is one more class here and one more branch where it is
acted on.  They are NamedTuples rather than frozen attrs classes because one
is built per request, and a frozen attrs instance costs several times as
much to build (each field set through ``object.__setattr__``).
"""

from __future__ import annotations

from typing import Callable, Container, NamedTuple, Union

from attrs import evolve

from wstunnel.config.model import Binding, Config, Location, Return, Server
from wstunnel.config.rewrite import REDIRECT_STATUSES
from wstunnel.core.files import LOCAL_FILES, FileError, FileOutcome, FileSystem, Page, ServeFile, serve_files, serves_files
from wstunnel.core.headers import BodyFraming, HeaderPlan, upgrade_offer, upstream_request
from wstunnel.core.tls_rules import handshake_server, refusal
from wstunnel.core.routing import Redirect, Router, origin, parse_target, redirect_url, request_host
from wstunnel.core.variables import RequestVars, render
from wstunnel.wire.errors import RequestError, error_page
from wstunnel.wire.request import ConnInfo, RequestHead, TLSInfo
from wstunnel.wire.upstream import UpstreamRequest

__all__ = ["Close", "Decision", "Forward", "Refuse", "Respond", "ServeFile", "StatusPage", "body_framing", "prepare"]

_Headers = tuple[tuple[bytes, bytes], ...]
# What a Location value may not carry as is: a rendered $uri is decoded.
_CONTROLS = {c: f"%{c:02X}" for c in (*range(0x20), 0x7F)}


class Respond(NamedTuple):
    """A whole answer wstunnel writes itself (Server, Date and Content-Length are added as it is written)."""

    conn: ConnInfo
    location: Location | None
    status: int
    headers: _Headers
    body: bytes
    vars: RequestVars | None = None  # for add_header and the access log


class Close(NamedTuple):
    """``return 444``: no answer at all, the connection closed (444 in the log, as in nginx)."""

    conn: ConnInfo
    location: Location | None
    vars: RequestVars


class StatusPage(NamedTuple):
    """``stub_status`` or the metrics page of ``location``: rendered from live counters where it is written."""

    conn: ConnInfo
    location: Location
    vars: RequestVars | None = None  # for add_header


class Refuse(NamedTuple):
    """
    An error answer.  ``location`` and ``vars`` are what the request had
    reached when it was refused (a body too large is refused inside its
    location), for its log line, limits and error logs.
    """

    conn: ConnInfo
    location: Location | None
    vars: RequestVars | None
    error: RequestError


class Forward(NamedTuple):
    """
    A trip upstream: ``request`` is the head to send, ``body`` how the
    client frames its body, ``body_limit`` client_max_body_size (None: no
    limit) and ``close_after`` whether the connection must close after the
    answer (a protocol switch was asked for).
    """

    conn: ConnInfo
    location: Location
    vars: RequestVars
    request: UpstreamRequest
    body: BodyFraming | int
    body_limit: int | None
    close_after: bool

    @property
    def has_body(self) -> bool:
        return self.body not in (BodyFraming.NONE, 0)


Decision = Union[Respond, StatusPage, Refuse, Forward, Close, ServeFile]


def body_framing(head: RequestHead) -> BodyFraming | int:
    """How the client framed its body (the head gate has already validated it)."""
    if head.values(b"transfer-encoding"):
        return BodyFraming.CHUNKED
    lengths = head.values(b"content-length")
    if lengths:
        return int(lengths[0])
    return BodyFraming.NONE


def prepare(
    *,
    config: Config,
    router: Router,
    binding: Binding,
    conn: ConnInfo,
    tls: TLSInfo | RequestError | None,
    head: RequestHead,
    pooled: Container[str],
    plans: Callable[[Location], HeaderPlan],
    fs: FileSystem = LOCAL_FILES,
) -> Decision:
    """
    The decision for ``head`` arriving on ``conn`` at ``binding``.  ``tls``
    is the connection's TLS session, None on a plain connection, or the
    error every request on it gets (plain HTTP sent to the TLS port);
    ``pooled`` names the upstreams that keep idle connections, and
    ``plans`` gives a location's ``proxy_set_header`` plan, built at load;
    ``fs`` is the disk files are served from.  The returned ``conn``
    carries the TLS session once its rules passed.
    """
    try:
        target = parse_target(head.target)
        host = request_host(head, target)
        server = router.select_server(binding, host)
        if tls is not None:
            conn = _tls_checked(router, binding, conn, tls, server)
        vhost = host if host is not None else server.name
        if server.returns is not None:
            rv = RequestVars(config=config, server=server, location=None, conn=conn, head=head, target=target, host=vhost)
            return _returned(server.returns, rv)
        found, matches = router.locate(server, target.uri)
    except RequestError as e:
        return Refuse(conn, None, None, e)
    located = found.location if isinstance(found, Redirect) else found
    rv = RequestVars(config=config, server=server, location=located, conn=conn, head=head, target=target, host=vhost)
    if isinstance(found, Redirect):
        url = redirect_url(found, target, conn, vhost).encode("latin-1")
        return Respond(conn, None, 301, ((b"Location", url), (b"Content-Type", b"text/html")), error_page(301), rv)
    if found is not None and found.returns is None and found.status_page is not None:
        return StatusPage(conn, found, rv)
    if serves_files(server, found):
        for match in matches:
            rv.captured(match)
        return _files(serve_files(router, found, rv, fs), head, pooled, plans)
    if found is None or (found.proxy_pass is None and found.returns is None):
        return Refuse(conn, None, rv, RequestError(404, f"no location for {target.uri!r}"))
    for match in matches:
        rv.captured(match)
    if found.returns is not None:
        return _returned(found.returns, rv)
    return _forward(found, rv, head, pooled, plans(found))


def _files(
    outcome: FileOutcome, head: RequestHead, pooled: Container[str], plans: Callable[[Location], HeaderPlan]
) -> Decision:
    """The file handlers' outcome as a decision; an internal redirect to a proxied location goes upstream."""
    if isinstance(outcome, ServeFile):
        return outcome
    rv = outcome.vars
    if isinstance(outcome, Page):
        return Respond(rv.conn, rv.location, outcome.status, outcome.headers, outcome.body, rv)
    if isinstance(outcome, FileError):
        return Refuse(rv.conn, rv.location, rv, RequestError(outcome.status, outcome.detail))
    location = outcome.location
    if location.returns is not None:
        return _returned(location.returns, rv)
    return _forward(location, rv, head, pooled, plans(location))


def _returned(answer: Return, rv: RequestVars) -> Respond | Close:
    """
    nginx's ``return``: a redirect code sends its text as Location (a path
    made absolute from ``$scheme://$host[:port]``) under the standard page;
    another code sends its text as a text/plain body, or without text its
    standard page from 400 up (an empty body below).
    """
    status = answer.status
    if status == 444:
        return Close(rv.conn, rv.location, rv)
    text = None if answer.text is None else render(answer.text, rv)
    if status in REDIRECT_STATUSES:
        url = text or ""
        if url.startswith("/"):
            url = origin(rv.conn, rv.host) + url
        headers = ((b"Location", url.translate(_CONTROLS).encode("latin-1")), (b"Content-Type", b"text/html"))
        return Respond(rv.conn, rv.location, status, headers, error_page(status), rv)
    if text is None and status >= 400:
        return Respond(rv.conn, rv.location, status, ((b"Content-Type", b"text/html"),), error_page(status), rv)
    body = (text or "").encode("latin-1")
    return Respond(rv.conn, rv.location, status, ((b"Content-Type", b"text/plain"),), body, rv)


def _tls_checked(
    router: Router, binding: Binding, conn: ConnInfo, tls: TLSInfo | RequestError, server: Server
) -> ConnInfo:
    """The connection's values with its TLS session, if the session's rules let this request through."""
    if isinstance(tls, RequestError):
        raise tls
    handshake = handshake_server(lambda name: router.select_server(binding, name), binding, tls.server_name)
    error = refusal(handshake, server, tls)
    if error is not None:
        raise error
    return conn if conn.tls is tls else evolve(conn, tls=tls)


def _forward(
    location: Location, rv: RequestVars, head: RequestHead, pooled: Container[str], plan: HeaderPlan
) -> Forward | Refuse:
    """The trip upstream through ``location``, unless the body is already known to be too large."""
    assert location.proxy_pass is not None
    framing = body_framing(head)
    limit = location.client.max_body_size or None
    if limit and isinstance(framing, int) and framing > limit:
        error = RequestError(413, f"Content-Length {framing} over client_max_body_size {limit}")
        return Refuse(rv.conn, location, rv, error)
    offer = upgrade_offer(head, location.upgrade_protocols)
    keepalive = location.proxy_pass.upstream.name in pooled
    try:
        request = upstream_request(location, head, rv, plan=plan, upgrade=offer, body=framing, keepalive=keepalive)
    except RequestError as e:
        return Refuse(rv.conn, location, rv, e)
    # A protocol switch that is not accepted (or not offered on: h2c, or one
    # proxy_upgrade_protocols does not allow) must not leave the client's
    # next bytes to be read as a new request (RFC 9931): close after the
    # answer.
    close_after = bool(offer) or any(head.values(b"upgrade"))
    return Forward(rv.conn, location, rv, request, framing, limit, close_after)
