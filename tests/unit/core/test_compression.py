"""core.compression: nginx 1.22's gzip decision and the head that goes with it."""

from __future__ import annotations

import re

import pytest
from attrs import evolve

from wstunnel.config.model import Gzip
from wstunnel.core.compression import Deflate, accepts_gzip, msie6, plan_encoding, static_variant
from wstunnel.wire.request import RequestHead

NOW = 1_700_000_000.0
ON = Gzip(enabled=True)
HTML = [(b"Content-Type", b"text/html; charset=utf-8")]


def request(*headers: tuple[bytes, bytes], method: bytes = b"GET", version: bytes = b"1.1") -> RequestHead:
    return RequestHead(method, b"/", version, ((b"Host", b"a"), *headers))


GZ = (b"Accept-Encoding", b"gzip, deflate")


@pytest.mark.parametrize(
    "value, accepted",
    [
        (b"gzip", True),
        (b"gzip, deflate", True),
        (b"deflate,GZIP", True),
        (b"br;q=1.0, gzip;q=0.8", True),
        (b"gzip;q=0", False),
        (b"gzip;q=0.000", False),
        (b"gzip;q=1.5", False),
        (b"gzip; q=0.5", True),
        (b"gzip;  q=0", False),
        (b"gzip;Q=0.5", True),
        (b"gzip ;q=0.5", True),
        (b"gzip;q=0.0001", False),
        (b"\tgzip", False),
        (b"gzip;q=0.001", True),
        (b"x-gzip", False),
        (b"gzipped", False),
        (b"identity", False),
        (b"deflate, x-gzip, gzip", True),
    ],
)
def test_accept_encoding_is_read_as_nginx_reads_it(value: bytes, accepted: bool) -> None:
    assert accepts_gzip(value) is accepted


@pytest.mark.parametrize(
    "agent, old",
    [
        (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", True),
        (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", False),
        (b"Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", True),
        (b"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", False),
        (b"Opera/9.0 (compatible; MSIE 6.0)", False),
        (b"curl/8.0", False),
    ],
)
def test_msie6_is_nginx_s_test(agent: bytes, old: bool) -> None:
    assert msie6(agent) is old


def test_a_compressed_answer_loses_length_and_ranges_and_gets_a_weak_etag() -> None:
    headers = [*HTML, (b"Content-Length", b"100000"), (b"Accept-Ranges", b"bytes"), (b"ETag", b'"abc"')]
    encoding = plan_encoding(Gzip(enabled=True, vary=True, comp_level=5), request(GZ), 200, headers, NOW)
    assert encoding is not None
    assert encoding.headers == [*HTML, (b"ETag", b'W/"abc"'), (b"Vary", b"Accept-Encoding"), (b"Content-Encoding", b"gzip")]
    assert encoding.deflate == Deflate(5, 15, 8)


@pytest.mark.parametrize("etag, kept", [(b'W/"a"', b'W/"a"'), (b"unquoted", None), (b"W/", None)])
def test_weak_and_malformed_etags(etag: bytes, kept: bytes | None) -> None:
    encoding = plan_encoding(ON, request(GZ), 200, [*HTML, (b"ETag", etag)], NOW)
    assert encoding is not None
    assert [v for n, v in encoding.headers if n == b"ETag"] == ([] if kept is None else [kept])


def test_a_short_known_length_shrinks_the_window_as_nginx_does() -> None:
    assert _deflated(100) == Deflate(1, 9, 2)
    assert _deflated(3000) == Deflate(1, 12, 5)
    assert _deflated(16384 - 262) == Deflate(1, 15, 8)
    assert _deflated(None) == Deflate(1, 15, 8)


def _deflated(length: int | None) -> Deflate | None:
    headers = HTML if length is None else [*HTML, (b"Content-Length", str(length).encode())]
    encoding = plan_encoding(ON, request(GZ), 200, headers, NOW)
    assert encoding is not None
    return encoding.deflate


@pytest.mark.parametrize(
    "settings, status, headers, method",
    [
        (Gzip(), 200, HTML, b"GET"),
        (ON, 206, HTML, b"GET"),
        (ON, 304, HTML, b"GET"),
        (ON, 204, HTML, b"GET"),
        (ON, 101, HTML, b"GET"),
        (ON, 500, HTML, b"GET"),
        (ON, 200, [*HTML, (b"Content-Encoding", b"br")], b"GET"),
        (ON, 200, [*HTML, (b"Content-Length", b"19")], b"GET"),
        (ON, 200, [(b"Content-Type", b"text/plain")], b"GET"),
        (ON, 200, [(b"Content-Type", b"text/html; q=1")], b"GET"),
        (ON, 200, [], b"GET"),
    ],
    ids=["off", "206", "304", "204", "101", "500", "encoded", "short", "type", "params", "no-type"],
)
def test_answers_left_alone_with_no_vary(settings: Gzip, status: int, headers, method: bytes) -> None:
    vary = evolve(settings, vary=True)
    assert plan_encoding(vary, request(GZ, method=method), status, headers, NOW) is None


def test_compressible_statuses_and_types() -> None:
    for status in (200, 403, 404):
        assert plan_encoding(ON, request(GZ), status, HTML, NOW) is not None
    star = Gzip(enabled=True, types=None)
    assert plan_encoding(star, request(GZ), 200, [], NOW) is not None
    css = Gzip(enabled=True, types=frozenset({b"text/html", b"text/css"}))
    assert plan_encoding(css, request(GZ), 200, [(b"Content-Type", b"Text/CSS;charset=x")], NOW) is not None
    assert plan_encoding(ON, request(GZ), 200, [*HTML, (b"Content-Encoding", b"")], NOW) is not None
    assert plan_encoding(ON, request(GZ), 200, [*HTML, (b"Content-Length", b"20")], NOW) is not None


@pytest.mark.parametrize(
    "settings, req",
    [
        (ON, request()),
        (ON, request((b"Accept-Encoding", b"gzip;q=0"))),
        (ON, request(GZ, version=b"1.0")),
        (Gzip(enabled=True, disable_msie6=True), request(GZ, (b"User-Agent", b"Mozilla/4.0 (compatible; MSIE 6.0; X)"))),
        (Gzip(enabled=True, disable=(re.compile("curl", re.I),)), request(GZ, (b"User-Agent", b"CURL/8"))),
        (ON, request(GZ, (b"Via", b"1.1 cache"))),
    ],
    ids=["no-accept", "q0", "http10", "msie6", "disable", "via"],
)
def test_a_client_refused_gets_vary_only(settings: Gzip, req: RequestHead) -> None:
    assert plan_encoding(settings, req, 200, HTML, NOW) is None
    vary = evolve(settings, vary=True)
    assert plan_encoding(vary, req, 200, HTML, NOW) == ([*HTML, (b"Vary", b"Accept-Encoding")], None)


def test_a_head_request_gets_the_head_a_get_would() -> None:
    headers = [*HTML, (b"Content-Length", b"500")]
    assert plan_encoding(ON, request(GZ, method=b"HEAD"), 200, headers, NOW) == plan_encoding(
        ON, request(GZ), 200, headers, NOW
    )


def test_http10_is_compressed_under_gzip_http_version_1_0() -> None:
    settings = Gzip(enabled=True, http_version=b"1.0")
    assert plan_encoding(settings, request(GZ, version=b"1.0"), 200, HTML, NOW) is not None


VIA = (b"Via", b"1.1 cache")
PAST = b"Thu, 01 Jan 1970 00:00:01 GMT"
FUTURE = b"Thu, 01 Jan 2099 00:00:01 GMT"


@pytest.mark.parametrize(
    "proxied, extra, answer, compressed",
    [
        ({"any"}, (), [], True),
        ({"off", "any"}, (), [], False),
        ({"auth"}, ((b"Authorization", b"Basic x"),), [], True),
        ({"auth"}, (), [], True),
        ({"auth"}, (), [(b"ETag", b'"x"')], True),
        ({"expired"}, (), [(b"Expires", PAST)], True),
        ({"expired"}, (), [(b"Expires", FUTURE)], False),
        ({"expired"}, (), [(b"Expires", b"0")], False),
        ({"any"}, (), [(b"Expires", FUTURE)], True),
        ({"no-cache"}, (), [(b"Expires", PAST)], False),
        ({"no-cache"}, (), [(b"Cache-Control", b"max-age=0, No-Cache")], True),
        ({"no-store"}, (), [(b"Cache-Control", b"no-cache")], False),
        ({"private"}, (), [(b"Cache-Control", b"public"), (b"Cache-Control", b"private")], True),
        ({"no_last_modified"}, (), [(b"Last-Modified", PAST)], False),
        ({"no_last_modified"}, (), [], True),
        ({"no_etag"}, (), [(b"ETag", b'"x"')], False),
        ({"no_etag", "no-cache"}, (), [(b"Cache-Control", b"public")], False),
    ],
)
def test_gzip_proxied_in_nginx_s_order(proxied: set[str], extra, answer, compressed: bool) -> None:
    settings = Gzip(enabled=True, proxied=frozenset(proxied))
    encoding = plan_encoding(settings, request(GZ, VIA, *extra), 200, [*HTML, *answer], NOW)
    assert (encoding is not None) is compressed


def test_gzip_static_choices() -> None:
    get = request(GZ)
    assert static_variant(Gzip(enabled=True), get, "/a.js") is None
    assert static_variant(Gzip(static="on"), get, "/a.js") == (True, False)
    assert static_variant(Gzip(static="on"), get, "/dir/") is None
    assert static_variant(Gzip(static="on"), request(GZ, method=b"POST"), "/a.js") is None
    assert static_variant(Gzip(static="on"), request(), "/a.js") is None
    assert static_variant(Gzip(static="on", vary=True), request(), "/a.js") == (False, True)
    assert static_variant(Gzip(static="always"), request(), "/a.js") == (True, False)
