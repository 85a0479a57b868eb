"""
core.files through core.dispatch.prepare: which file a request gets, on a
file system made of a dict (no disk): root and alias, index, try_files and
its internal redirects, the directory's 301, internal locations, the
answers for what is missing, forbidden or not a file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from decide_support import decide_for
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config
from wstunnel.core.dispatch import Decision, Forward, Refuse, Respond, ServeFile

CONF = """
server {
    listen 127.0.0.1:8080;
    root /srv;
    location /al/ { alias /other/; }
    location ~ ^/re/(.+)\\.txt$ { alias /other/$1.dat; }
    location /spa/ { try_files $uri $uri/ /spa/index.html; }
    location /named/ { try_files $uri @app; }
    location /code/ { try_files $uri =418; }
    location /uri/ { try_files /nothing /p/x?a=1; }
    location /p/ { proxy_pass http://127.0.0.1:9; }
    location /in/ { internal; }
    location /go/ { try_files /none /in/secret; }
    location /loop/ { try_files /none /loop/again; }
    location /auto/ { autoindex on; }
    location /two/ { index none.html /abs.html; }
    location @app { proxy_pass http://127.0.0.1:9; }
}
"""
FILE, DIR, SECRET = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, "forbidden"


class Disk:
    """A dict for a file system: path -> mode, or SECRET for one stat may not read."""

    def __init__(self, entries: dict[str, object]) -> None:
        self.entries = entries

    def stat(self, path: str) -> os.stat_result:
        mode = self.entries.get(path)
        if mode is None:
            raise FileNotFoundError(2, "No such file or directory")
        if mode == SECRET:
            raise PermissionError(13, "Permission denied")
        return os.stat_result((mode, 0, 0, 1, 0, 0, 5, 0, 1_700_000_000, 0))

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [p[len(prefix):] for p in self.entries if p.startswith(prefix) and "/" not in p[len(prefix):]]


DISK = Disk({
    "/srv": DIR, "/srv/a.txt": FILE, "/srv/dir": DIR, "/srv/dir/index.html": FILE, "/srv/empty": DIR,
    "/srv/spa": DIR, "/srv/spa/index.html": FILE, "/srv/spa/real.js": FILE, "/srv/fifo": stat.S_IFIFO | 0o644,
    "/srv/locked": SECRET, "/other": DIR, "/other/o.txt": FILE, "/other/o.dat": FILE, "/srv/in": DIR,
    "/srv/in/secret": FILE, "/srv/auto": DIR, "/srv/auto/x&y.txt": FILE, "/srv/auto/d": DIR, "/srv/abs.html": FILE,
    "/srv/two": DIR, "/srv/named": DIR,
})


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path: Path = tmp_path_factory.mktemp("files") / "files.conf"
    path.write_text(CONF)
    return load_config(str(path), resolve=lambda host, port: [host])


def decide(config: Config, target: bytes, method: bytes = b"GET") -> Decision:
    return decide_for(config, target, method=method, host=b"files.test", fs=DISK)


def served(decision: Decision) -> str:
    assert isinstance(decision, ServeFile), decision
    return decision.path


def refused(decision: Decision) -> int:
    assert isinstance(decision, Refuse), decision
    return decision.error.status


@pytest.mark.parametrize(
    "target, path",
    [
        (b"/a.txt", "/srv/a.txt"),
        (b"/a.txt?x=1", "/srv/a.txt"),
        (b"/dir/", "/srv/dir/index.html"),
        (b"/dir/index.html", "/srv/dir/index.html"),
        (b"/al/o.txt", "/other/o.txt"),
        (b"/re/o.txt", "/other/o.dat"),
        (b"/spa/real.js", "/srv/spa/real.js"),
        (b"/spa/deep/link", "/srv/spa/index.html"),
        (b"/spa/", "/srv/spa/index.html"),
        (b"/go/anything", "/srv/in/secret"),
        (b"/two/", "/srv/abs.html"),
        (b"/dir%2Findex.html", "/srv/dir/index.html"),
    ],
)
def test_the_file_each_uri_gets(config: Config, target: bytes, path: str) -> None:
    assert served(decide(config, target)) == path


@pytest.mark.parametrize(
    "target, status",
    [
        (b"/missing", 404),
        (b"/empty/", 403),
        (b"/nothere/", 404),
        (b"/locked", 403),
        (b"/fifo", 404),
        (b"/in/secret", 404),
        (b"/code/x", 418),
        (b"/loop/x", 500),
        (b"/../srv/a.txt", 400),
        (b"/%2e%2e/a.txt", 400),
        (b"/a.txt%00", 400),
    ],
)
def test_what_is_missing_forbidden_internal_or_outside(config: Config, target: bytes, status: int) -> None:
    assert refused(decide(config, target)) == status


def test_a_directory_without_its_slash_is_a_301_with_the_arguments(config: Config) -> None:
    decision = decide(config, b"/dir?x=1")
    assert isinstance(decision, Respond) and decision.status == 301
    assert dict(decision.headers)[b"Location"] == b"http://files.test:8080/dir/?x=1"


def test_only_get_and_head_read_files(config: Config) -> None:
    assert served(decide(config, b"/a.txt", b"HEAD")) == "/srv/a.txt"
    assert refused(decide(config, b"/a.txt", b"POST")) == 405


def test_try_files_falls_back_to_a_named_location_with_the_uri_unchanged(config: Config) -> None:
    decision = decide(config, b"/named/x?q=1")
    assert isinstance(decision, Forward)
    assert decision.location.path == "@app" and decision.request.target == b"/named/x?q=1"


def test_try_files_falls_back_to_a_uri_whose_location_proxies_the_new_uri(config: Config) -> None:
    decision = decide(config, b"/uri/x?q=1")
    assert isinstance(decision, Forward)
    assert decision.location.path == "/p/" and decision.request.target == b"/p/x?a=1"
    assert decision.vars.get("uri") == "/p/x" and decision.vars.get("args") == "a=1"


def test_autoindex_lists_the_directory(config: Config) -> None:
    decision = decide(config, b"/auto/")
    assert isinstance(decision, Respond) and decision.status == 200
    assert b'<a href="d/">d/</a>' in decision.body
    assert b'<a href="x%26y.txt">x&amp;y.txt</a>' in decision.body
    assert decision.body.index(b"d/") < decision.body.index(b"x%26y")
