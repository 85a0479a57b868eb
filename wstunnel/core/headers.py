"""
Header rewriting on both legs of a proxied exchange.

The upstream request is rebuilt, never patched: hop-by-hop headers go,
``proxy_set_header`` values are rendered, and the upgrade pair and body
framing are decided here so the bytes sent match what the proxy parsed.
Headers a client names in ``Connection`` are removed (RFC 9110 section
7.6.1) *before* our own are added, and never the identity, framing or
configured ones, so ``Connection: X-Forwarded-For`` cannot delete what the
config relies on (CVE-2022-31813, CVE-2022-1388).

Rendered values are latin-1 strings (one character per byte), as in
:mod:`wstunnel.core.variables`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
from typing import Collection, Sequence

from attrs import frozen

from wstunnel.wire.errors import SERVER_TOKEN, RequestError
from wstunnel.config.tokens import TOKEN
from wstunnel.config.model import DEFAULT_HIDDEN, DEFAULT_UPGRADE_PROTOCOLS, Config, Location, RedirectRule, ResponseRules, Template, VarRef
from wstunnel.wire.request import RequestHead, header_tokens, lower_tokens
from wstunnel.wire.response import ResponseHead
from wstunnel.wire.upstream import UpstreamRequest
from wstunnel.core.add_header import added_headers
from wstunnel.core.charset import with_charset
from wstunnel.core.cookies import rewrite_set_cookie
from wstunnel.core.expires import with_expires
from wstunnel.core.routing import origin, upstream_target
from wstunnel.core.variables import RequestVars, render

__all__ = [
    "BodyFraming",
    "HeaderPlan",
    "accept_key",
    "check_switch",
    "client_response_headers",
    "header_plan",
    "upgrade_offer",
    "upstream_request",
]

_Headers = Sequence[tuple[bytes, bytes]]

# Hop-by-hop headers (RFC 9110 section 7.6.1, plus the legacy Keep-Alive and
# Proxy-Connection): the business of one connection, never passed on either way.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding"}
)
# Never forwarded from the client: the hop-by-hop ones, framing we regenerate,
# and Host, which is always replaced (configured or $proxy_host).
_REQUEST_DROP = _HOP_BY_HOP | {b"upgrade", b"content-length", b"expect", b"http2-settings", b"host"}
# Names a client's Connection header may not remove: identity and framing.
_PROTECTED = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"forwarded", b"x-real-ip"}
)
_RESPONSE_DROP = _HOP_BY_HOP
_REWRITTEN = frozenset({b"location", b"refresh"})
# Never in a value we write: a CR or LF smuggled through a variable ($uri,
# $http_x) would start a header line of its own, and strict parsers (h11
# among them) refuse NUL, VT and FF.  A clean 400 instead.
_BAD_VALUE = re.compile(r"[\x00\r\n\x0b\x0c]")
_TOKEN = re.compile(TOKEN)
_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SERVER = (b"Server", SERVER_TOKEN.encode("ascii"))


class BodyFraming(enum.Enum):
    """How a request body is delimited, when it is not a Content-Length."""

    CHUNKED = "chunked"
    NONE = "none"


def upgrade_offer(
    head: RequestHead, allowed: Collection[bytes] = DEFAULT_UPGRADE_PROTOCOLS
) -> tuple[bytes, ...]:
    """
    The protocols a client asks to upgrade to that may be offered upstream,
    or ``()`` for a plain request.  ``allowed`` is the location's
    ``proxy_upgrade_protocols``.  Only a protocol whose 101 can be checked
    (websocket) or that the operator trusts by name goes on: a backend that
    echoes an upgrade it does not speak and stays HTTP would otherwise turn
    the tunnel into a way for the client's next requests to reach it past
    every rule of the proxy.  The rest is dropped like any hop-by-hop
    header, so the backend answers plain HTTP.  ``h2c`` is never offered
    onwards, whatever the config: an h2c tunnel would bypass every location
    and header rule (BishopFox h2c smuggling).
    """
    if head.http_version != b"1.1":
        return ()
    if b"upgrade" not in lower_tokens(head.values(b"connection")):
        return ()
    return tuple(t for t in header_tokens(head.values(b"upgrade")) if _permitted(t, allowed))


def _permitted(token: bytes, allowed: Collection[bytes]) -> bool:
    """``allowed`` names a protocol (every version) or one ``protocol/version``, in lower case."""
    name = _protocol(token)
    return name != b"h2c" and (name in allowed or token.lower() in allowed)


def _protocol(token: bytes) -> bytes:
    return token.partition(b"/")[0].lower()


@frozen
class HeaderPlan:
    """
    What a Location's proxy_set_header list means, worked out once per
    configuration (:func:`header_plan`, called when the configuration's
    runtime is built) rather than per request.
    """

    version: bytes
    proxy_host: bytes
    host: Template | None
    connection: Template | None
    upgrade: Template | None
    others: tuple[tuple[bytes, Template], ...]  # configured spelling, config order
    drop: frozenset[bytes]  # client headers never passed
    read: frozenset[bytes]  # $http_* keys the templates read ("x_token")
    method: Template | None = None  # proxy_method; None: the client's
    pass_headers: bool = True  # proxy_pass_request_headers
    pass_body: bool = True  # proxy_pass_request_body


def header_plan(location: Location, config: Config) -> HeaderPlan:
    """A repeated Host, Connection or Upgrade setting: the first one counts."""
    assert location.proxy_pass is not None, "upstream_target checked it"
    special: dict[bytes, Template] = {}
    others = []
    for setting in location.set_headers:
        name = setting.name.encode("latin-1")
        lower = name.lower()
        if lower in (b"host", b"connection", b"upgrade"):
            special.setdefault(lower, setting.value)
        else:
            others.append((name, setting.value))
    configured = frozenset(s.name.lower().encode("latin-1") for s in location.set_headers)
    templates = [s.value for s in location.set_headers]
    return HeaderPlan(
        version=location.http_version.encode("ascii"),
        proxy_host=location.proxy_pass.proxy_host.encode("latin-1"),
        host=special.get(b"host"),
        connection=special.get(b"connection"),
        upgrade=special.get(b"upgrade"),
        others=tuple(others),
        drop=_REQUEST_DROP | configured,
        read=frozenset(_header_reads(templates, config)),
        method=location.upstream_shape.method,
        pass_headers=location.upstream_shape.pass_headers,
        pass_body=location.upstream_shape.pass_body,
    )


def _header_reads(templates: list[Template], config: Config) -> set[bytes]:
    """Every ``$http_*`` a set of templates reads, through maps too."""
    reads: set[bytes] = set()
    seen: set[str] = set()
    pending = list(templates)
    while pending:
        for part in pending.pop().parts:
            if not isinstance(part, VarRef) or part.name in seen:
                continue
            seen.add(part.name)
            if part.name.startswith("http_"):
                reads.add(part.name[5:].encode("latin-1"))
            elif part.name in config.maps:
                pending += config.maps[part.name].templates()
    return reads


def upstream_request(
    location: Location,
    head: RequestHead,
    rv: RequestVars,
    *,
    plan: HeaderPlan,
    upgrade: tuple[bytes, ...],
    body: BodyFraming | int,
    keepalive: bool = False,
) -> UpstreamRequest:
    """
    The head to send upstream for ``head`` through ``location``, whose
    :func:`header_plan` is ``plan``.

    ``upgrade`` is :func:`upgrade_offer` of the request.  An upgrade is
    forwarded even when the config sets neither Upgrade nor Connection (a
    deliberate difference from nginx 1.22); ``proxy_set_header Upgrade ""``
    turns it off, and a configured Upgrade value only keeps protocols the
    client offered.  Without an upgrade no ``upgrade`` token is sent in
    Connection, whatever the config says, so a literal
    ``Connection "upgrade"`` cannot arm an upgrade the client never asked for.

    ``keepalive``: the upstream keeps idle connections, so a plain request
    goes without ``Connection: close`` unless the config sets Connection
    (nginx 1.22 needs ``proxy_set_header Connection ""`` for this).

    A chunked body with ``proxy_http_version 1.0`` is refused with 411:
    HTTP/1.0 has no chunked coding and wstunnel streams bodies rather than
    buffering them as nginx does, so the client must send a length.
    """
    target = upstream_target(location, rv.target, rv)
    headers = _host(plan, rv)
    connection, protocols = _upgrade_pair(plan, rv, upgrade, keepalive and plan.version == b"1.1")
    for name, template in plan.others:
        value = _value(template, rv)
        if value:
            headers.append((name, value))
    if connection:
        headers.append((b"Connection", connection))
    if protocols:
        headers.append((b"Upgrade", protocols))
    headers += _framing(plan, body)
    if plan.pass_headers:
        headers += _client_headers(plan, head)
    return UpstreamRequest(
        method=head.method if plan.method is None else _method(plan.method, head, rv),
        target=target,
        http_version=plan.version,
        headers=tuple(headers),
        upgrade=bool(protocols),
        offer=upgrade if protocols else (),
    )


def _value(template: Template, rv: RequestVars) -> bytes:
    text = render(template, rv).strip(" \t")
    if _BAD_VALUE.search(text):
        raise RequestError(400, f"control character in a header value from {template.text!r}")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise RequestError(500, f"header value from {template.text!r} is not latin-1") from None


def _method(template: Template, head: RequestHead, rv: RequestVars) -> bytes:
    """proxy_method's value; an empty one leaves the client's, one that is no token is refused."""
    text = render(template, rv)
    if not text:
        return head.method
    if not _TOKEN.fullmatch(text):
        raise RequestError(500, f"proxy_method {template.text!r} gave {text!r}, which is not a method")
    return text.encode("latin-1")


def _host(plan: HeaderPlan, rv: RequestVars) -> list[tuple[bytes, bytes]]:
    """
    Host goes first.  HTTP/1.1 requires one, so an empty configured value
    falls back to $proxy_host there; with 1.0 it sends none (nginx 1.31).
    """
    value = _value(plan.host, rv) if plan.host is not None else None
    if value:
        return [(b"Host", value)]
    if value is not None and plan.version != b"1.1":
        return []
    return [(b"Host", plan.proxy_host)]


def _upgrade_pair(
    plan: HeaderPlan, rv: RequestVars, offer: tuple[bytes, ...], keepalive: bool
) -> tuple[bytes, bytes]:
    """
    The Connection and Upgrade values to send; an empty Upgrade means no
    upgrade, an empty Connection none (a kept-alive plain request).
    """
    configured = _value(plan.connection, rv) if plan.connection is not None else None
    protocols = b""
    if offer and plan.version == b"1.1":
        protocols = _protocols(plan, rv, offer)
        if configured is not None and b"upgrade" not in lower_tokens([configured]):
            protocols = b""
    if configured is None:
        return (b"upgrade" if protocols else b"" if keepalive else b"close"), protocols
    if protocols or not configured:
        return configured, protocols
    kept = [t for t in header_tokens([configured]) if t.lower() != b"upgrade"]
    return b", ".join(kept) or b"close", b""


def _protocols(plan: HeaderPlan, rv: RequestVars, offer: tuple[bytes, ...]) -> bytes:
    if plan.upgrade is None:
        return b", ".join(offer)
    offered = {t.lower() for t in offer}
    return b", ".join(t for t in header_tokens([_value(plan.upgrade, rv)]) if t.lower() in offered)


def _framing(plan: HeaderPlan, body: BodyFraming | int) -> list[tuple[bytes, bytes]]:
    """
    With ``proxy_pass_request_body off`` a body the client sends is refused
    with 413, since wstunnel streams a body as it reads it and cannot yet
    read one only to drop it as nginx does; an empty one keeps its
    ``Content-Length: 0``, as nginx sends it.
    """
    if not plan.pass_body and body not in (BodyFraming.NONE, 0):
        raise RequestError(413, "a request body where proxy_pass_request_body is off")
    if body is BodyFraming.NONE:
        return []
    if body is BodyFraming.CHUNKED:
        if plan.version != b"1.1":
            raise RequestError(411, "chunked request body to an HTTP/1.0 upstream")
        return [(b"Transfer-Encoding", b"chunked")]
    return [(b"Content-Length", str(body).encode("ascii"))]


def _client_headers(plan: HeaderPlan, head: RequestHead) -> list[tuple[bytes, bytes]]:
    drop = plan.drop
    connection = head.values(b"connection")
    if connection:
        drop = drop | _nominated(plan, connection)
    return [(n, v) for n, v in head.headers if n.lower() not in drop]


def _nominated(plan: HeaderPlan, connection: list[bytes]) -> set[bytes]:
    """Headers the client listed in Connection that it may remove."""
    return {
        t
        for t in lower_tokens(connection)
        if t not in _PROTECTED
        and not t.startswith(b"x-forwarded-")
        and t.replace(b"-", b"_") not in plan.read
    }


def accept_key(key: bytes) -> bytes:
    """RFC 6455 section 4.2.2: the Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key + _WEBSOCKET_GUID).digest())


def check_switch(
    head: RequestHead,
    response: ResponseHead,
    allowed: Collection[bytes] = DEFAULT_UPGRADE_PROTOCOLS,
    *,
    offer: tuple[bytes, ...] | None = None,
) -> str | None:
    """
    Why a 101 must not open a tunnel, or None when it may.  nginx checks
    only the status, which lets a backend that never upgraded leave a raw
    pipe open (0ang3el's WebSocket smuggling).  The 101 must name one of
    the tokens :func:`upgrade_offer` let through under ``allowed`` (the
    location's ``proxy_upgrade_protocols``), as the client spelt it up to
    case; for websocket its Sec-WebSocket-Accept must match too.  The caller
    must also refuse any 101 to an upstream request that did not ask to
    upgrade.  ``offer`` is :func:`upgrade_offer` of ``head`` under
    ``allowed`` when the caller has it already (the upstream request
    carries it), so the client's head is not read for it again.
    """
    if response.status != 101:
        return f"status {response.status} is not 101"
    if offer is None:
        offer = upgrade_offer(head, allowed)
    if not offer:
        return "the client did not ask to upgrade to a protocol allowed here"
    upgrades, connections, accepts = _switch_headers(response)
    chosen = header_tokens(upgrades)
    if len(chosen) != 1:
        return f"the 101 names {len(chosen)} Upgrade protocols, not one"
    if chosen[0].lower() not in {t.lower() for t in offer}:
        return f"the 101 upgrades to {chosen[0]!r}, which the client did not offer or is not allowed here"
    if b"upgrade" not in lower_tokens(connections):
        return "the 101 has no upgrade token in Connection"
    if _protocol(chosen[0]) == b"websocket":
        return _check_accept(head, accepts)
    return None


def _switch_headers(response: ResponseHead) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The Upgrade, Connection and Sec-WebSocket-Accept values of a 101, in one pass over its headers."""
    upgrades: list[bytes] = []
    connections: list[bytes] = []
    accepts: list[bytes] = []
    for name, value in response.headers:
        lower = name.lower()
        if lower == b"upgrade":
            upgrades.append(value)
        elif lower == b"connection":
            connections.append(value)
        elif lower == b"sec-websocket-accept":
            accepts.append(value)
    return upgrades, connections, accepts


def _check_accept(head: RequestHead, accepts: list[bytes]) -> str | None:
    keys = head.values(b"sec-websocket-key")
    if len(keys) != 1:
        return f"the client sent {len(keys)} Sec-WebSocket-Key headers"
    if accepts != [accept_key(keys[0])]:
        return "Sec-WebSocket-Accept does not match the client's key"
    return None


def client_response_headers(
    response: ResponseHead,
    *,
    request_method: bytes,
    date: bytes,
    rules: ResponseRules | None = None,
    rv: RequestVars | None = None,
) -> list[tuple[bytes, bytes]]:
    """
    The response head for the client: our Server and Date first, as nginx
    sends them, then the upstream's end-to-end headers in their order.
    Content-Length is dropped where it cannot describe the body we relay:
    1xx and 204 have none, and with Transfer-Encoding the length is the
    de-chunked one (a HEAD answer keeps it: it describes the GET).
    ``date`` is the Date value, from the caller's clock (``expires`` counts
    from it).  ``rules`` (proxy_hide_header, proxy_pass_header,
    proxy_redirect, proxy_cookie_*, expires, charset, add_header) need
    ``rv`` to render their values; the headers made before add_header's,
    which come last, are what ``$sent_http_*`` reads.  A passed Server or
    Date replaces ours, as in nginx.
    """
    status, headers = response.status, response.headers
    hide = rules.hide if rules is not None else DEFAULT_HIDDEN
    drop = set(_RESPONSE_DROP) | hide
    switching = status == 101
    # A 426 names the protocol the client must switch to (RFC 9110 section
    # 15.5.22): its Upgrade reaches the client, as nginx passes it.
    names_upgrade = switching or status == 426
    if not names_upgrade:
        drop.add(b"upgrade")
    if _content_length_invalid(status, headers, request_method):
        drop.add(b"content-length")
    nominated = lower_tokens([v for n, v in headers if n.lower() == b"connection"])
    nominated.discard(b"content-length")
    if names_upgrade:
        nominated.discard(b"upgrade")
    if switching:
        nominated = {t for t in nominated if not t.startswith(b"sec-websocket-")}
    drop |= nominated
    out = []
    if b"server" in hide:
        out.append(_SERVER)
    if b"date" in hide:
        out.append((b"Date", date))
    if switching:
        out.append((b"Connection", b"upgrade"))
    redirects = rules.redirects if rules is not None and rv is not None else ()
    cookies = rules.cookies if rules is not None and rv is not None else None
    for name, value in headers:
        lower = name.lower()
        if lower in drop:
            continue
        if redirects and lower in _REWRITTEN:
            value = _redirect(value, lower == b"refresh", redirects, rv)  # type: ignore[arg-type]
        elif cookies is not None and lower == b"set-cookie":
            value = rewrite_set_cookie(value, cookies, rv)  # type: ignore[arg-type]
        out.append((name, value))
    if rules is not None and rv is not None:
        if rules.expires is not None:
            out = with_expires(out, rules.expires, status, date, rv)
        if rules.charset is not None:
            out = with_charset(out, rules.charset, status, rv)
        rv.sent = out
        if rules.add_headers:
            out += added_headers(rules.add_headers, status, rv)
    return out


def _redirect(value: bytes, refresh: bool, rules: tuple[RedirectRule, ...], rv: RequestVars) -> bytes:
    """
    proxy_redirect: the first rule that matches rewrites the URL (a prefix
    rule replaces that prefix, a regex rule the whole URL, with its
    captures); a rewritten URL that became relative is made absolute with
    this server's scheme, host and port, as nginx's header filter does.
    In Refresh only the part after ``url=`` is a URL.
    """
    text = value.decode("latin-1")
    start = 0
    if refresh:
        start = text.lower().find("url=")
        if start < 0:
            return value
        start += 4
    url = text[start:]
    for rule in rules:
        rewritten = _rewritten(url, rule, rv)
        if rewritten is None:
            continue
        if rewritten.startswith("/") and not refresh:
            rewritten = origin(rv.conn, rv.host) + rewritten
        if _BAD_VALUE.search(rewritten):
            return value  # a CR/LF from a variable is never written
        return (text[:start] + rewritten).encode("latin-1", "replace")
    return value


def _rewritten(url: str, rule: RedirectRule, rv: RequestVars) -> str | None:
    if rule.regex is not None:
        match = rule.regex.search(url)
        if match is None:
            return None
        rv.captured(match)
        return render(rule.replacement, rv)
    pattern = render(rule.pattern, rv)
    if not url.startswith(pattern):
        return None
    return render(rule.replacement, rv) + url[len(pattern) :]


def _content_length_invalid(status: int, headers: _Headers, request_method: bytes) -> bool:
    if status < 200 or status == 204:
        return True
    if request_method == b"HEAD" or status == 304:
        return False
    for name, _ in headers:
        if name.lower() == b"transfer-encoding":
            return True
    return False
