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

from functools import partial
from typing import Callable, Container, NamedTuple, Union

from attrs import evolve

from wstunnel.config.model import Access, Binding, Config, Location, Return, Server
from wstunnel.config.rewrite import REDIRECT_STATUSES
from wstunnel.core.access import Denial, Pending, UserFiles, auth_verdict, check_access
from wstunnel.core.files import LOCAL_FILES, FileError, FileOutcome, FileSystem, Page, ServeFile, serve_files, serves_files
from wstunnel.core.rewrite import Answer, FileCheck, Notice, Redirected, Rewriting, no_files, no_notice, run
from wstunnel.core.redirect import counted
from wstunnel.core.headers import BodyFraming, HeaderPlan, upgrade_offer, upstream_request
from wstunnel.core.tls_rules import handshake_server, refusal
from wstunnel.core.routing import Matches, Redirect, Router, origin, parse_target, redirect_url, request_host
from wstunnel.core.variables import RequestVars, render
from wstunnel.wire.errors import RequestError, error_page
from wstunnel.wire.request import ConnInfo, RequestHead, TLSInfo
from wstunnel.wire.upstream import UpstreamRequest

__all__ = [
    "Authorize", "Close", "Decision", "Forward", "Refuse", "Respond", "ServeFile", "StatusPage", "body_framing",
    "named_decision", "Phases", "prepare",
]

_Headers = tuple[tuple[bytes, bytes], ...]
# The request's headers an auth subrequest does not carry: it has no body and asks for no upgrade.
_NOT_TO_SUBREQUEST = frozenset({b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
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
    special: bool = False  # nginx's special response (``return CODE`` from 400 up, no text): error pages replace it


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


class Authorize(NamedTuple):
    """
    auth_request: ``subrequest`` (usually a Forward to the auth service) is
    made first, and ``verdict`` turns its answer's status and headers into
    the request's decision: its content, or a refusal.
    """

    conn: ConnInfo
    location: Location | None
    vars: RequestVars
    subrequest: Decision
    verdict: Callable[[int, _Headers], Decision]


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


Decision = Union[Respond, StatusPage, Refuse, Forward, Close, Authorize, ServeFile]


def body_framing(head: RequestHead) -> BodyFraming | int:
    """How the client framed its body (the head gate has already validated it)."""
    if head.values(b"transfer-encoding"):
        return BodyFraming.CHUNKED
    lengths = head.values(b"content-length")
    if lengths:
        return int(lengths[0])
    return BodyFraming.NONE


class Phases(NamedTuple):
    """
    What every phase of one request reads besides the request itself: the
    router, the upstreams that pool, the ``proxy_set_header`` plans, and the
    I/O the core is handed (file tests, ``rewrite_log`` lines, htpasswd
    files, the disk files are served from).  Made once per request and
    passed whole, so an internal redirect sees what the request saw.
    """

    router: Router
    pooled: Container[str]
    plans: Callable[[Location], HeaderPlan]
    files: FileCheck = no_files
    notice: Notice = no_notice
    users: UserFiles | None = None
    fs: FileSystem = LOCAL_FILES


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
    files: FileCheck = no_files,
    notice: Notice = no_notice,
    users: UserFiles | None = None,
    fs: FileSystem = LOCAL_FILES,
    redirected: RequestVars | None = None,
) -> Decision:
    """
    The decision for ``head`` arriving on ``conn`` at ``binding``.  ``tls``
    is the connection's TLS session, None on a plain connection, or the
    error every request on it gets (plain HTTP sent to the TLS port);
    ``pooled`` names the upstreams that keep idle connections, ``plans``
    gives a location's ``proxy_set_header`` plan, built at load, and
    ``files`` answers the file tests of ``if`` and ``notice`` writes the
    lines of ``rewrite_log``; ``users`` reads auth_basic's htpasswd files
    and ``fs`` is the disk files are served from.  The returned ``conn`` carries the TLS session once its rules passed.
    ``redirected`` is the request an error page sent here: ``head`` goes on
    as that request (its count of internal redirects, its ``$request_uri``).

    nginx's phases, in its order: the server's rewrite directives, the
    location search, the location's rewrite directives, and a new search
    for as long as they change ``$uri`` (at most ten times); then the
    access phase (allow/deny, auth_basic, auth_request); then the content:
    a status page, files, or the trip upstream.
    """
    try:
        target = parse_target(head.target)
        host = request_host(head, target)
        server = router.select_server(binding, host)
        if tls is not None:
            conn = _tls_checked(router, binding, conn, tls, server)
    except RequestError as e:
        return Refuse(conn, None, None, e)
    vhost = host if host is not None else server.name
    rv = RequestVars(config=config, server=server, location=None, conn=conn, head=head, target=target, host=vhost)
    if redirected is not None:
        rv.carry_on(redirected)
    state = Rewriting(files, notice) if server.rewrites is not None else None
    if state is not None:
        answer = run(server.rewrites, rv, state)  # type: ignore[arg-type]
        if answer is not None:
            return _answered(answer, rv)
    found = None
    if state is None:
        found = router.locate(server, target.uri)
        location = found[0]
        if location.__class__ is Location and location.proxies_only:  # type: ignore[union-attr]
            return _proxied(location, rv, found[1], head, pooled, plans)  # type: ignore[arg-type]
    phases = Phases(router, pooled, plans, files, notice, users, fs)
    return _location_phases(phases, rv, state, head, internal=redirected is not None, first=found)


def _proxied(
    location: Location,
    rv: RequestVars,
    matches: Matches,
    head: RequestHead,
    pooled: Container[str],
    plans: Callable[[Location], HeaderPlan],
) -> Forward | Refuse:
    """
    A location that only proxies (``Location.proxies_only``, decided at
    load): the rewrite, access and content phases have nothing to do, so
    the request goes straight to its trip upstream.
    """
    rv.location = location
    for match in matches:
        rv.captured(match)
    return _forward(location, rv, head, pooled, plans(location))


def _location_phases(
    phases: Phases,
    rv: RequestVars,
    state: Rewriting | None,
    head: RequestHead,
    *,
    checked: bool = True,
    internal: bool = False,
    first: tuple[Location | Redirect | None, Matches] | None = None,
) -> Decision:
    """
    nginx's find-config, location-rewrite and post-rewrite phases, again
    for as long as a location's directives change ``$uri``; then the
    content phase.  A location without rewrite directives makes one pass
    and no ``state`` (what the rewrite phases decided) is made for it.
    An ``internal`` location is found only by an ``internal`` request
    (sent by an error page, a named location, a subrequest), as in nginx:
    a ``rewrite ... last`` does not make a request internal.  ``first``
    is what the first pass takes instead of searching: a location chosen
    by name, or the search's outcome already made.
    """
    while True:
        if first is None:
            found, matches = phases.router.locate(rv.server, rv.target.uri)
        else:
            (found, matches), first = first, None
        if found.__class__ is Redirect:
            return _slash_redirect(found, rv)  # type: ignore[arg-type]
        rv.location = found  # type: ignore[assignment]
        if found is not None and found.files is not None and found.files.internal and not internal:  # type: ignore[union-attr]
            return Refuse(rv.conn, found, rv, RequestError(404, f"location {found.path!r} is internal"))  # type: ignore[union-attr,arg-type]
        for match in matches:
            rv.captured(match)
        if found is None or found.rewrites is None:  # type: ignore[union-attr]
            return _access(phases, found, rv, head, state, checked)  # type: ignore[arg-type]
        if state is None:
            state = Rewriting(phases.files, phases.notice)
        answer = run(found.rewrites, rv, state)  # type: ignore[union-attr]
        if answer is not None:
            return _answered(answer, rv)
        if not state.uri_changed:
            return _access(phases, found, rv, head, state, checked)  # type: ignore[arg-type]
        if not counted(rv):
            return _cycle(rv)
        state.uri_changed = False
        state.location = None


def _cycle(rv: RequestVars) -> Refuse:
    """A rewrite changed ``$uri`` once more than nginx allows internal redirects."""
    error = RequestError(500, f"rewrite or internal redirection cycle while processing {rv.target.uri!r}")
    return Refuse(rv.conn, rv.location, rv, error)


def _slash_redirect(found: Redirect, rv: RequestVars) -> Respond:
    """nginx's 301 from ``/prefix`` to ``/prefix/``."""
    rv.location = found.location
    url = redirect_url(rv.target, rv.conn, rv.host).encode("latin-1")
    return Respond(rv.conn, None, 301, ((b"Location", url), (b"Content-Type", b"text/html")), error_page(301), rv)


def _access(
    phases: Phases, found: Location | None, rv: RequestVars, head: RequestHead, state: Rewriting | None, checked: bool
) -> Decision:
    """
    nginx's access phase, on the location the rewrite phases settled on
    (the server's rules when none took the request); an auth subrequest
    (``checked`` False) has none of its own.
    """
    location = found if state is None or state.location is None else state.location
    if not checked:
        return _content(phases, location, rv, head, state)
    denial = check_access(rv.server.access if location is None else location.access, rv, phases.users)
    if denial is None:
        return _content(phases, location, rv, head, state)
    if denial.__class__ is Pending:
        content = partial(_content, phases, location, rv, head, state)
        subrequest = _subrequest(phases, rv, denial.access)  # type: ignore[union-attr]
        return Authorize(rv.conn, location, rv, subrequest, partial(_authorized, denial, location, rv, content))
    return _denied(location, rv, denial)  # type: ignore[arg-type]


def _subrequest(phases: Phases, rv: RequestVars, access: Access) -> Decision:
    """
    What auth_request's URI gets: as in nginx, a GET with the request's
    headers and no body, ``$request_uri`` still the request's, its location's
    rewrite directives run, and no access phase of its own.
    """
    assert access.auth_request is not None
    headers = tuple((n, v) for n, v in rv.head.headers if n.lower() not in _NOT_TO_SUBREQUEST)
    head = RequestHead(b"GET", access.auth_request.encode("latin-1"), rv.head.http_version, headers)
    try:
        target = parse_target(head.target)
    except RequestError as e:
        return Refuse(rv.conn, None, None, e)
    target = evolve(target, request_uri=rv.target.request_uri)
    sub = RequestVars(config=rv.config, server=rv.server, location=None, conn=rv.conn, head=head, target=target, host=rv.host)
    return _location_phases(phases, sub, None, head, checked=False, internal=True)


def _authorized(
    pending: Pending, found: Location | None, rv: RequestVars, content: Callable[[], Decision], status: int, headers: _Headers
) -> Decision:
    denial = auth_verdict(pending, rv, status, headers)
    if denial is not None:
        return _denied(found, rv, denial)
    return content()


def _denied(location: Location | None, rv: RequestVars, denial: Denial) -> Respond | Refuse:
    """The access phase's refusal: a 401 carries its challenge."""
    if denial.challenge is None:
        return Refuse(rv.conn, location, rv, RequestError(denial.status, denial.detail))
    headers = ((b"WWW-Authenticate", denial.challenge), (b"Content-Type", b"text/html"))
    return Respond(rv.conn, location, denial.status, headers, error_page(denial.status), rv)


def _content(
    phases: Phases, location: Location | None, rv: RequestVars, head: RequestHead, state: Rewriting | None
) -> Decision:
    """
    The content phase: the location the search found, or the implicit
    location of an ``if`` that held, answers with its status page, serves
    files, or sends the request upstream.
    """
    if location is not rv.location:
        rv.location = location
    if location is not None and location.status_page is not None:
        return StatusPage(rv.conn, location, rv)
    if serves_files(rv.server, location):
        return _files(phases, serve_files(phases.router, location, rv, phases.fs), head)
    if location is None or location.proxy_pass is None:
        return Refuse(rv.conn, None, rv, RequestError(404, f"no location for {rv.target.uri!r}"))
    forward = _forward(location, rv, head, phases.pooled, phases.plans(location))
    if state is not None and not state.valid_location and forward.__class__ is Forward:
        if location.proxy_uri is None and location.proxy_pass.uri is not None:
            # nginx replaces the location's prefix only while the URI still
            # matches it: after "break" the new $uri goes whole.
            whole = rv.target.request_uri.encode("latin-1")
            forward = forward._replace(request=evolve(forward.request, target=whole))  # type: ignore[union-attr]
    return forward


def _files(phases: Phases, outcome: FileOutcome, head: RequestHead) -> Decision:
    """The file handlers' outcome as a decision; an internal redirect to a location that proxies goes on there."""
    if outcome.__class__ is ServeFile:
        return outcome  # type: ignore[return-value]
    rv = outcome.vars
    if outcome.__class__ is Page:
        return Respond(rv.conn, rv.location, outcome.status, outcome.headers, outcome.body, rv)  # type: ignore[union-attr]
    if outcome.__class__ is FileError:
        error = RequestError(outcome.status, outcome.detail, level=outcome.level)  # type: ignore[union-attr]
        return Refuse(rv.conn, rv.location, rv, error)
    return named_decision(phases, outcome.location, rv, head)  # type: ignore[union-attr,arg-type]


def _answered(answer: Answer, rv: RequestVars) -> Decision:
    """A rewrite phase ended the request: its ``return``, a rewrite's redirect, or an error."""
    if answer.__class__ is Return:
        return _returned(answer, rv)  # type: ignore[arg-type]
    if answer.__class__ is Redirected:
        return _redirect(answer.status, answer.url, rv)  # type: ignore[union-attr]
    return Refuse(rv.conn, rv.location, rv, answer)  # type: ignore[arg-type]


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
        return _redirect(status, text or "", rv)
    if text is None and status >= 400:
        return Respond(rv.conn, rv.location, status, ((b"Content-Type", b"text/html"),), error_page(status), rv, True)
    body = (text or "").encode("latin-1")
    return Respond(rv.conn, rv.location, status, ((b"Content-Type", b"text/plain"),), body, rv)


def _redirect(status: int, url: str, rv: RequestVars) -> Respond:
    """A redirect under the standard page; a path is made absolute from ``$scheme://$host[:port]``."""
    if url.startswith("/"):
        url = origin(rv.conn, rv.host) + url
    headers = ((b"Location", url.translate(_CONTROLS).encode("latin-1")), (b"Content-Type", b"text/html"))
    return Respond(rv.conn, rv.location, status, headers, error_page(status), rv)


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


def named_decision(phases: Phases, location: Location, rv: RequestVars, head: RequestHead) -> Decision:
    """
    What a named location (``error_page ... @name``), chosen by name rather
    than by URI, gives ``head``: its rewrite directives (a changed ``$uri``
    searches the locations again, as in nginx), then the access and content
    phases.
    """
    return _location_phases(phases, rv, None, head, internal=True, first=(location, ()))
