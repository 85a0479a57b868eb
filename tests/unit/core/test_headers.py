"""Header rewriting: the upstream request head, 101 validation, the client's response head."""

from __future__ import annotations


import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstunnel.wire.errors import RequestError
from wstunnel.core.headers import (
    BodyFraming,
    accept_key,
    check_switch,
    client_response_headers,
    header_plan,
    upgrade_offer,
    upstream_request,
)
from wstunnel.config.model import (
    Config,
    HeaderSetting,
    Location,
    MapDef,
    Peer,
    ProxyPass,
    Server,
    Source,
    Template,
    Timeouts,
    Upstream,
)
from wstunnel.wire.request import ConnInfo, RequestHead, header_tokens, lower_tokens
from wstunnel.wire.response import ResponseHead
from wstunnel.core.routing import parse_target
from wstunnel.wire.upstream import RequestWriter, UpstreamRequest
from wstunnel.config.templates import compile_template
from wstunnel.core.variables import RequestVars

SRC = Source("test.conf", 1)
MAP_NAMES = ("connection_upgrade",)


def template(text: str) -> Template:
    return compile_template(text, SRC, MAP_NAMES)


CONNECTION_UPGRADE = MapDef(
    variable="connection_upgrade",
    source_template=template("$http_upgrade"),
    exact={"": template("close")},
    default=template("upgrade"),
    source=SRC,
)
BACKEND = Upstream("websocket", (Peer("127.0.0.1", 8282, "localhost:8282"),), False, SRC)
SERVER = Server(("test.example",), (), (), SRC)
CONFIG = Config("test.conf", (), (SERVER,), {"websocket": BACKEND}, {"connection_upgrade": CONNECTION_UPGRADE}, ())
CONN = ConnInfo("192.0.2.7", 40000, "192.0.2.1", 80)

# The seeds' proxy_set_header sets.
HOWTO = (("Upgrade", "$http_upgrade"), ("Connection", "upgrade"))
HOWTO_MAP = (("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade"))
CONFD = (
    ("Host", "$host"),
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
    ("Upgrade", "$http_upgrade"),
    ("Connection", "$connection_upgrade"),
)


def location(
    sets: tuple[tuple[str, str], ...] = (),
    *,
    version: str = "1.1",
    path: str = "/",
    uri: str | None = None,
) -> Location:
    return Location(
        path=path,
        exact=False,
        proxy_pass=ProxyPass("http", BACKEND, uri, "websocket", SRC),
        http_version=version,
        set_headers=tuple(HeaderSetting(n, template(v), SRC) for n, v in sets),
        timeouts=Timeouts(),
        access_logs=(),
        source=SRC,
    )


def head(*headers: tuple[bytes, bytes], target: bytes = b"/chat/", method: bytes = b"GET", version: bytes = b"1.1") -> RequestHead:
    return RequestHead(method, target, version, (*headers,))


def answer(status: int, headers: tuple[tuple[bytes, bytes], ...]) -> ResponseHead:
    return ResponseHead(status, b"", b"1.1", headers)


WS_HEADERS = (
    (b"Host", b"Test.Example:8080"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
)


def rewrite(
    loc: Location,
    request: RequestHead,
    body: BodyFraming | int = BodyFraming.NONE,
) -> UpstreamRequest:
    target = parse_target(request.target)
    rv = RequestVars(
        config=CONFIG, server=SERVER, location=loc, conn=CONN, head=request, target=target, host="test.example"
    )
    plan = header_plan(loc, CONFIG)
    return upstream_request(loc, request, rv, plan=plan, upgrade=upgrade_offer(request), body=body)


def names(request: UpstreamRequest) -> list[bytes]:
    return [n.lower() for n, _ in request.headers]


def value(request: UpstreamRequest, name: bytes) -> bytes | None:
    found = [v for n, v in request.headers if n.lower() == name]
    assert len(found) <= 1, found
    return found[0] if found else None


# upgrade_offer


@pytest.mark.parametrize(
    ("headers", "offer"),
    [
        (((b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")), (b"websocket",)),
        (((b"Upgrade", b"WebSocket"), (b"Connection", b"keep-alive, Upgrade")), (b"WebSocket",)),
        (((b"Connection", b"keep-alive"), (b"Upgrade", b"websocket"), (b"connection", b"UPGRADE")), (b"websocket",)),
        (((b"Upgrade", b"foo/2, WebSocket"), (b"Connection", b" upgrade ,x")), (b"WebSocket",)),
        (((b"Upgrade", b"h2c, websocket"), (b"Connection", b"Upgrade, HTTP2-Settings")), (b"websocket",)),
        (((b"Upgrade", b"H2C"), (b"Connection", b"Upgrade")), ()),
        (((b"Upgrade", b"websocket"), (b"Connection", b"keep-alive")), ()),
        (((b"Upgrade", b"websocket"),), ()),
        (((b"Connection", b"Upgrade"),), ()),
        (((b"Upgrade", b""), (b"Connection", b"Upgrade")), ()),
        (((b"Upgrade", b"websocket"), (b"Connection", b"upgraded")), ()),
    ],
)
def test_upgrade_offer(headers: tuple[tuple[bytes, bytes], ...], offer: tuple[bytes, ...]) -> None:
    assert upgrade_offer(head(*headers)) == offer


def test_http10_never_upgrades() -> None:
    assert upgrade_offer(head(*WS_HEADERS, version=b"1.0")) == ()


# upstream_request: defaults


def test_plain_request_without_configuration() -> None:
    request = rewrite(
        location(),
        head(
            (b"host", b"test.example"),
            (b"Accept", b"*/*"),
            (b"X-Dup", b"1"),
            (b"Keep-Alive", b"300"),
            (b"x-dup", b"2"),
            (b"Cookie", b"a=b"),
        ),
    )
    assert request == UpstreamRequest(
        method=b"GET",
        target=b"/chat/",
        http_version=b"1.1",
        headers=(
            (b"Host", b"websocket"),
            (b"Connection", b"close"),
            (b"Accept", b"*/*"),
            (b"X-Dup", b"1"),
            (b"x-dup", b"2"),
            (b"Cookie", b"a=b"),
        ),
        upgrade=False,
    )


@pytest.mark.parametrize(
    "name",
    [
        b"Connection",
        b"Keep-Alive",
        b"Proxy-Connection",
        b"TE",
        b"Trailer",
        b"Transfer-Encoding",
        b"Upgrade",
        b"Content-Length",
        b"Expect",
        b"HTTP2-Settings",
        b"HOST",
    ],
)
def test_hop_by_hop_client_headers_are_dropped(name: bytes) -> None:
    request = rewrite(location(), head((b"Host", b"h"), (name, b"x-value")))
    assert b"x-value" not in [v for _, v in request.headers]


def test_upgrade_without_configuration_is_forwarded() -> None:
    request = rewrite(location(), head(*WS_HEADERS))
    assert request.upgrade
    assert request.headers == (
        (b"Host", b"websocket"),
        (b"Connection", b"upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"Sec-WebSocket-Version", b"13"),
    )


def test_h2c_is_never_forwarded() -> None:
    request = rewrite(
        location(HOWTO_MAP),
        head(
            (b"Host", b"h"),
            (b"Upgrade", b"h2c"),
            (b"HTTP2-Settings", b"AAMAAABkAARAAAAAAAIAAAAA"),
            (b"Connection", b"Upgrade, HTTP2-Settings"),
        ),
    )
    assert not request.upgrade
    assert value(request, b"upgrade") is None
    assert value(request, b"connection") == b"close"
    assert value(request, b"http2-settings") is None


def test_a_configured_upgrade_value_keeps_only_offered_protocols() -> None:
    request = rewrite(
        location(HOWTO_MAP),
        head((b"Host", b"h"), (b"Upgrade", b"h2c, websocket"), (b"Connection", b"Upgrade")),
    )
    assert request.upgrade
    assert value(request, b"upgrade") == b"websocket"


def test_a_configured_upgrade_value_the_client_did_not_offer_is_no_upgrade() -> None:
    request = rewrite(location((("Upgrade", "foo"),)), head(*WS_HEADERS))
    assert not request.upgrade
    assert (value(request, b"upgrade"), value(request, b"connection")) == (None, b"close")


# upstream_request: the seed configurations


@pytest.mark.parametrize("sets", [HOWTO, HOWTO_MAP, CONFD])
def test_seed_configs_forward_an_upgrade(sets: tuple[tuple[str, str], ...]) -> None:
    request = rewrite(location(sets), head(*WS_HEADERS))
    assert request.upgrade
    assert (value(request, b"upgrade"), value(request, b"connection")) == (b"websocket", b"upgrade")


@pytest.mark.parametrize("sets", [HOWTO, HOWTO_MAP, CONFD])
def test_seed_configs_close_a_plain_request(sets: tuple[tuple[str, str], ...]) -> None:
    request = rewrite(location(sets), head((b"Host", b"h")))
    assert not request.upgrade
    assert (value(request, b"upgrade"), value(request, b"connection")) == (None, b"close")


def test_confd_seed_identity_headers() -> None:
    request = rewrite(location(CONFD), head(*WS_HEADERS, (b"X-Forwarded-For", b"10.0.0.1")))
    assert request.headers[:3] == (
        (b"Host", b"test.example"),
        (b"X-Real-IP", b"192.0.2.7"),
        (b"X-Forwarded-For", b"10.0.0.1, 192.0.2.7"),
    )
    assert names(request).count(b"x-forwarded-for") == 1


def test_configured_connection_keeps_its_value_and_spelling_on_upgrade() -> None:
    request = rewrite(location((("connection", "keep-alive, Upgrade"),)), head(*WS_HEADERS))
    assert request.upgrade
    assert value(request, b"connection") == b"keep-alive, Upgrade"


def test_configured_connection_loses_its_upgrade_token_on_a_plain_request() -> None:
    request = rewrite(location((("Connection", "keep-alive, Upgrade"),)), head((b"Host", b"h")))
    assert value(request, b"connection") == b"keep-alive"


def test_configured_connection_without_upgrade_token_is_no_upgrade() -> None:
    request = rewrite(location((("Connection", "close"),)), head(*WS_HEADERS))
    assert not request.upgrade
    assert (value(request, b"upgrade"), value(request, b"connection")) == (None, b"close")


def test_empty_configured_connection_sends_none() -> None:
    request = rewrite(location((("Connection", ""),)), head(*WS_HEADERS))
    assert not request.upgrade
    assert b"connection" not in names(request) and b"upgrade" not in names(request)


@pytest.mark.parametrize("sets", [(("Upgrade", ""),), (("Upgrade", ""), ("Connection", "$connection_upgrade"))])
def test_empty_upgrade_turns_upgrades_off(sets: tuple[tuple[str, str], ...]) -> None:
    request = rewrite(location(sets), head(*WS_HEADERS))
    assert not request.upgrade
    assert (value(request, b"upgrade"), value(request, b"connection")) == (None, b"close")


# upstream_request: Connection-nominated headers (CVE-2022-31813 / CVE-2022-1388)


def test_connection_cannot_remove_identity_headers() -> None:
    request = rewrite(
        location(CONFD),
        head(
            (b"Host", b"h"),
            (b"Connection", b"close, X-Forwarded-For, X-Real-IP, Forwarded, Host, X-Forwarded-Proto"),
            (b"X-Forwarded-For", b"10.0.0.1"),
            (b"Forwarded", b"for=10.0.0.1"),
            (b"X-Forwarded-Proto", b"https"),
        ),
    )
    assert value(request, b"host") == b"test.example"
    assert value(request, b"x-real-ip") == b"192.0.2.7"
    assert value(request, b"x-forwarded-for") == b"10.0.0.1, 192.0.2.7"
    assert value(request, b"forwarded") == b"for=10.0.0.1"
    assert value(request, b"x-forwarded-proto") == b"https"


def test_connection_cannot_remove_a_configured_header() -> None:
    request = rewrite(
        location((("X-Auth", "token"),)),
        head((b"Host", b"h"), (b"Connection", b"X-Auth"), (b"x-auth", b"forged")),
    )
    assert [(n, v) for n, v in request.headers if n.lower() == b"x-auth"] == [(b"X-Auth", b"token")]


def test_connection_cannot_remove_a_header_the_config_reads() -> None:
    request = rewrite(
        location((("X-User", "$http_x_token"),)),
        head((b"Host", b"h"), (b"Connection", b"keep-alive, X-Token"), (b"X-Token", b"a")),
    )
    assert (value(request, b"x-user"), value(request, b"x-token")) == (b"a", b"a")


def test_connection_cannot_remove_a_header_read_through_a_map() -> None:
    sets = (("X-Mode", "$connection_upgrade"),)
    request = rewrite(location(sets), head((b"Host", b"h"), (b"Connection", b"Upgrade"), (b"Upgrade", b"foo")))
    assert value(request, b"x-mode") == b"upgrade"


def test_connection_removes_other_headers_it_names() -> None:
    request = rewrite(
        location(CONFD),
        head((b"Host", b"h"), (b"Connection", b"close, X-Secret"), (b"X-Secret", b"1"), (b"X-Other", b"2")),
    )
    assert b"x-secret" not in names(request)
    assert value(request, b"x-other") == b"2"


# upstream_request: proxy_set_header values


def test_configured_name_suppresses_the_client_header_whatever_its_case() -> None:
    request = rewrite(location((("x-real-ip", "$remote_addr"),)), head((b"Host", b"h"), (b"X-REAL-IP", b"6.6.6.6")))
    assert [(n, v) for n, v in request.headers if n.lower() == b"x-real-ip"] == [(b"x-real-ip", b"192.0.2.7")]


def test_empty_value_removes_the_header() -> None:
    request = rewrite(location((("Accept-Encoding", ""),)), head((b"Host", b"h"), (b"Accept-Encoding", b"gzip")))
    assert b"accept-encoding" not in names(request)


def test_values_are_trimmed() -> None:
    request = rewrite(location((("X-A", " $http_x_b\t"),)), head((b"Host", b"h"), (b"X-B", b"v")))
    assert value(request, b"x-a") == b"v"


@pytest.mark.parametrize("raw", [b"a\rb", b"a\nb", b"a\x00b", b"a\x0bb", b"a\x0cb"])
def test_control_characters_from_a_variable_are_400(raw: bytes) -> None:
    loc = location((("X-Orig", "$http_x"),))
    request = head((b"Host", b"h"), (b"X", raw))
    with pytest.raises(RequestError) as info:
        rewrite(loc, request)
    assert info.value.status == 400


def test_crlf_decoded_from_the_uri_is_400() -> None:
    with pytest.raises(RequestError) as info:
        rewrite(location((("X-Orig", "$uri"),)), head((b"Host", b"h"), target=b"/a%0d%0aX-Injected:%201"))
    assert info.value.status == 400


def test_tab_and_high_bytes_are_values() -> None:
    request = rewrite(location((("X-A", "$http_x"),)), head((b"Host", b"h"), (b"X", b"a\tb\xe9")))
    assert value(request, b"x-a") == b"a\tb\xe9"


def test_a_value_beyond_latin1_is_500() -> None:
    with pytest.raises(RequestError) as info:
        rewrite(location((("X-A", "\u2603"),)), head((b"Host", b"h")))
    assert info.value.status == 500


def test_host_is_first_even_when_configured_last() -> None:
    request = rewrite(location((("X-A", "1"), ("HOST", "$host:8080"))), head((b"Host", b"h")))
    assert request.headers[:2] == ((b"Host", b"test.example:8080"), (b"X-A", b"1"))


def test_empty_host_falls_back_to_proxy_host_for_http11() -> None:
    request = rewrite(location((("Host", ""),)), head((b"Host", b"h")))
    assert request.headers[0] == (b"Host", b"websocket")


def test_empty_host_sends_none_for_http10() -> None:
    request = rewrite(location((("Host", ""),), version="1.0"), head((b"Host", b"h")))
    assert b"host" not in names(request)


def test_target_follows_proxy_pass() -> None:
    request = rewrite(location(path="/chat/", uri="/ws/"), head((b"Host", b"h"), target=b"/chat/room?x=1"))
    assert request.target == b"/ws/room?x=1"


# upstream_request: versions and framing


def test_http10_upstream_has_no_upgrade() -> None:
    request = rewrite(location(HOWTO, version="1.0"), head(*WS_HEADERS))
    assert (request.http_version, request.upgrade) == (b"1.0", False)
    assert (value(request, b"upgrade"), value(request, b"connection")) == (None, b"close")
    assert value(request, b"host") == b"websocket"


def test_http10_upstream_refuses_a_chunked_body() -> None:
    with pytest.raises(RequestError) as info:
        rewrite(location(version="1.0"), head((b"Host", b"h")), BodyFraming.CHUNKED)
    assert info.value.status == 411


@pytest.mark.parametrize(
    ("body", "framing"),
    [
        (BodyFraming.NONE, []),
        (0, [(b"Content-Length", b"0")]),
        (12, [(b"Content-Length", b"12")]),
        (BodyFraming.CHUNKED, [(b"Transfer-Encoding", b"chunked")]),
    ],
)
def test_body_framing_is_ours(body: BodyFraming | int, framing: list[tuple[bytes, bytes]]) -> None:
    client = head(
        (b"Host", b"h"),
        (b"Content-Length", b"99"),
        (b"Transfer-Encoding", b"gzip, chunked"),
        (b"Connection", b"Content-Length, Transfer-Encoding"),
        method=b"POST",
    )
    request = rewrite(location(), client, body)
    assert [(n, v) for n, v in request.headers if n.lower() in (b"content-length", b"transfer-encoding")] == framing


# accept_key and check_switch


def test_accept_key_rfc6455_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


GOOD_101 = (
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
)


def test_a_correct_101_opens_the_tunnel() -> None:
    assert check_switch(head(*WS_HEADERS), answer(101, GOOD_101)) is None


def test_tokens_compare_case_insensitively() -> None:
    upstream = ((b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, UPGRADE"), GOOD_101[2])
    assert check_switch(head(*WS_HEADERS), answer(101, upstream)) is None


def test_other_protocols_need_no_accept() -> None:
    client = head((b"Host", b"h"), (b"Upgrade", b"foo"), (b"Connection", b"Upgrade"))
    assert check_switch(client, answer(101, ((b"Upgrade", b"foo"), (b"Connection", b"upgrade"))), {b"foo"}) is None


@pytest.mark.parametrize(
    ("client", "status", "upstream", "reason"),
    [
        (WS_HEADERS, 200, GOOD_101, "not 101"),
        (WS_HEADERS[:2], 101, GOOD_101, "did not ask"),
        ((WS_HEADERS[0], (b"Upgrade", b"h2c"), (b"Connection", b"Upgrade, HTTP2-Settings")), 101, GOOD_101, "did not ask"),
        (WS_HEADERS, 101, ((b"Upgrade", b"h2c"), *GOOD_101[1:]), "did not offer"),
        (WS_HEADERS, 101, ((b"Upgrade", b"websocket, foo"), *GOOD_101[1:]), "not one"),
        (WS_HEADERS, 101, GOOD_101[1:], "0 Upgrade"),
        (WS_HEADERS, 101, (GOOD_101[0], GOOD_101[2]), "Connection"),
        (WS_HEADERS, 101, (GOOD_101[0], (b"Connection", b"keep-alive"), GOOD_101[2]), "Connection"),
        (WS_HEADERS, 101, GOOD_101[:2], "Accept"),
        (WS_HEADERS, 101, (*GOOD_101[:2], (b"Sec-WebSocket-Accept", b"AAAA")), "Accept"),
        (WS_HEADERS, 101, (*GOOD_101, GOOD_101[2]), "Accept"),
        (WS_HEADERS[:3], 101, GOOD_101, "0 Sec-WebSocket-Key"),
        ((*WS_HEADERS, WS_HEADERS[3]), 101, GOOD_101, "2 Sec-WebSocket-Key"),
    ],
)
def test_bad_switches(
    client: tuple[tuple[bytes, bytes], ...],
    status: int,
    upstream: tuple[tuple[bytes, bytes], ...],
    reason: str,
) -> None:
    found = check_switch(head(*client), answer(status, upstream))
    assert found is not None and reason in found


# client_response_headers

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def test_response_head_for_a_plain_answer() -> None:
    upstream = (
        (b"Server", b"gunicorn"),
        (b"Date", b"yesterday"),
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"keep-alive, X-Secret"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-Sum"),
        (b"X-Secret", b"s"),
        (b"Upgrade", b"h2c"),
        (b"Content-Length", b"5"),
        (b"Set-Cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    )
    assert client_response_headers(answer(200, upstream), request_method=b"GET", date=DATE) == [
        (b"Server", b"wstunnel"),
        (b"Date", DATE),
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"5"),
        (b"Set-Cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_response_head_for_a_switch() -> None:
    upstream = (
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade, Sec-WebSocket-Protocol, X-Secret"),
        (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        (b"Sec-WebSocket-Protocol", b"chat"),
        (b"Sec-WebSocket-Extensions", b"permessage-deflate"),
        (b"Set-Cookie", b"s=1"),
        (b"X-Secret", b"s"),
        (b"Content-Length", b"0"),
    )
    assert client_response_headers(answer(101, upstream), request_method=b"GET", date=DATE) == [
        (b"Server", b"wstunnel"),
        (b"Date", DATE),
        (b"Connection", b"upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        (b"Sec-WebSocket-Protocol", b"chat"),
        (b"Sec-WebSocket-Extensions", b"permessage-deflate"),
        (b"Set-Cookie", b"s=1"),
    ]


@pytest.mark.parametrize(
    ("status", "method", "kept"),
    [
        (200, b"GET", False),
        (200, b"HEAD", True),
        (304, b"GET", True),
        (204, b"GET", False),
        (101, b"GET", False),
    ],
)
def test_content_length_beside_transfer_encoding(status: int, method: bytes, kept: bool) -> None:
    upstream = ((b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"10"))
    out = client_response_headers(answer(status, upstream), request_method=method, date=DATE)
    assert ((b"Content-Length", b"10") in out) is kept
    assert all(n != b"Transfer-Encoding" for n, _ in out)


def test_connection_cannot_remove_content_length() -> None:
    upstream = ((b"Connection", b"Content-Length"), (b"Content-Length", b"3"))
    assert (b"Content-Length", b"3") in client_response_headers(answer(200, upstream), request_method=b"GET", date=DATE)


# Properties

_HOP = ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Content-Length", "Expect", "HTTP2-Settings", "Host"]
_OTHER = ["X-Forwarded-For", "X-Real-IP", "Forwarded", "X-A", "X-Token", "Cookie", "Accept", "Sec-WebSocket-Key"]
_NAME = st.sampled_from(_HOP + _OTHER).flatmap(
    lambda n: st.sampled_from([n, n.lower(), n.upper()])
).map(lambda n: n.encode())
_TOKEN = st.sampled_from(["close", "keep-alive", "upgrade", "Upgrade", "x-a", "X-Token", "cookie", "te", "h2c", "websocket"])
_VALUE = st.one_of(
    st.lists(_TOKEN, min_size=1, max_size=3).map(lambda t: ", ".join(t).encode()),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8).map(str.encode),
)
_SETS = st.sampled_from(
    [(), HOWTO, HOWTO_MAP, CONFD, (("Upgrade", ""),), (("X-A", "$http_x_token"), ("Connection", "keep-alive"))]
)
_BODY = st.sampled_from([BodyFraming.NONE, BodyFraming.CHUNKED, 0, 7])


@st.composite
def _requests(draw: st.DrawFn) -> tuple[Location, RequestHead, BodyFraming | int]:
    pairs = draw(st.lists(st.tuples(_NAME, _VALUE), max_size=10))
    client = [(n, v) for n, v in pairs if n.lower() != b"host"]
    client.insert(draw(st.integers(0, len(client))), (b"Host", b"h.example"))
    version = draw(st.sampled_from(["1.1", "1.0"]))
    body = draw(_BODY)
    if version == "1.0" and body is BodyFraming.CHUNKED:
        body = 7
    return location(draw(_SETS), version=version), head(*client), body


@given(_requests())
def test_no_hop_by_hop_header_survives(case: tuple[Location, RequestHead, BodyFraming | int]) -> None:
    loc, client, body = case
    request = rewrite(loc, client, body)
    out = names(request)
    for name in (b"keep-alive", b"proxy-connection", b"te", b"trailer", b"expect", b"http2-settings"):
        assert name not in out
    assert out.count(b"host") == 1 and out[0] == b"host"
    connection = [v for n, v in request.headers if n.lower() == b"connection"]
    upgrade = [v for n, v in request.headers if n.lower() == b"upgrade"]
    if request.upgrade:
        assert connection and all(b"upgrade" in v.lower() for v in connection)
        assert upgrade and all(b"h2c" not in v.lower() for v in upgrade)
    else:
        assert not upgrade
        assert all(b"upgrade" not in v.lower() for v in connection)
    assert (b"transfer-encoding" in out) is (body is BodyFraming.CHUNKED)
    assert (b"content-length" in out) is isinstance(body, int)
    nominated = {t.strip().lower() for v in client.values(b"connection") for t in v.split(b",")}
    for name in nominated - {b"x-forwarded-for", b"x-real-ip", b"forwarded", b"host", b"x-token"}:
        client_values = set(client.values(name))
        assert not client_values & {v for n, v in request.headers if n.lower() == name}


@given(_requests())
def test_upstream_head_round_trips_through_h11(case: tuple[Location, RequestHead, BodyFraming | int]) -> None:
    """The head as RequestWriter writes it, read back by h11 (the oracle), for HTTP/1.1 and 1.0 alike."""
    loc, client, body = case
    request = rewrite(loc, client, body)
    receiver = h11.Connection(h11.SERVER)
    receiver.receive_data(RequestWriter(request).head)
    event = receiver.next_event()
    assert isinstance(event, h11.Request)
    assert (event.method, event.target, event.http_version) == (request.method, request.target, request.http_version)
    assert list(event.headers.raw_items()) == list(request.headers)


_NAMES = st.sampled_from([b"Host", b"host", b"HOST", b"Upgrade", b"X-A", b"x-a", b"Connection"])


@given(st.lists(st.tuples(_NAMES, st.binary(max_size=4)), max_size=8), _NAMES)
def test_request_head_values_are_the_same_without_the_index(headers, name) -> None:
    """A tunnel drops the look-up index of its head; every look-up answers as before."""
    head = RequestHead(b"GET", b"/", b"1.1", tuple(headers))
    wanted = [v for n, v in headers if n.lower() == name.lower()]
    assert head.values(name.lower()) == wanted
    head.drop_index()
    assert head.values(name.lower()) == wanted


def test_header_tokens_trim_blanks_and_drop_empties() -> None:
    """One reading of comma lists for Connection, Upgrade, Expect and the keep-alive rules."""
    values = [b" keep-alive ,\tUpgrade", b",, close,", b""]
    assert header_tokens(values) == [b"keep-alive", b"Upgrade", b"close"]
    assert lower_tokens(values) == {b"keep-alive", b"upgrade", b"close"}
