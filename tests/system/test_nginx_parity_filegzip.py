"""
nginx as the oracle for the answer-shaping directives on files (issue 14):
gzip by type and size, gzip_static on and always with and without
Accept-Encoding, Vary, the weakened ETag and the dropped Content-Length,
a Range on a file gzip compresses, expires on files (``modified`` from the
file's time), a lone .gz sibling, and a file under limit_rate arriving whole.  One document
root made here, one config under nginx 1.22 and wstunnel.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest_twisted

from nginx_support import Response, ask_both, request

CONF = """
server {
    listen {listen};
    include /etc/nginx/mime.types;
    root {root};
    location /z/ {
        gzip on;
        gzip_types text/plain text/css;
        gzip_min_length 100;
        gzip_vary on;
    }
    location /s/ { gzip_static on; gzip_vary on; }
    location /a/ { gzip_static always; }
    location /sz/ { gzip_static on; gzip on; gzip_types text/plain; gzip_vary on; }
    location /e/ { expires modified +1h; }
    location /m/ { expires max; }
    location /x/ { expires epoch; etag off; }
    location /d/ { expires 1h; }
    location /r/ { limit_rate 20k; limit_rate_after 10k; }
}
"""

MTIME = 1_700_000_000
TEXT = b"".join(b"line %03d of a compressible file\n" % n for n in range(200))
GZ_MTIME = MTIME + 60
COMPARED = (
    b"content-type", b"content-length", b"last-modified", b"etag", b"content-range", b"accept-ranges",
    b"content-encoding", b"vary", b"cache-control", b"transfer-encoding",
)
GZIP = "Accept-Encoding: gzip\r\n"
TAG = f'If-None-Match: "{MTIME:x}-{len(TEXT):x}"\r\n'


def document_root(base: Path) -> Path:
    root = base / "www"
    for name in ("z", "s", "a", "sz", "e", "m", "x", "d", "r"):
        (root / name).mkdir(parents=True)
    contents = {
        "z/big.txt": TEXT,
        "z/small.txt": TEXT[:99],
        "z/style.css": TEXT,
        "z/page.html": TEXT,
        "z/data.bin": TEXT,
        "s/t.txt": TEXT,
        "s/t.txt.gz": gzip.compress(TEXT, mtime=0),
        "s/plain.txt": TEXT,
        "a/t.txt": TEXT,
        "a/t.txt.gz": gzip.compress(TEXT, mtime=0),
        "s/lone.txt.gz": gzip.compress(TEXT, mtime=0),
        "sz/t.txt": TEXT,
        "sz/t.txt.gz": gzip.compress(TEXT, mtime=0),
        "e/t.txt": TEXT,
        "m/t.txt": TEXT,
        "x/t.txt": TEXT,
        "d/t.txt": TEXT,
        "r/big.bin": os.urandom(48_000),
    }
    for name, data in contents.items():
        path = root / name
        path.write_bytes(data)
        when = GZ_MTIME if name.endswith(".gz") else MTIME
        os.utime(path, (when, when))
    return root


def get(path: str, extra: str = "", method: str = "GET", version: str = "1.1") -> bytes:
    raw = request(path, host="files.test", method=method, extra=extra)
    return raw.replace(b" HTTP/1.1\r\n", b" HTTP/%s\r\n" % version.encode(), 1)


CASES = [
    # gzip on files: by type, by size, by Accept-Encoding, HEAD, HTTP/1.0, ranges, conditionals.
    get("/z/big.txt", GZIP),
    get("/z/big.txt"),
    get("/z/big.txt", "Accept-Encoding: gzip;q=0\r\n"),
    get("/z/small.txt", GZIP),
    get("/z/style.css", GZIP),
    get("/z/page.html", GZIP),
    get("/z/data.bin", GZIP),
    get("/z/big.txt", GZIP, method="HEAD"),
    get("/z/big.txt", GZIP, version="1.0"),
    get("/z/big.txt", GZIP + "Range: bytes=0-9\r\n"),
    get("/z/big.txt", "Range: bytes=0-9\r\n"),
    get("/z/big.txt", GZIP + TAG),
    # gzip_static on / always.
    get("/s/t.txt", GZIP),
    get("/s/t.txt"),
    get("/s/t.txt", GZIP, method="HEAD"),
    get("/s/t.txt", GZIP + "Range: bytes=0-9\r\n"),
    get("/s/plain.txt", GZIP),
    # Only the sibling exists: served to a client that takes gzip (the 404 to one that does not: below).
    get("/s/lone.txt", GZIP),
    get("/a/t.txt"),
    get("/a/t.txt", GZIP),
    get("/sz/t.txt", GZIP),
    get("/sz/t.txt"),
    # expires on files.
    get("/e/t.txt"),
    get("/e/t.txt", TAG),
    get("/m/t.txt"),
    get("/x/t.txt"),
    get("/d/t.txt"),
    # limit_rate: the bytes, not the time.
    get("/r/big.bin"),
    get("/r/big.bin", "Range: bytes=30000-39999\r\n"),
]


def seen(response: Response) -> tuple:
    """What is compared: the status, the headers that matter, the body as the client reads it."""
    headers = {n.lower(): v for n, v in response.headers}
    body = response.body
    if headers.get(b"content-encoding") == b"gzip" and body and response.status.split()[1] == b"200":
        body = gzip.decompress(body)
        headers.pop(b"content-length", None)  # the .gz sibling's length is compared by case below
    compared = {n: headers.get(n) for n in COMPARED}
    return response.status.split()[1], compared, body, b"expires" in headers


@pytest_twisted.ensureDeferred
async def test_shaping_directives_on_files_as_nginx(twins, tmp_path: Path) -> None:
    root = document_root(tmp_path / "files")
    sides = twins.start(CONF.replace("{root}", str(root)))
    for raw in CASES:
        answers = await ask_both(sides, raw)
        expected, got = seen(answers["nginx"]), seen(answers["wstunnel"])
        assert got == expected, raw


@pytest_twisted.ensureDeferred
async def test_static_sibling_and_timed_expires_values(twins, tmp_path: Path) -> None:
    """The .gz sibling's own length and time; ``expires modified`` counted from the file's time."""
    root = document_root(tmp_path / "files")
    sides = twins.start(CONF.replace("{root}", str(root)))
    for raw, name in ((get("/s/t.txt", GZIP), b"content-length"), (get("/e/t.txt"), b"expires"),
                      (get("/m/t.txt"), b"expires"), (get("/x/t.txt"), b"expires")):
        answers = await ask_both(sides, raw)
        assert answers["wstunnel"].header(name) == answers["nginx"].header(name) is not None, raw
    answers = await ask_both(sides, get("/s/lone.txt"))
    assert [answers[side].status.split()[1] for side in ("nginx", "wstunnel")] == [b"404", b"404"]
    sibling = (root / "s" / "t.txt.gz").stat().st_size
    answers = await ask_both(sides, get("/s/t.txt", GZIP))
    assert answers["wstunnel"].header(b"content-length") == b"%d" % sibling
    assert answers["wstunnel"].header(b"etag") == b'"%x-%x"' % (GZ_MTIME, sibling)
