"""config.gzip: the gzip directives read into Location.gzip, with nginx's defaults, inheritance and errors."""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config
from wstunnel.config.model import Gzip, Location


def locations(tmp_path, http: str, server: str = "", location: str = "") -> dict[str, Location]:
    text = f"{http}\nserver {{\n listen 127.0.0.1:8080;\n{server}\n location / {{\n{location}\n }}\n location /b {{ }}\n}}\n"
    config = load_config(write_config(tmp_path, text))
    return {loc.path: loc for loc in config.servers[0].locations}


def test_defaults_are_nginx_defaults(tmp_path) -> None:
    assert locations(tmp_path, "")["/"].gzip == Gzip()
    assert Gzip() == Gzip(False, frozenset({b"text/html"}), 20, 1, False, frozenset({"off"}), (), False, b"1.1", "off")


def test_every_directive_is_read_and_inherited_one_by_one(tmp_path) -> None:
    found = locations(
        tmp_path,
        "gzip on; gzip_types application/JSON text/css; gzip_min_length 1k; gzip_comp_level 6;"
        " gzip_vary on; gzip_proxied expired any; gzip_disable msie6 \"curl/\"; gzip_http_version 1.0;"
        " gzip_static always;",
        location="gzip_comp_level 9; gzip_types text/plain; gzip_disable Wget;",
    )
    here, other = found["/"].gzip, found["/b"].gzip
    assert other.enabled and other.comp_level == 6 and other.min_length == 1024 and other.vary
    assert other.types == frozenset({b"text/html", b"application/json", b"text/css"})
    assert other.proxied == frozenset({"expired", "any"}) and other.http_version == b"1.0" and other.static == "always"
    assert other.disable_msie6 and [p.pattern for p in other.disable] == ["curl/"]
    assert here.comp_level == 9 and here.types == frozenset({b"text/html", b"text/plain"})
    assert here.enabled and here.min_length == 1024
    assert not here.disable_msie6 and here.disable[0].search("wget/1.0"), "caseless, and msie6 replaced"


def test_repeated_list_directives_add_up_and_star_is_every_type(tmp_path) -> None:
    found = locations(tmp_path, "gzip_types text/css; gzip_types text/plain; gzip_proxied auth; gzip_proxied no_etag;",
                      server="gzip_types text/css *;")
    assert found["/"].gzip.types is None and found["/"].gzip.proxied == frozenset({"auth", "no_etag"})


def test_gzip_buffers_is_accepted_with_a_notice(tmp_path) -> None:
    config = load_config(write_config(tmp_path, "gzip_buffers 16 8k;\nserver { listen 127.0.0.1:8080; }\n"))
    assert any(":1: gzip_buffers is accepted" in notice for notice in config.notices)


@pytest.mark.parametrize(
    "line, message",
    [
        ("gzip maybe;", 'invalid value "maybe" in "gzip" directive, it must be "on" or "off"'),
        ("gzip on; gzip off;", '"gzip" directive is duplicate'),
        ("gzip_comp_level 10;", '"gzip_comp_level" directive value must be between 1 and 9'),
        ("gzip_comp_level x;", 'invalid value "x" in "gzip_comp_level" directive'),
        ("gzip_min_length x;", '"gzip_min_length" directive invalid size value "x"'),
        ("gzip_proxied any bogus;", 'invalid value "bogus" in "gzip_proxied" directive'),
        ("gzip_http_version 2.0;", 'invalid value "2.0" in "gzip_http_version" directive'),
        ("gzip_static maybe;", 'invalid value "maybe" in "gzip_static" directive'),
        ("gzip_buffers 0 4k;", 'invalid value "0" in "gzip_buffers" directive'),
        ("gzip_disable (;", 'pcre2_compile() failed: missing ), unterminated subpattern at position 0 in "(" of "gzip_disable"'),
        ("gzip_vary;", 'invalid number of arguments in "gzip_vary" directive'),
    ],
)
def test_bad_values_fail_at_their_line_naming_the_directive(tmp_path, line: str, message: str) -> None:
    assert config_errors(tmp_path, f"{line}\nserver {{ listen 127.0.0.1:8080; }}\n") == [f"FILE:1: {message}"]
