"""
nginx as the oracle for serving files (issue 14): one document root made
here, one config served by nginx 1.22 and by wstunnel, and every answer
compared: status, body, Content-Type, Content-Length, Last-Modified, ETag,
Content-Range, Accept-Ranges and the Location of the directory's 301.
Conditional and range requests, index, try_files with a proxied fallback,
alias (prefix and regex), internal locations, autoindex and the traversal
cases are each one row.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest_twisted

from nginx_support import Response, ask_both, request

FILES = """
server {
    listen {listen};
    include /etc/nginx/mime.types;
    root {root};
    index index.html;
    location /al/ { alias {other}/; }
    location ~ ^/re/(.+)$ { alias {other}/$1; }
    location /spa/ { try_files $uri $uri/ /spa/index.html; }
    location /try/ { try_files $uri @back; }
    location @back { proxy_http_version 1.1; proxy_pass http://127.0.0.1:{backend}; }
    location /code/ { try_files $uri =404; }
    location /in/ { internal; }
    location /go/ { try_files /nothing /in/secret.txt; }
    location /auto/ { autoindex on; }
    location /noetag/ { etag off; }
    location /before/ { if_modified_since before; }
}
"""

COMPARED = (b"content-type", b"content-length", b"last-modified", b"etag", b"content-range", b"accept-ranges")
MTIME = 1_700_000_000
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"


def document_root(base: Path) -> tuple[Path, Path]:
    root, other, outside = base / "www", base / "other", base / "outside"
    for folder in (root / "dir", root / "empty", root / "spa", root / "try", root / "code", root / "in",
                   root / "auto" / "sub", root / "noetag", root / "before", other, outside):
        folder.mkdir(parents=True)
    contents = {
        root / "a.txt": b"hello world\n",
        root / "style.css": b"body { color: red }\n",
        root / "page.html": b"<p>page</p>\n",
        root / "data.bin": os.urandom(70_000),
        root / "dir" / "index.html": b"dir index\n",
        root / "spa" / "index.html": b"the app\n",
        root / "try" / "here.txt": b"here\n",
        root / "in" / "secret.txt": b"secret\n",
        root / "auto" / "b file&<x>.txt": b"b\n",
        root / "auto" / "a.js": b"a\n",
        root / "auto" / ".hidden": b"h\n",
        root / "noetag" / "n.txt": b"no etag\n",
        root / "before" / "b.txt": b"before\n",
        root / "noext": b"no extension\n",
        other / "o.txt": b"other\n",
        outside / "out.txt": b"outside the root\n",
    }
    for path, data in contents.items():
        path.write_bytes(data)
    (root / "link.txt").symlink_to(outside / "out.txt")
    for path in (*contents, root / "auto" / "sub"):
        os.utime(path, (MTIME, MTIME))
    return root, other


def get(path: str, extra: str = "", method: str = "GET") -> bytes:
    return request(path, host="files.test", method=method, extra=extra)


CASES = [
    get("/a.txt"),
    get("/a.txt", method="HEAD"),
    get("/style.css"),
    get("/page.html"),
    get("/data.bin"),
    get("/noext"),
    get("/"),
    get("/dir"),
    get("/dir?x=1"),
    get("/dir/"),
    get("/empty/"),
    get("/missing.txt"),
    get("/al/o.txt"),
    get("/re/o.txt"),
    get("/spa/deep/link"),
    get("/spa/"),
    get("/try/here.txt"),
    get("/try/elsewhere?q=1"),
    get("/code/nothing"),
    get("/in/secret.txt"),
    get("/go/x"),
    get("/auto/"),
    get("/link.txt"),
    get("/a.txt", method="POST"),
    get("/a.txt", method="DELETE"),
    # Conditional requests.
    get("/a.txt", f"If-Modified-Since: {LAST_MODIFIED}\r\n"),
    get("/a.txt", "If-Modified-Since: Tue, 14 Nov 2023 22:13:19 GMT\r\n"),
    get("/a.txt", "If-Modified-Since: Tue, 14 Nov 2023 22:13:21 GMT\r\n"),
    get("/before/b.txt", "If-Modified-Since: Tue, 14 Nov 2023 22:13:21 GMT\r\n"),
    get("/a.txt", "If-Modified-Since: garbage\r\n"),
    get("/a.txt", 'If-None-Match: "6553f100-c"\r\n'),
    get("/a.txt", 'If-None-Match: W/"6553f100-c"\r\n'),
    get("/a.txt", 'If-None-Match: "x", "6553f100-c"\r\n'),
    get("/a.txt", "If-None-Match: *\r\n"),
    get("/a.txt", 'If-None-Match: "other"\r\n'),
    get("/a.txt", 'If-Match: "other"\r\n'),
    get("/a.txt", 'If-Match: "6553f100-c"\r\n'),
    get("/a.txt", "If-Unmodified-Since: Tue, 14 Nov 2023 22:13:19 GMT\r\n"),
    get("/a.txt", f"If-Unmodified-Since: {LAST_MODIFIED}\r\n"),
    get("/noetag/n.txt"),
    get("/noetag/n.txt", "If-None-Match: *\r\n"),
    get("/noetag/n.txt", "If-Match: *\r\n"),
    # Ranges.
    get("/a.txt", "Range: bytes=0-4\r\n"),
    get("/a.txt", "Range: bytes=6-\r\n"),
    get("/a.txt", "Range: bytes=-5\r\n"),
    get("/a.txt", "Range: bytes=-50\r\n"),
    get("/a.txt", "Range: bytes=3-100\r\n"),
    get("/a.txt", "Range: bytes=100-\r\n"),
    get("/a.txt", "Range: bytes=5-3\r\n"),
    get("/a.txt", "Range: bytes=x\r\n"),
    get("/a.txt", "Range: items=0-1\r\n"),
    get("/a.txt", "Range: bytes=0-1,4-6\r\n"),
    get("/a.txt", "Range: bytes=0-8,2-10\r\n"),
    get("/data.bin", "Range: bytes=65000-65999\r\n"),
    get("/a.txt", 'Range: bytes=0-1\r\nIf-Range: "6553f100-c"\r\n'),
    get("/a.txt", 'Range: bytes=0-1\r\nIf-Range: "stale"\r\n'),
    get("/a.txt", f"Range: bytes=0-1\r\nIf-Range: {LAST_MODIFIED}\r\n"),
    get("/a.txt", "Range: bytes=0-1\r\nIf-Range: Tue, 14 Nov 2023 22:13:19 GMT\r\n"),
    get("/a.txt", "Range: bytes=0-1\r\n", method="HEAD"),
    # Traversal, encoded slashes, NUL.
    get("/../a.txt"),
    get("/%2e%2e/a.txt"),
    get("/dir/%2e%2e/a.txt"),
    get("/dir%2Findex.html"),
    get("/a.txt%00.html"),
]


def seen(response: Response, port: int) -> tuple:
    """What is compared; the proxy's own port, name and multipart boundary made neutral."""
    headers = {n.lower(): v for n, v in response.headers}
    body = response.body.replace(b"nginx/1.22.1", b"wstunnel").replace(b"nginx", b"wstunnel")
    body = body.replace(b"405 Method Not Allowed", b"405 Not Allowed")  # wstunnel's reason is RFC 9110's
    kind = headers.get(b"content-type", b"")
    boundary = re.search(rb"boundary=(\S+)", kind)
    if boundary is not None:
        body = body.replace(boundary.group(1), b"BOUNDARY")
        headers[b"content-type"] = kind.replace(boundary.group(1), b"BOUNDARY")
        headers.pop(b"content-length")
    location = headers.get(b"location")
    if location is not None:
        location = location.replace(b":%d" % port, b":PORT")
    if response.chunked or int(response.status.split()[1]) >= 300:
        headers.pop(b"content-length", None)  # a page naming the server, or no length at all
    return (response.status.split()[1], location, {n: headers.get(n) for n in COMPARED}, body)


@pytest_twisted.ensureDeferred
async def test_files_are_answered_as_nginx_answers_them(twins, tmp_path: Path) -> None:
    root, other = document_root(tmp_path / "files")
    conf = FILES.replace("{root}", str(root)).replace("{other}", str(other))
    sides = twins.start(conf)
    ports = {side.name: side.port for side in sides}
    statuses = []
    for raw in CASES:
        answers = await ask_both(sides, raw)
        expected = seen(answers["nginx"], ports["nginx"])
        got = seen(answers["wstunnel"], ports["wstunnel"])
        if raw.startswith(b"GET /auto/ "):
            # nginx sends the listing chunked, wstunnel with its length.
            expected[2].pop(b"content-length", None), got[2].pop(b"content-length", None)
        assert got == expected, raw
        statuses.append(int(expected[0]))
    assert 206 in statuses and 304 in statuses and 412 in statuses and 416 in statuses and 301 in statuses
    heads = {side.name: side.backend.heads for side in sides}
    lines = {name: [h.split(b"\r\n")[0] for h in each] for name, each in heads.items()}
    assert lines["wstunnel"] == lines["nginx"] == [b"GET /try/elsewhere?q=1 HTTP/1.1"]


def test_document_root_helper_sets_the_times(tmp_path: Path) -> None:
    root, _ = document_root(tmp_path)
    assert int((root / "a.txt").stat().st_mtime) == MTIME
    assert (root / "a.txt").stat().st_size == 12
    assert f"{MTIME:x}-{12:x}" == "6553f100-c"
