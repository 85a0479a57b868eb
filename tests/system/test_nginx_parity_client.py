"""
nginx 1.22 as the oracle for three client-side answers (issue 16): bytes
that cannot begin a request line get a 400 at once (not a wait for a whole
head until client_header_timeout), a 502 for an oversized or invalid
upstream head keeps the client connection, and the ``Upgrade`` header of an
upstream's 426 reaches the client.  Requests go to nginx first.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from nginx_support import Response, Side, ask, read_response
from support import WAIT, ScriptedBackend, aio

CONF = """
server {
    listen {listen};
    client_header_timeout 60s;
    location / { proxy_pass http://127.0.0.1:{backend}; }
}
"""

ANSWERS = {
    b"/big": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 10000 + b"\r\nContent-Length: 2\r\n\r\nok",
    b"/bad": b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 2\r\n\r\nok",
    b"/426": b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.2, HTTP/1.1\r\nConnection: Upgrade\r\n"
             b"Content-Length: 2\r\n\r\nno",
}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def by_path(backend: ScriptedBackend, head: bytes, rest: bytes) -> None:
    backend.transport.write(ANSWERS.get(head.split(b" ")[1], OK))
    backend.transport.loseConnection()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode()


async def session(side: Side, steps: list[bytes]) -> tuple[list[Response], bytes]:
    """Each step sent and answered in turn on one connection; then what comes until the close (bounded by WAIT)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
    try:
        answers = []
        for step in steps:
            writer.write(step)
            answers.append(await read_response(reader))
        rest = await asyncio.wait_for(reader.read(), WAIT)
        return answers, rest
    finally:
        writer.close()


async def keep_going(side: Side, first: bytes) -> list[Response]:
    """``first`` answered, then a plain GET on the same connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", side.port)
    try:
        answers = []
        for step in (first, get("/next")):
            writer.write(step)
            answers.append(await read_response(reader))
        return answers
    finally:
        writer.close()


def code(answer: Response) -> bytes:
    return answer.status.split(b" ")[1]


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([get("/"), b"\x81\x85abcd"], id="websocket-frame-after-a-request"),
        pytest.param([b"\x16\x03\x01\x00"], id="tls-hello"),
        pytest.param([b"ge"], id="lower-case"),
        pytest.param([b"GeT"], id="lower-case-inside"),
        pytest.param([b" GET"], id="leading-space"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bytes_that_cannot_begin_a_request_line_are_refused_at_once(twins, steps: list[bytes]) -> None:
    sides = twins.start(CONF, by_path)
    for side in reversed(sides):
        answers, rest = await aio(session(side, steps))
        assert [code(a) for a in answers] == [b"200"] * (len(steps) - 1) + [b"400"], side.name
        assert answers[-1].header(b"Connection") == b"close" and rest == b"", side.name


@pytest.mark.parametrize("path", ["/big", "/bad"])
@pytest_twisted.ensureDeferred
async def test_a_502_for_a_bad_upstream_head_keeps_the_client_connection(twins, path: str) -> None:
    sides = twins.start(CONF, by_path)
    for side in reversed(sides):
        first, then = await aio(keep_going(side, get(path)))
        assert code(first) == b"502" and first.header(b"Connection") == b"keep-alive", side.name
        assert code(then) == b"200", side.name


@pytest_twisted.ensureDeferred
async def test_the_upgrade_header_of_a_426_reaches_the_client(twins) -> None:
    sides = twins.start(CONF, by_path)
    for side in reversed(sides):
        answer = await aio(ask(side.port, get("/426")))
        assert code(answer) == b"426" and answer.header(b"Upgrade") == b"TLS/1.2, HTTP/1.1", side.name
        assert answer.body == b"no", side.name
