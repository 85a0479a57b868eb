"""
core.filereply: the answer for one file as nginx's not-modified and range
filters give it (the same rows run against real nginx in
tests/system/test_nginx_parity_files.py); here the edges that need no
server: the header values, the order of the checks, the range arithmetic.
"""

from __future__ import annotations

import pytest

from wstunnel.config.model import FileSettings
from wstunnel.core.filereply import content_type, etag, file_reply
from wstunnel.wire.request import RequestHead

MTIME, SIZE = 1_700_000_000, 12
TAG = b'"6553f100-c"'
DATE = b"Tue, 14 Nov 2023 22:13:20 GMT"
FILES = FileSettings()


def reply(*headers: tuple[bytes, bytes], files: FileSettings = FILES, size: int = SIZE):
    head = RequestHead(b"GET", b"/f", b"1.1", ((b"Host", b"h"), *headers))
    return file_reply(head, files, size, MTIME, b"text/plain", lambda: b"0000000042")


def test_a_whole_file_has_nginx_headers() -> None:
    answer = reply()
    assert answer.status == 200 and answer.parts == ((b"", 0, SIZE),)
    assert answer.headers == (
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"12"),
        (b"Last-Modified", DATE),
        (b"ETag", TAG),
        (b"Accept-Ranges", b"bytes"),
    )
    assert etag(SIZE, MTIME) == TAG


def test_a_304_keeps_only_the_validators() -> None:
    answer = reply((b"If-None-Match", TAG))
    assert answer.status == 304 and answer.parts == ()
    assert answer.headers == ((b"Last-Modified", DATE), (b"ETag", TAG))


@pytest.mark.parametrize(
    "headers, status",
    [
        (((b"If-Modified-Since", DATE),), 304),
        (((b"If-Modified-Since", b"Tue, 14 Nov 2023 22:13:21 GMT"),), 200),
        (((b"If-Modified-Since", DATE), (b"If-None-Match", b'"other"')), 200),
        (((b"If-Modified-Since", b"Tue, 14 Nov 2023 22:13:19 GMT"), (b"If-None-Match", TAG)), 200),
        (((b"If-None-Match", b'W/' + TAG),), 304),
        (((b"If-None-Match", b"*"),), 304),
        (((b"If-Match", b'W/' + TAG),), 412),
        (((b"If-Match", TAG),), 200),
        (((b"If-Unmodified-Since", b"nonsense"),), 412),
        (((b"If-Unmodified-Since", b"Tue, 14 Nov 2023 22:13:21 GMT"), (b"If-None-Match", TAG)), 304),
        (((b"If-Match", b'"x"'), (b"If-None-Match", TAG)), 412),
    ],
)
def test_conditionals_in_nginx_order(headers, status: int) -> None:
    assert reply(*headers).status == status


def test_if_modified_since_modes() -> None:
    later = (b"If-Modified-Since", b"Tue, 14 Nov 2023 22:13:21 GMT")
    assert reply(later, files=FileSettings(if_modified_since="before")).status == 304
    assert reply((b"If-Modified-Since", DATE), files=FileSettings(if_modified_since="off")).status == 200


def test_etag_off_sends_none_and_never_matches_a_tag() -> None:
    files = FileSettings(etag=False)
    assert b"ETag" not in dict(reply(files=files).headers)
    assert reply((b"If-None-Match", TAG), files=files).status == 200
    assert reply((b"If-Match", TAG), files=files).status == 412


@pytest.mark.parametrize(
    "spec, status, parts, content_range",
    [
        (b"bytes=0-4", 206, ((b"", 0, 5),), b"bytes 0-4/12"),
        (b"bytes=6-", 206, ((b"", 6, 6),), b"bytes 6-11/12"),
        (b"bytes=-5", 206, ((b"", 7, 5),), b"bytes 7-11/12"),
        (b"bytes=-50", 206, ((b"", 0, 12),), b"bytes 0-11/12"),
        (b"bytes=3-100", 206, ((b"", 3, 9),), b"bytes 3-11/12"),
        (b"bytes= 1 - 2 ", 206, ((b"", 1, 2),), b"bytes 1-2/12"),
        (b"bytes=100-", 416, (), b"bytes */12"),
        (b"bytes=5-3", 416, (), b"bytes */12"),
        (b"bytes=x", 416, (), b"bytes */12"),
        (b"bytes=0-8,2-10", 200, ((b"", 0, 12),), None),
        (b"items=0-1", 200, ((b"", 0, 12),), None),
    ],
)
def test_ranges(spec: bytes, status: int, parts, content_range) -> None:
    answer = reply((b"Range", spec))
    assert (answer.status, answer.parts, dict(answer.headers).get(b"Content-Range")) == (status, parts, content_range)


def test_a_range_of_an_empty_file_is_the_whole_file() -> None:
    assert reply((b"Range", b"bytes=0-0"), size=0).status == 200


def test_several_ranges_are_multipart_byteranges() -> None:
    answer = reply((b"Range", b"bytes=0-1,4-6"))
    headers = dict(answer.headers)
    assert answer.status == 206 and headers[b"Content-Type"] == b"multipart/byteranges; boundary=0000000042"
    assert answer.parts == (
        (b"\r\n--0000000042\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/12\r\n\r\n", 0, 2),
        (b"\r\n--0000000042\r\nContent-Type: text/plain\r\nContent-Range: bytes 4-6/12\r\n\r\n", 4, 3),
    )
    assert answer.trailer == b"\r\n--0000000042--\r\n"
    body = sum(len(p) + n for p, _, n in answer.parts) + len(answer.trailer)
    assert int(headers[b"Content-Length"]) == body


@pytest.mark.parametrize(
    "if_range, status",
    [(TAG, 206), (b'"stale"', 200), (DATE, 206), (b"Tue, 14 Nov 2023 22:13:21 GMT", 200)],
)
def test_if_range(if_range: bytes, status: int) -> None:
    assert reply((b"Range", b"bytes=0-1"), (b"If-Range", if_range)).status == status


@pytest.mark.parametrize(
    "path, kind",
    [("/a/b.CSS", b"text/css"), ("/a.b/c", b"a/default"), ("/x.tar.gz", b"application/gzip"), ("/y.", b"a/default")],
)
def test_content_type_by_the_last_extension(path: str, kind: bytes) -> None:
    files = FileSettings(types={"css": "text/css", "gz": "application/gzip"}, default_type="a/default")
    assert content_type(path, files) == kind
