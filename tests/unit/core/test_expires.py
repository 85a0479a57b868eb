"""expires per answer (sans-IO): the values for a fixed Date, the status list, and the upstream's headers rewritten in place."""

from __future__ import annotations

from wstunnel.config.model import Config, Expires, Server, Source
from wstunnel.config.templates import compile_template
from wstunnel.core.expires import expires_values, with_expires
from wstunnel.core.routing import parse_target
from wstunnel.core.variables import RequestVars
from wstunnel.wire.request import ConnInfo, RequestHead

SRC = Source("test.conf", 1)
SERVER = Server(("test.example",), (), (), SRC)
CONFIG = Config("test.conf", (), (SERVER,), {}, {}, ())
DATE = b"Mon, 07 Dec 2026 21:00:00 GMT"


def rv(target: bytes = b"/") -> RequestVars:
    head = RequestHead(b"GET", target, b"1.1", ((b"Host", b"test.example"),))
    return RequestVars(
        config=CONFIG, server=SERVER, location=None, conn=ConnInfo("192.0.2.7", 40000, "192.0.2.1", 80),
        head=head, target=parse_target(head.target), host="test.example",
    )


def test_a_time_counts_from_the_answers_date() -> None:
    assert expires_values(Expires("access", 3600), 200, DATE, None, rv()) == (
        b"Mon, 07 Dec 2026 22:00:00 GMT", b"max-age=3600",
    )


def test_modified_counts_from_last_modified() -> None:
    modified = b"Mon, 07 Dec 2026 20:00:00 GMT"
    assert expires_values(Expires("modified", 7200), 200, DATE, modified, rv()) == (
        b"Mon, 07 Dec 2026 22:00:00 GMT", b"max-age=3600",
    )


def test_only_the_listed_statuses() -> None:
    assert expires_values(Expires("max", 0), 404, DATE, None, rv()) is None
    assert expires_values(Expires("max", 0), 304, DATE, None, rv()) is not None


def test_a_variable_value_that_does_not_parse_sets_nothing() -> None:
    rule = Expires("access", 0, compile_template("$arg_e", SRC, ()))
    assert expires_values(rule, 200, DATE, None, rv(b"/?e=1m")) == (b"Mon, 07 Dec 2026 21:01:00 GMT", b"max-age=60")
    assert expires_values(rule, 200, DATE, None, rv(b"/?e=soon")) is None


def test_the_upstreams_headers_are_rewritten_in_place() -> None:
    headers = [(b"Expires", b"0"), (b"Cache-Control", b"a"), (b"X", b"1"), (b"Cache-Control", b"b"), (b"Expires", b"1")]
    got = with_expires(headers, Expires("epoch", 0), 200, DATE, rv())
    assert got == [
        (b"Expires", b"0"), (b"Cache-Control", b"no-cache"), (b"X", b"1"), (b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT"),
    ]
