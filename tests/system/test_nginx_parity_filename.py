"""
nginx as the oracle for ``$request_filename`` and ``$document_root`` (issue
13): under ``root``, a prefix ``alias`` and a regex ``alias``, and what
jenkins's published config does with them (``if (!-f $request_filename)``
then a rewrite to the proxied application), the same requests sent to
nginx 1.22 and to wstunnel and the answers compared.
"""

from __future__ import annotations

import pytest_twisted

from nginx_support import ask_both, request

CONF = """
server {
    listen {listen};
    root {root}/www;
    location /names/ { return 200 "$request_filename|$document_root"; }
    location /aliased/ { alias {root}/other/; return 200 "$request_filename|$document_root"; }
    location ~ ^/re/(.+)$ { alias {root}/other/$1; return 200 "$request_filename|$document_root"; }
    location /userContent {
        root {root}/www;
        if (!-f $request_filename) {
            rewrite (.*) /app$1 last;
        }
        return 200 "file $request_filename";
    }
    location /app/ { proxy_pass http://127.0.0.1:{backend}; proxy_http_version 1.1; }
}
"""

PATHS = ["/names/a.txt", "/aliased/b/c.txt", "/re/d.txt", "/userContent/there.txt", "/userContent/missing.txt"]


@pytest_twisted.ensureDeferred
async def test_request_filename_and_document_root_as_in_nginx(twins, tmp_path) -> None:
    root = tmp_path / "docs"
    (root / "www" / "userContent").mkdir(parents=True)
    (root / "other").mkdir()
    (root / "www" / "userContent" / "there.txt").write_text("here")
    sides = twins.start(CONF.replace("{root}", str(root)))
    answers = {}
    for path in PATHS:
        got = await ask_both(sides, request(path))
        answers[path] = {name: (r.status, r.body.replace(str(root).encode(), b"ROOT")) for name, r in got.items()}
    for path, both in answers.items():
        assert both["wstunnel"] == both["nginx"], path
    assert answers["/re/d.txt"]["nginx"][1] == b"ROOT/other/d.txt|ROOT/other/d.txt"
    assert answers["/userContent/there.txt"]["nginx"][1] == b"file ROOT/www/userContent/there.txt"
    assert answers["/userContent/missing.txt"]["nginx"][0].startswith(b"HTTP/1.1 200")
    assert [side.heads()[0][0] for side in sides] == [b"GET /app/userContent/missing.txt HTTP/1.1"] * 2
