"""
nginx's ``error_page``: which page replaces an error, and what the request
becomes on its way there.

An error (wstunnel's own, or with ``proxy_intercept_errors`` an upstream's
answer) is looked up in the error pages of the location it happened in, or
of the server outside any location.  A URI page is an internal redirect: the
request, as a GET (a HEAD stays a HEAD) without its body, is located again
by :func:`~wstunnel.core.dispatch.prepare`, so whatever a location does
(return, proxy, serve a file) serves the page.  A named page keeps the
method; a URL page is a redirect.  The answer keeps the error's code unless
``=code`` names another or a bare ``=`` leaves the page's own.

The request sent to a page is a :class:`PageRequest`: it says which code
the answer takes, and whether a further error may still get a page
(``recursive_error_pages``).  The page is one more internal redirect of the
request, counted with its others (:mod:`wstunnel.core.redirect`).
"""

from __future__ import annotations

from typing import NamedTuple

from attrs import define

from wstunnel.config.model import Binding, Config, ErrorPage, ErrorPages, Location
from wstunnel.config.rewrite import REDIRECT_STATUSES
from wstunnel.core.dispatch import Decision, Phases, Refuse, Respond, named_decision, prepare
from wstunnel.core.files import ServeFile
from wstunnel.core.redirect import MAX_REDIRECTS, counted, named_location
from wstunnel.core.routing import Router, parse_target, request_host
from wstunnel.core.variables import RequestVars, render
from wstunnel.wire.errors import RequestError, error_page
from wstunnel.wire.request import ConnInfo, RequestHead
from wstunnel.wire.response import ResponseHead

__all__ = ["PageRequest", "Redo", "answered_status", "error_answer", "intercepts", "replaceable", "unrouted_vars"]

# wstunnel answers a request head too large with 431; nginx's code for it,
# which its error_page names, is 494 (sent as 400).
_NGINX_CODES = {431: 494}
_Headers = tuple[tuple[bytes, bytes], ...]
# What a request sent to a page no longer carries: its body stays behind.
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"expect"})


@define
class PageRequest(RequestHead):
    """
    The request head an error page gets (the request's count of internal
    redirects is its variables'): ``answer`` is the status the client gets whatever the
    page answers, or 0 for the page's own; ``final``: the page was chosen
    where ``recursive_error_pages`` is off, so no further error gets one
    (nginx's flag is set where the page is chosen, not where the next error
    happens).
    """

    answer: int = 0
    final: bool = False


class Redo(NamedTuple):
    """What locating a request again needs, from the loaded config and the connection: its ``phases`` too."""

    config: Config
    binding: Binding
    phases: Phases


def error_answer(status: int, rv: RequestVars, redo: Redo, replaced: _Headers = ()) -> Decision | None:
    """
    What the request of ``rv`` gets instead of the error ``status``, or None
    when no page applies and the standard page is the answer.  ``replaced``
    are the headers of the answer the page replaces: as in nginx, the
    Location of a redirect stays on the page's own answer.
    """
    page = _page(_NGINX_CODES.get(status, status), rv)
    if page is None:
        return None
    final = not _pages(rv).recursive
    answer = status if page.overwrite is None else page.overwrite
    target = render(page.target, rv)
    head = rv.head
    if target.startswith(("/", "@")) and not counted(rv):
        return _cycle(rv, target)
    if target.startswith("/"):
        method = b"HEAD" if head.method == b"HEAD" else b"GET"
        uri = target.encode("latin-1")
        sent = PageRequest(method, uri, head.http_version, _bodiless(head), answer, final)
        return _answered(_relocated(sent, rv, redo), answer, replaced)
    if target.startswith("@"):
        sent = PageRequest(head.method, head.target, head.http_version, _bodiless(head), answer, final)
        return _answered(_named(target, sent, rv, redo), answer, replaced)
    code = page.overwrite if page.overwrite in REDIRECT_STATUSES else 302
    headers = ((b"Location", target.encode("latin-1")), (b"Content-Type", b"text/html"))
    # Sent as it is: no page replaces the redirect a page made.
    done = PageRequest(head.method, head.target, head.http_version, head.headers, code, final=True)
    return Respond(rv.conn, rv.location, code, headers, error_page(code), _with_head(rv, done, rv.location))


def unrouted_vars(
    config: Config, router: Router, binding: Binding, conn: ConnInfo, head: RequestHead | None
) -> RequestVars:
    """
    The variables of a request refused before it reached a location: in
    the server its Host names when the head was read and its target and
    Host are sound (a TLS rule refused it), else, for a request nginx knows
    nothing of, a bodiless ``GET /`` in the default server.
    """
    if head is not None:
        try:
            target = parse_target(head.target)
            host = request_host(head, target)
        except RequestError:
            pass
        else:
            server = router.select_server(binding, host)
            vhost = host if host is not None else server.name
            return RequestVars(
                config=config, server=server, location=None, conn=conn, head=head, target=target, host=vhost
            )
    server = binding.default
    return RequestVars(
        config=config,
        server=server,
        location=None,
        conn=conn,
        head=RequestHead(b"GET", b"/", b"1.0", ()),
        target=parse_target(b"/"),
        host=server.name,
    )


def intercepts(rv: RequestVars | None, status: int) -> bool:
    """``proxy_intercept_errors``: whether an upstream's answer of ``status`` gives way to an error page."""
    if rv is None or rv.location is None or status < 300:
        return False
    return rv.location.errors.intercept and _page(status, rv) is not None


def answered_status(rv: RequestVars | None, response: ResponseHead) -> ResponseHead:
    """An upstream's answer to a page's request takes the code the page says (not a 101: that is a switch)."""
    head = rv.head if rv is not None else None
    if not isinstance(head, PageRequest) or not head.answer or response.status in (101, head.answer):
        return response
    return ResponseHead(head.answer, b"", response.http_version, response.headers)


def replaceable(decision: Decision) -> bool:
    """
    An answer of wstunnel's own that nginx sends as a special response,
    which error pages replace: a redirect (``return 301 URL``, the 301 to a
    slash-ended location) or a ``return code`` of 400 or more without text
    (``return 404 "text"`` is an answer, not an error).
    """
    if not isinstance(decision, Respond) or decision.vars is None:
        return False
    if decision.status in REDIRECT_STATUSES:
        return True
    return decision.special


def _page(status: int, rv: RequestVars) -> ErrorPage | None:
    """The page for ``status`` where the request is, unless an earlier page or too many redirects ruled out another."""
    head = rv.head
    if rv.redirects > MAX_REDIRECTS or (isinstance(head, PageRequest) and head.final):
        return None
    return next((page for page in _pages(rv).pages if page.status == status), None)


def _pages(rv: RequestVars) -> ErrorPages:
    """The error pages of the request's location, or of its server outside any."""
    return rv.location.errors if rv.location is not None else rv.server.errors


def _bodiless(head: RequestHead) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((name, value) for name, value in head.headers if name.lower() not in _BODY_HEADERS)


def _relocated(sent: PageRequest, rv: RequestVars, redo: Redo) -> Decision:
    """
    The page's URI located again, in the same server, as a request of its
    own.  A URI refused before it was routed (a bad escape) keeps the
    page's request, so its error knows a page was already used.
    """
    decision = prepare(
        config=redo.config,
        router=redo.phases.router,
        binding=redo.binding,
        conn=rv.conn,
        tls=rv.conn.tls,
        head=sent,
        pooled=redo.phases.pooled,
        plans=redo.phases.plans,
        files=redo.phases.files,
        notice=redo.phases.notice,
        users=redo.phases.users,
        fs=redo.phases.fs,
        redirected=rv,
    )
    if isinstance(decision, Refuse) and decision.vars is None:
        return decision._replace(vars=_with_head(rv, sent, None))
    return decision


def _named(name: str, sent: PageRequest, rv: RequestVars, redo: Redo) -> Decision:
    location = named_location(rv.server, name)
    if location is None:
        return Refuse(rv.conn, rv.location, rv, RequestError(500, f'could not find named location "{name}"'))
    return named_decision(redo.phases, location, _with_head(rv, sent, location), sent)


def _answered(decision: Decision, answer: int, replaced: _Headers) -> Decision:
    """The page's own answer under the code the page says; a new error keeps its own code."""
    if isinstance(decision, ServeFile):
        return decision._replace(status=answer) if answer else decision
    if not isinstance(decision, Respond) or replaceable(decision):
        return decision
    kept = tuple((name, value) for name, value in replaced if name == b"Location")
    return decision._replace(status=answer or decision.status, headers=kept + decision.headers)


def _cycle(rv: RequestVars, target: str) -> Refuse:
    """Too many internal redirects: a 500 that no page replaces."""
    head = rv.head
    spent = PageRequest(head.method, head.target, head.http_version, head.headers)
    stuck = _with_head(rv, spent, rv.location)
    detail = f'rewrite or internal redirection cycle while internally redirecting to "{target}"'
    return Refuse(rv.conn, rv.location, stuck, RequestError(500, detail))


def _with_head(rv: RequestVars, head: PageRequest, location: Location | None) -> RequestVars:
    """The variables of ``rv``'s request as ``head`` makes it, in ``location``."""
    new = RequestVars(
        config=rv.config, server=rv.server, location=location, conn=rv.conn, head=head, target=rv.target, host=rv.host
    )
    new.carry_on(rv)
    return new
