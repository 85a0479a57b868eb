"""
nginx as the oracle for plain HTTP (issue 3): one config under nginx and
wstunnel, the same raw bytes to each, and the status and framing compared.
Where wstunnel differs on purpose (doc/proxying.md, "(differs)") the test
asserts the difference.  Requests go to nginx first: it is the oracle.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from nginx_support import Response, Side, read_response, scripted_answer
from support import WAIT, ScriptedBackend, aio, listen_keepalive, read_until

CONF = """
upstream pool { server 127.0.0.1:{backend}; keepalive 2; }
server {
    listen {listen};
    large_client_header_buffers 4 1k;
    client_max_body_size 100;
    location / { proxy_pass http://127.0.0.1:{backend}; proxy_http_version 1.1; }
    location /ka2/ { proxy_pass http://127.0.0.1:{backend}; keepalive_requests 2; }
    location /redirect/ { proxy_pass http://127.0.0.1:{backend}/app/; }
    location /hide/ {
        proxy_pass http://127.0.0.1:{backend};
        proxy_hide_header X-Secret;
        proxy_pass_header Server;
    }
    location /pool/ {
        proxy_pass http://pool;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
"""

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def exchange(side: Side, data: bytes, method: bytes = b"GET", count: int = 1,
                   then_eof: bool = False) -> tuple[list[Response], bytes]:
    """Send ``data`` on one connection, read ``count`` answers, then whatever comes until the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
    try:
        writer.write(data)
        answers = [await read_response(reader, method) for _ in range(count)]
        if then_eof:
            writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), WAIT)
        return answers, rest
    finally:
        writer.close()


async def both(sides: list[Side], data: bytes, **kwargs) -> dict[str, tuple[list[Response], bytes]]:
    return {side.name: await aio(exchange(side, data, **kwargs)) for side in reversed(sides)}


def code(answer: Response) -> bytes:
    return answer.status.split(b" ")[1]


def closing(answer: Response) -> bool:
    return (answer.header(b"Connection") or b"").lower() == b"close"


# ---------------------------------------------------------------- refused heads and bodies

REFUSED = [
    pytest.param(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414", b"414", id="request-line"),
    pytest.param(b"GET /" + b"a" * 1009 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414", b"414", id="line-of-size-1"),
    # doc/proxying.md "(differs: nginx 400)": RFC 6585's 431 for a header line over the limit.
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: " + b"b" * 1100 + b"\r\n\r\n", b"400", b"431", id="header-line"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n" + b"x" * 101, b"413", b"413",
                 id="body-over-max"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n", b"400", b"400",
                 id="bad-chunk-size"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
                 b"400", b"400", id="te-and-cl"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", b"501", b"501", id="te-gzip"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"505", b"505", id="http-2.0"),
    pytest.param(b"GET / HTTP/3\r\nHost: a\r\n\r\n", b"505", b"505", id="http-3"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", b"400", b"400", id="no-host"),
    pytest.param(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", b"400", b"400", id="two-hosts"),
    pytest.param(b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", b"400", b"400", id="control-in-target"),
    pytest.param(b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", b"400", b"400", id="del-in-target"),
    # doc/proxying.md "(differs: nginx passes it)": a request-target is visible ASCII (RFC 9112 section 3.2).
    pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", b"200", b"400",
                 id="utf8-in-target"),
    pytest.param(b"get / HTTP/1.1\r\nHost: a\r\n\r\n", b"400", b"400", id="lower-case-method"),
    pytest.param(b"G3T / HTTP/1.1\r\nHost: a\r\n\r\n", b"400", b"400", id="digit-in-method"),
    pytest.param(b"M-SEARCH_X / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", b"200", b"200",
                 id="dash-and-underscore-method"),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("data, nginx_code, our_code", REFUSED)
async def test_refused_requests(twins, data, nginx_code, our_code) -> None:
    """The status, Connection: close, and the close itself; the reason phrases differ (doc/proxying.md)."""
    sides = twins.start(CONF, scripted_answer(OK))
    got = await both(sides, data)
    (n,), n_rest = got["nginx"]
    (w,), w_rest = got["wstunnel"]
    assert (code(n), code(w)) == (nginx_code, our_code)
    assert closing(n) and closing(w)
    assert n_rest == w_rest == b""


@pytest_twisted.ensureDeferred
async def test_a_request_line_and_its_crlf_filling_the_buffer_is_served(twins) -> None:
    """The boundary of "line-of-size-1" above: 1022 bytes and the CRLF fill the 1k buffer."""
    sides = twins.start(CONF, scripted_answer(OK))
    line = b"GET /" + b"a" * 1008 + b" HTTP/1.1"
    got = await both(sides, line + b"\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert len(line) == 1022
    assert {name: code(answers[0]) for name, (answers, _) in got.items()} == {"nginx": b"200", "wstunnel": b"200"}


# ---------------------------------------------------------------- framing of answers


def after_body(size: int, response: bytes):
    """A backend that answers once ``size`` body bytes arrived (nginx buffers the body first)."""
    def answer(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
        def respond(_):
            b.transport.write(response)
            b.transport.loseConnection()
        b.wait_data(size).addCallback(respond)
    return answer


@pytest_twisted.ensureDeferred
async def test_expect_100_continue(twins) -> None:
    sides = twins.start(CONF, after_body(4, OK))

    async def scenario(side: Side) -> tuple[bytes, Response]:
        reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
        try:
            writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = await read_until(reader, b"\r\n\r\n")
            writer.write(b"body")
            return interim, await read_response(reader)
        finally:
            writer.close()

    got = {side.name: await aio(scenario(side)) for side in reversed(sides)}
    assert got["nginx"][0] == got["wstunnel"][0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert got["nginx"][1].body == got["wstunnel"][1].body == b"ok"
    for side in sides:
        assert b"expect" not in side.backend.heads[0].lower()
        assert side.backend.connections[0].received == b"body"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "data, interim",
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nConnection: close\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n", True),
        (b"POST / HTTP/1.0\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody", False),
    ],
    ids=["no-body", "empty-body", "http-1.0"],
)
async def test_expect_100_continue_without_a_body_or_over_http_1_0(twins, data, interim) -> None:
    """nginx answers an HTTP/1.1 expectation as it starts on the body, even an absent one; never HTTP/1.0's."""
    sides = twins.start(CONF, after_body(len(data.partition(b"\r\n\r\n")[2]), OK))

    async def scenario(side: Side) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
        try:
            writer.write(data)
            return await asyncio.wait_for(reader.read(), WAIT)
        finally:
            writer.close()

    got = {side.name: await aio(scenario(side)) for side in reversed(sides)}
    for answer in got.values():
        assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n") is interim
        assert answer.endswith(b"\r\n\r\nok")


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("method, answer", [
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
    (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
    (b"GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"),
], ids=["head", "204", "304"])
async def test_answers_without_a_body_leave_the_connection_usable(twins, method, answer) -> None:
    """The next answer on the connection starts right after the head: no body bytes between."""
    sides = twins.start(CONF, scripted_answer(answer))
    data = method + b" / HTTP/1.1\r\nHost: a\r\n\r\n"
    got = await both(sides, data + data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
                     method=method, count=2)
    for name, (answers, rest) in got.items():
        assert [code(a) for a in answers] == [answer[9:12]] * 2, name
        assert [a.body for a in answers] == [b"", b""] and rest == b"", name
    assert got["nginx"][0][0].comparable() == got["wstunnel"][0][0].comparable()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n",
], ids=["length", "chunked"])
async def test_an_upstream_body_cut_short_reaches_the_client_cut_short(twins, answer) -> None:
    """Both relay what came and close: no final chunk, never a complete-looking answer."""
    sides = twins.start(CONF, scripted_answer(answer))
    raw = {}
    for side in reversed(sides):
        reader, writer = await aio(asyncio.open_connection("127.0.0.1", side.port))
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = await aio(reader.read())
        writer.close()
        raw[side.name] = data.split(b"\r\n\r\n", 1)[1]
    assert raw["wstunnel"] == raw["nginx"]
    assert raw["nginx"] in (b"partial", b"7\r\npartial\r\n")


@pytest_twisted.ensureDeferred
async def test_bytes_after_content_length_are_dropped(twins) -> None:
    sides = twins.start(CONF, scripted_answer(OK + b"EXTRA"))
    data = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    got = await both(sides, data + data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"), count=2)
    for name, (answers, rest) in got.items():
        assert [a.body for a in answers] == [b"ok", b"ok"] and rest == b"", name


@pytest_twisted.ensureDeferred
async def test_keepalive_requests_2(twins) -> None:
    sides = twins.start(CONF, scripted_answer(OK))
    data = b"GET /ka2/ HTTP/1.1\r\nHost: a\r\n\r\n"
    got = await both(sides, data * 2, count=2)
    for name, (answers, rest) in got.items():
        assert [a.header(b"Connection") for a in answers] == [b"keep-alive", b"close"], name
        assert rest == b"", name


@pytest_twisted.ensureDeferred
async def test_http_1_0_gets_a_chunked_upstream_body_delimited_by_the_close(twins) -> None:
    sides = twins.start(CONF, scripted_answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
    got = await both(sides, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    for name, ((answer,), rest) in got.items():
        assert (answer.chunked, answer.header(b"Content-Length"), answer.body) == (False, None, b"hello"), name
        assert closing(answer), name


@pytest_twisted.ensureDeferred
async def test_a_header_name_nginx_calls_invalid_is_ignored(twins) -> None:
    """
    ``_`` or ``.`` in a name: nginx 1.22 neither forwards the header nor
    reads it; a CGI or WSGI backend would take X_Real_IP for X-Real-IP.
    """
    conf = CONF.replace("proxy_http_version 1.1; }", "proxy_http_version 1.1; proxy_set_header X-Seen $http_x_real_ip; }")
    sides = twins.start(conf, scripted_answer(OK))
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX_Real_IP: 6.6.6.6\r\nX.A: 1\r\nX-B: 2\r\nConnection: close\r\n\r\n"
    got = await both(sides, data)
    for side in sides:
        assert code(got[side.name][0][0]) == b"200", side.name
        names = {name.lower() for name, _ in side.head(0)[1]}
        assert b"x-b" in names and not names & {b"x_real_ip", b"x.a", b"x-seen"}, side.name


def request_line_answer(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
    line = head.split(b"\r\n", 1)[0]
    b.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(line), line))
    b.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_pipelined_requests_are_answered_in_order(twins) -> None:
    sides = twins.start(CONF, request_line_answer)
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(1, 4))
    got = await both(sides, data + b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", count=4)
    for name, (answers, rest) in got.items():
        assert [a.body.split(b" ")[1] for a in answers] == [b"/1", b"/2", b"/3", b"/last"], name


@pytest_twisted.ensureDeferred
async def test_a_request_proposing_a_switch_it_does_not_get_closes_after_its_answer(twins) -> None:
    """
    doc/proxying.md "(differs: nginx reads on)": h2c is never offered upstream, and the bytes after
    a refused switch are not read as a request (RFC 9931), so the second request is not answered.
    """
    sides = twins.start(CONF, request_line_answer)
    data = (b"GET /1 HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    got = {side.name: await aio(exchange(side, data, count=2 if side.name == "nginx" else 1)) for side in reversed(sides)}
    assert [a.body.split(b" ")[1] for a in got["nginx"][0]] == [b"/1", b"/2"]
    ((answer,), rest) = got["wstunnel"]
    assert answer.body.split(b" ")[1] == b"/1" and closing(answer) and rest == b""


# ---------------------------------------------------------------- response headers


def redirect_answer(b: ScriptedBackend, head: bytes, rest: bytes) -> None:
    port = b.transport.getHost().port
    b.transport.write(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/app/next?x=1\r\n"
                      b"Content-Length: 0\r\n\r\n" % port)
    b.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_proxy_redirect_default_rewrites_location(twins) -> None:
    sides = twins.start(CONF, redirect_answer)
    got = await both(sides, b"GET /redirect/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    locations = {side.name: got[side.name][0][0].header(b"Location").replace(b"%d" % side.port, b"PORT")
                 for side in sides}
    # The upstream's own URL becomes the location's; both then make it absolute with Host and port.
    assert locations == {"nginx": b"http://a:PORT/redirect/next?x=1", "wstunnel": b"http://a:PORT/redirect/next?x=1"}


@pytest_twisted.ensureDeferred
async def test_proxy_hide_header_and_proxy_pass_header(twins) -> None:
    sides = twins.start(CONF, scripted_answer(
        b"HTTP/1.1 200 OK\r\nServer: app/1\r\nX-Secret: s\r\nX-Accel-Buffering: no\r\nX-Kept: k\r\n"
        b"Content-Length: 2\r\n\r\nok"))
    got = await both(sides, b"GET /hide/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    seen = {name: sorted((n.lower(), v) for n, v in answers[0].headers if n.lower() != b"date")
            for name, (answers, _) in got.items()}
    assert seen["wstunnel"] == seen["nginx"]
    assert (b"server", b"app/1") in seen["nginx"] and (b"x-kept", b"k") in seen["nginx"]
    assert not any(n in (b"x-secret", b"x-accel-buffering") for n, _ in seen["nginx"])


# ---------------------------------------------------------------- upstream keep-alive


@pytest_twisted.ensureDeferred
async def test_upstream_keepalive_reuses_one_connection(twins) -> None:
    factory, port = listen_keepalive(lambda *request: OK)
    try:
        sides = twins.start(CONF, backend_port=port.getHost().port)
        seen = {}
        for side in reversed(sides):
            factory.connections, factory.requests = [], []
            for _ in range(2):  # two client connections, one after the other
                await both([side], b"GET /pool/a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            seen[side.name] = [(number, head.split(b"\r\n", 1)[0]) for number, head, _ in factory.requests]
        assert seen["nginx"] == seen["wstunnel"] == [(1, b"GET /pool/a HTTP/1.1")] * 2
    finally:
        await port.stopListening()


# ---------------------------------------------------------------- CONNECT and TRACE

METHODS_CONF = """
log_format methods '[$request]|$status|$request_length|$request_uri|$uri|$args|$host|$http_x_a';
server {
    listen {listen};
    access_log {log} methods;
    location / { proxy_pass http://127.0.0.1:{backend}; proxy_http_version 1.1; }
}
"""
BARRIER = b"GET /barrier HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

# nginx 1.22 refuses a target in authority form as a bad request line (400, nothing parsed), and CONNECT
# or TRACE with a path or URL once the head is read (405); neither reads the body or keeps the connection.
NOT_ALLOWED = [
    pytest.param(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nX-A: 1\r\n\r\n", b"400",
                 "[CONNECT h:443 HTTP/1.1]|400|0|-|-|-||-", id="connect-authority"),
    pytest.param(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nContent-Length: 4\r\n\r\nbody", b"400",
                 "[CONNECT h:443 HTTP/1.1]|400|0|-|-|-||-", id="connect-authority-body"),
    pytest.param(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", b"400",
                 "[CONNECT h:443 HTTP/1.1]|400|0|-|-|-||-", id="connect-authority-before-te"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", b"400",
                 "[OPTIONS * HTTP/1.1]|400|0|-|-|-||-", id="options-asterisk"),
    pytest.param(b"CONNECT / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n", b"405",
                 "[CONNECT / HTTP/1.1]|405|39|/|/|-|a|1", id="connect-path"),
    pytest.param(b"CONNECT /x?y=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nContent-Length: 4\r\n\r\nbody", b"405",
                 "[CONNECT /x?y=1 HTTP/1.1]|405|63|/x?y=1|/x|y=1|a|1", id="connect-path-body"),
    pytest.param(b"CONNECT / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", b"405",
                 "[CONNECT / HTTP/1.1]|405|55|/|/|-|a|-", id="connect-keep-alive"),
    pytest.param(b"CONNECT http://b:443/z HTTP/1.1\r\nHost: a\r\n\r\n", b"405",
                 "[CONNECT http://b:443/z HTTP/1.1]|405|44|/z|/z|-|b|-", id="connect-url"),
    pytest.param(b"TRACE /t?q HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n", b"405",
                 "[TRACE /t?q HTTP/1.1]|405|40|/t?q|/t|q|a|1", id="trace"),
    pytest.param(b"TRACE / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody", b"405",
                 "[TRACE / HTTP/1.1]|405|48|/|/|-|a|-", id="trace-body"),
    pytest.param(b"TRACE / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n", b"405",
                 "[TRACE / HTTP/1.1]|405|57|/|/|-|a|-", id="trace-chunked"),
    pytest.param(b"TRACE / HTTP/1.0\r\n\r\n", b"405", "[TRACE / HTTP/1.0]|405|20|/|/|-||-", id="trace-1.0"),
    pytest.param(b"TRACE / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", b"501",
                 "[TRACE / HTTP/1.1]|501|54|/|/|-|a|-", id="trace-te-gzip-first"),
]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("data, status, logged", NOT_ALLOWED)
async def test_connect_and_trace_are_refused_without_the_upstream(twins, data, status, logged) -> None:
    """
    Same status, Connection: close and close, same access-log line, and nothing upstream: the
    barrier request on a second connection is the first and only one each backend sees.
    """
    sides = twins.start(METHODS_CONF, scripted_answer(OK))
    got = await both(sides, data + b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    lines = {}
    for side in sides:
        (answer,), rest = got[side.name]
        assert (code(answer), closing(answer), rest) == (status, True, b""), side.name
        (barrier,), _ = await aio(exchange(side, BARRIER))
        assert code(barrier) == b"200", side.name
        assert [line for line, _ in side.heads()] == [b"GET /barrier HTTP/1.1"], side.name
        lines[side.name] = (await side.log.wait_for(2))[0]
    # doc/configuration.md, log_format: an empty value ($host without Host or server_name) is "-" in ours.
    assert lines == {"nginx": logged, "wstunnel": logged.replace("||", "|-|")}
