"""
The file directives as nginx 1.22 reads them (``root``, ``alias``,
``index``, ``try_files``, ``autoindex``, ``types``, ``default_type``,
``etag``, ``if_modified_since``, ``internal``, ``disable_symlinks``), their
inheritance, and ``include mime.types`` with and without the file.
"""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config
from wstunnel.config.mimetypes import MIME_TYPES


def load(tmp_path, body: str, http: str = ""):
    return load_config(write_config(tmp_path, f"http {{\n{http}\nserver {{\n{body}\n}}\n}}\n"))


def errors(tmp_path, body: str) -> list[str]:
    return config_errors(tmp_path, f"http {{\nserver {{\n{body}\n}}\n}}\n")


def location(config, path: str):
    return next(loc for loc in config.servers[0].locations if loc.path == path)


@pytest.mark.parametrize(
    "body, message",
    [
        ("location / { root /a; alias /b; }", 'FILE:3: "alias" directive is duplicate, "root" directive was specified earlier'),
        ("location / { alias /b; root /a; }", 'FILE:3: "root" directive is duplicate, "alias" directive was specified earlier'),
        ("location / { root /a; root /b; }", 'FILE:3: "root" directive is duplicate'),
        ("location ~ ^/x { alias /b; }", 'FILE:3: the "alias" directive must use captures inside location given by regular expression'),
        ("location @n { alias /b; }", 'FILE:3: "alias" directive cannot be used inside the named location'),
        ("alias /b;", 'FILE:3: "alias" directive is not allowed here'),
        ("location / { index a /b c; }", 'FILE:3: only the last index in "index" directive should be absolute'),
        ('location / { index ""; }', 'FILE:3: index "" in "index" directive is invalid'),
        ("location / { try_files $uri; }", 'FILE:3: invalid number of arguments in "try_files" directive'),
        ("location / { try_files $uri =abc; }", 'FILE:3: invalid code "=abc"'),
        ("location / { autoindex yes; }", 'FILE:3: invalid value "yes" in "autoindex" directive, it must be "on" or "off"'),
        ("location / { if_modified_since later; }", 'FILE:3: invalid value "later" in "if_modified_since" directive'),
        ("internal;", 'FILE:3: "internal" directive is not allowed here'),
        (
            "disable_symlinks on;",
            'FILE:3: "disable_symlinks" is not supported by wstunnel: symbolic links are followed, as nginx does by default',
        ),
        ("location / { types { text/plain; } }", 'FILE:3: invalid number of arguments in "text/plain" directive'),
    ],
)
def test_mistakes_are_refused_at_their_line(tmp_path, body: str, message: str) -> None:
    assert errors(tmp_path, body) == [message]


def test_root_index_and_types_are_inherited_alias_and_try_files_are_not(tmp_path) -> None:
    config = load(
        tmp_path,
        "root /srv; index a.html b.html; try_files $uri =404;\n"
        "location /x/ { alias /other/; }\n"
        "location /y/ { index c.html; types { text/x-y y; } default_type a/b; etag off; }\n"
        "location /p/ { proxy_pass http://127.0.0.1:9; }",
        http="types { text/css css; }\nif_modified_since before;",
    )
    server = config.servers[0]
    x, y, p = location(config, "/x/"), location(config, "/y/"), location(config, "/p/")
    assert server.files.root.text == "/srv" and [t.text for t in server.files.try_files] == ["$uri", "=404"]
    assert x.files.alias.text == "/other/" and x.files.try_files == ()
    assert [t.text for t in x.files.index] == ["a.html", "b.html"] and x.files.types == {"css": "text/css"}
    assert [t.text for t in y.files.index] == ["c.html"] and y.files.types == {"y": "text/x-y"}
    assert (y.files.default_type, y.files.etag, y.files.if_modified_since) == ("a/b", False, "before")
    assert (x.files.default_type, x.files.etag) == ("text/plain", True)
    assert p.files is not None and p.proxy_pass is not None


def test_nothing_to_serve_without_root_alias_or_try_files(tmp_path) -> None:
    config = load(tmp_path, "location / { index x.html; }\nlocation /i/ { internal; proxy_pass http://127.0.0.1:9; }")
    assert config.servers[0].files is None and location(config, "/").files is None
    assert location(config, "/i/").files.internal


def test_defaults_are_nginx_defaults(tmp_path) -> None:
    files = location(load(tmp_path, "location / { root /srv; }"), "/").files
    assert [t.text for t in files.index] == ["index.html"]
    assert files.types == {"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"}
    assert (files.default_type, files.etag, files.if_modified_since, files.autoindex) == ("text/plain", True, "exact", False)


def test_regex_alias_with_captures_is_the_whole_path(tmp_path) -> None:
    files = location(load(tmp_path, r"location ~ ^/d/(.+)$ { alias /srv/$1; }"), "^/d/(.+)$").files
    assert files.regex_alias and files.alias.text == "/srv/$1"


def test_several_types_blocks_add_up_and_a_later_extension_wins(tmp_path) -> None:
    files = location(load(tmp_path, "location / { root /s; types { a/a x; b/b y; } types { c/c X z; } }"), "/").files
    assert files.types == {"x": "c/c", "y": "b/b", "z": "c/c"}


def test_an_absent_mime_types_is_the_built_in_copy_with_a_notice(tmp_path) -> None:
    config = load(tmp_path, "location / { root /s; }", http="include mime.types;")
    assert config.notices == (
        f"{config.path}:2: mime.types not found, wstunnel's built-in copy of nginx 1.22's is used",
    )
    types = location(config, "/").files.types
    assert types["css"] == "text/css" and types["js"] == "application/javascript" and types["woff2"] == "font/woff2"
    assert len(types) == sum(len(exts) for _, exts in MIME_TYPES)


def test_a_present_mime_types_is_read_relative_to_the_config(tmp_path) -> None:
    (tmp_path / "mime.types").write_text("types { text/x-own own; }\n")
    config = load(tmp_path, "location / { root /s; }", http="include mime.types;")
    assert config.notices == ()
    assert location(config, "/").files.types == {"own": "text/x-own"}


def test_the_built_in_table_is_nginx_1_22s() -> None:
    assert ("application/octet-stream", ("bin", "exe", "dll")) in MIME_TYPES
    assert ("image/svg+xml", ("svg", "svgz")) in MIME_TYPES and len(MIME_TYPES) == 86


def test_disable_symlinks_off_is_the_default_and_accepted(tmp_path) -> None:
    assert load(tmp_path, "disable_symlinks off;\nlocation / { root /s; }").servers[0].files is None
