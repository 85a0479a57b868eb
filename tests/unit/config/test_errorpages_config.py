"""``error_page``, ``recursive_error_pages`` and ``proxy_intercept_errors`` as read, checked and inherited."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config
from wstunnel.config.model import ErrorPages, Location


def pages(errors: ErrorPages) -> list[tuple[int, str, int | None]]:
    return [(page.status, page.target.text, page.overwrite) for page in errors.pages]


def locations(tmp_path: Path, text: str) -> dict[str, Location]:
    config = load_config(write_config(tmp_path, text), resolve=lambda host, port: [host])
    return {location.path: location for location in config.servers[0].locations}


def test_each_code_of_a_line_gets_its_page_and_the_response_code(tmp_path: Path) -> None:
    found = locations(tmp_path, """
        http { server { listen 127.0.0.1:8080;
            location / {
                error_page 404 /404.html;
                error_page 500 502 =200 @down;
                error_page 403 = /$uri/forbidden?x=1;
                error_page 495 496 497 /tls;
                error_page 497 =302 https://example.test/;
                return 200;
            }
        } }
    """)
    assert pages(found["/"].errors) == [
        (404, "/404.html", None),
        (500, "@down", 200),
        (502, "@down", 200),
        (403, "/$uri/forbidden?x=1", 0),
        (495, "/tls", 400),
        (496, "/tls", 400),
        (497, "/tls", 400),
        (497, "https://example.test/", 302),
    ]
    assert found["/"].errors.pages[0].source.line == 3


def test_a_level_with_error_page_replaces_the_inherited_list_and_switches_inherit_one_by_one(tmp_path: Path) -> None:
    text = """
        http {
            error_page 502 /http;
            proxy_intercept_errors on;
            server {
                listen 127.0.0.1:8080;
                recursive_error_pages on;
                location /own { error_page 404 /own; proxy_intercept_errors off; return 200; }
                location /inherits { return 200; location /inherits/deeper { return 200; } }
            }
            server {
                listen 127.0.0.1:8081;
                error_page 404 /server;
                location / { return 200; }
            }
        }
    """
    config = load_config(write_config(tmp_path, text))
    first, second = config.servers
    found = {location.path: location for location in first.locations}
    assert pages(first.errors) == [(502, "/http", None)]
    assert (first.errors.recursive, first.errors.intercept) == (True, True)
    assert pages(found["/own"].errors) == [(404, "/own", None)]
    assert (found["/own"].errors.recursive, found["/own"].errors.intercept) == (True, False)
    assert found["/inherits/deeper"].errors == first.errors
    assert pages(second.errors) == [(404, "/server", None)]
    assert (second.errors.recursive, second.errors.intercept) == (False, True)


def test_nothing_set_means_no_pages_and_both_switches_off(tmp_path: Path) -> None:
    found = locations(tmp_path, "http { server { listen 127.0.0.1:8080; location / { return 200; } } }")
    assert found["/"].errors == ErrorPages()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("error_page 404;", 'FILE:2: invalid number of arguments in "error_page" directive'),
        ("error_page =200 /x;", 'FILE:2: invalid value "=200" in "error_page" directive'),
        ("error_page 404 =2x0 /x;", 'FILE:2: invalid value "=2x0" in "error_page" directive'),
        ("error_page 4o4 /x;", 'FILE:2: invalid value "4o4" in "error_page" directive'),
        ("error_page 499 /x;", 'FILE:2: invalid value "499" in "error_page" directive'),
        ("error_page 200 /x;", 'FILE:2: value "200" in "error_page" directive must be between 300 and 599'),
        ("error_page 600 /x;", 'FILE:2: value "600" in "error_page" directive must be between 300 and 599'),
        ("error_page 404 /$nosuch;", 'FILE:2: unknown "nosuch" variable'),
        ("recursive_error_pages yes;",
         'FILE:2: invalid value "yes" in "recursive_error_pages" directive, it must be "on" or "off"'),
        ("proxy_intercept_errors on; proxy_intercept_errors off;",
         'FILE:2: "proxy_intercept_errors" directive is duplicate'),
    ],
)
def test_bad_lines_fail_with_file_line_and_the_directive(tmp_path: Path, line: str, message: str) -> None:
    text = f"""
        http {{ server {{ listen 127.0.0.1:8080;
            location / {{ {line} return 200; }}
        }} }}
    """
    assert config_errors(tmp_path, text) == [message]
