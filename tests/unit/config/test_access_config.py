"""config.access: the access directives read, checked at their line, and merged by nginx's inheritance."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from attrs import evolve

from wstunnel.config.loader import load_config
from wstunnel.config.model import Access, AccessRule, Config, ConfigErrors


def load(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "nginx.conf"
    path.write_text(f"http {{\nserver {{\nlisten 127.0.0.1:8080;\n{body}\n}}\n}}\n")
    return load_config(str(path), resolve=lambda host, port: [host])


def errors(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, body)
    return [str(e).replace(str(tmp_path) + "/", "") for e in caught.value.errors]


@pytest.mark.parametrize(
    "body, message",
    [
        ("allow 300.1.1.1;", 'nginx.conf:4: invalid parameter "300.1.1.1"'),
        ("deny 1;", 'nginx.conf:4: invalid parameter "1"'),
        ("deny 10.0.0.0/33;", 'nginx.conf:4: invalid parameter "10.0.0.0/33"'),
        ("deny fe80::1%eth0;", 'nginx.conf:4: invalid parameter "fe80::1%eth0"'),
        ("allow;", 'nginx.conf:4: invalid number of arguments in "allow" directive'),
        ("satisfy some;", 'nginx.conf:4: invalid value "some" in "satisfy" directive, it must be "all" or "any"'),
        ("auth_basic a;\nauth_basic b;", 'nginx.conf:5: "auth_basic" directive is duplicate'),
        ("auth_basic_user_file $x;", 'nginx.conf:4: "auth_basic_user_file" with variables is not supported by wstunnel'),
        ("limit_except GET { }", 'nginx.conf:4: "limit_except" directive is not allowed here'),
        ("location / { limit_except FETCH { } }", 'nginx.conf:4: invalid method "FETCH"'),
        ("location / { limit_except GET { proxy_pass http://a; } }", 'nginx.conf:4: "proxy_pass" directive is not allowed here'),
        ("location / { limit_except GET { satisfy any; } }", 'nginx.conf:4: "satisfy" directive is not allowed here'),
        ("location / { limit_except GET { }\nlimit_except POST { } }", 'nginx.conf:5: "limit_except" directive is duplicate'),
    ],
)
def test_mistakes_are_refused_at_their_line(tmp_path: Path, body: str, message: str) -> None:
    assert errors(tmp_path, body) == [message]


def test_rules_are_kept_in_order_with_low_bits_noticed(tmp_path: Path) -> None:
    config = load(tmp_path, "allow 10.1.2.3/8;\ndeny unix:;\nallow ::1;\ndeny all;")
    assert config.servers[0].access.rules == (
        AccessRule(True, ipaddress.ip_network("10.0.0.0/8")),
        AccessRule(False, None, unix=True),
        AccessRule(True, ipaddress.ip_network("::1/128")),
        AccessRule(False, None),
    )
    assert config.notices == (f"{tmp_path}/nginx.conf:4: low address bits of 10.1.2.3/8 are meaningless",)


def test_rules_inherit_all_or_nothing_and_the_rest_one_by_one(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "deny all;\nsatisfy any;\nauth_basic realm;\nauth_basic_user_file u;\n"
        "location /a/ { allow 127.0.0.1; }\nlocation /b/ { auth_basic off; }",
    )
    a, b = config.servers[0].locations
    assert a.access.rules == (AccessRule(True, ipaddress.ip_network("127.0.0.1/32")),)
    assert a.access.satisfy_any and a.access.realm is not None and a.access.realm.text == "realm"
    assert a.access.user_file == f"{tmp_path}/u"
    assert b.access.rules == (AccessRule(False, None),) and b.access.realm is None


def test_limit_except_inherits_from_its_location(tmp_path: Path) -> None:
    config = load(tmp_path, "location / { deny 10.0.0.1; auth_basic r; limit_except GET { auth_basic_user_file u; } }")
    access = config.servers[0].locations[0].access
    assert access.except_methods == {b"GET", b"HEAD"}
    assert access.limited is not None and access.limited.rules == access.rules
    assert access.limited.user_file == f"{tmp_path}/u" and access.user_file is None


def test_whether_a_location_checks_anything_is_decided_at_load() -> None:
    assert not Access().checks
    assert evolve(Access(), rules=(AccessRule(False, None),)).checks
    assert evolve(Access(), auth_request="/auth").checks
    assert not evolve(Access(rules=(AccessRule(True, None),)), rules=()).checks
