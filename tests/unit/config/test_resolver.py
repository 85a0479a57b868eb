"""
``resolver`` and ``resolver_timeout`` read into each location (nginx's
parameters, defaults and inheritance), and ``proxy_pass`` with variables
in its host or port read into a rendered authority.
"""

from __future__ import annotations

import pytest

from support import config_errors, load_text
from wstunnel.config.model import Resolver, Source


def locations(tmp_path, http: str = "", server: str = "", location: str = "", url: str = "http://$http_x_to"):
    text = (
        f"http {{ {http}\n server {{ listen 127.0.0.1:8080; {server}\n"
        f" location / {{ proxy_pass {url}; {location} }}\n location /b {{ proxy_pass http://127.0.0.1:9; }} }} }}\n"
    )
    return load_text(tmp_path / "t.conf", text).servers[0].locations


def test_defaults_and_parameters(tmp_path) -> None:
    dynamic, plain = locations(tmp_path, http="resolver 127.0.0.1 [::1]:5353 valid=30s ipv6=off status_zone=z;")
    assert dynamic.resolver == Resolver(
        (("127.0.0.1", 53), ("::1", 5353)), Source(str(tmp_path / "t.conf"), 1), valid=30.0, ipv6=False
    )
    assert plain.resolver == dynamic.resolver
    assert dynamic.resolver.timeout == 30.0 and dynamic.resolver.ipv4


def test_no_resolver_by_default(tmp_path) -> None:
    assert locations(tmp_path)[0].resolver is None


def test_the_nearest_resolver_and_the_nearest_timeout_apply_one_by_one(tmp_path) -> None:
    dynamic, plain = locations(
        tmp_path,
        http="resolver 127.0.0.1; resolver_timeout 5s;",
        server="resolver 127.0.0.2;",
        location="resolver_timeout 2s;",
    )
    assert (dynamic.resolver.servers, dynamic.resolver.timeout) == ((("127.0.0.2", 53),), 2.0)
    assert (plain.resolver.servers, plain.resolver.timeout) == ((("127.0.0.2", 53),), 5.0)


def test_a_server_named_by_name_is_resolved_at_load(tmp_path) -> None:
    dynamic, _ = locations(tmp_path, http="resolver localhost:5353;")
    assert ("127.0.0.1", 5353) in dynamic.resolver.servers


@pytest.mark.parametrize(
    "line, message",
    [
        ("resolver 127.0.0.1:0;", 'invalid port in resolver "127.0.0.1:0"'),
        ("resolver 127.0.0.1 valid=abc;", "invalid parameter: valid=abc"),
        ("resolver 127.0.0.1 ipv6=maybe;", "invalid parameter: ipv6=maybe"),
        ("resolver 127.0.0.1 ipv4=off ipv6=off;", '"ipv4" and "ipv6" cannot both be "off"'),
        ("resolver nowhere.invalid;", 'host not found in resolver "nowhere.invalid"'),
        ("resolver valid=10s;", '"resolver" directive names no address'),
        ("resolver 127.0.0.1; resolver 127.0.0.2;", '"resolver" directive is duplicate'),
        ("resolver_timeout abc;", '"resolver_timeout" directive invalid time value "abc"'),
    ],
)
def test_errors_name_file_and_line(tmp_path, line, message) -> None:
    errors = config_errors(tmp_path, f"http {{\n{line}\n server {{ listen 127.0.0.1:8080; }} }}\n")
    assert errors == [f"FILE:2: {message}"]


def test_variables_in_the_host_are_rendered_per_request(tmp_path) -> None:
    dynamic, _ = locations(tmp_path, url="http://$http_x_to:8080/app$uri")
    assert dynamic.proxy_pass.authority.text == "$http_x_to:8080"
    assert dynamic.proxy_uri.text == "/app$uri"
    assert dynamic.proxy_pass.upstream.peers == ()


def test_a_path_variable_starts_the_uri_part(tmp_path) -> None:
    dynamic, _ = locations(tmp_path, url="http://$http_x_to$request_uri")
    assert (dynamic.proxy_pass.authority.text, dynamic.proxy_uri.text) == ("$http_x_to", "$request_uri")
    literal, _ = locations(tmp_path, url="http://127.0.0.1:9$request_uri")
    assert (literal.proxy_pass.authority, literal.proxy_uri.text) == (None, "$request_uri")


def test_a_uri_part_is_allowed_in_a_regex_location_when_the_host_has_variables(tmp_path) -> None:
    text = "server { listen 127.0.0.1:8080;\n location ~ ^/r/ { proxy_pass http://$http_x_to/fixed; } }\n"
    (location,) = load_text(tmp_path / "t.conf", text).servers[0].locations
    assert location.proxy_uri.text == "/fixed"


def test_an_unknown_variable_in_the_host_is_an_error(tmp_path) -> None:
    errors = config_errors(tmp_path, "server { listen 127.0.0.1:8080;\n location / { proxy_pass http://$nope; } }\n")
    assert errors == ['FILE:2: unknown "nope" variable']
