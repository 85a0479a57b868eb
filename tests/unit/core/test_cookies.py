"""Set-Cookie rewriting (sans-IO): what changes, what passes untouched, and values never written."""

from __future__ import annotations

import re

from wstunnel.config.model import Config, CookieFlags, CookieRules, RedirectRule, Server, Source
from wstunnel.config.templates import compile_template
from wstunnel.core.cookies import rewrite_set_cookie
from wstunnel.core.routing import parse_target
from wstunnel.core.variables import RequestVars
from wstunnel.wire.request import ConnInfo, RequestHead

SRC = Source("test.conf", 1)
SERVER = Server(("test.example",), (), (), SRC)
CONFIG = Config("test.conf", (), (SERVER,), {}, {}, ())
HEAD = RequestHead(b"GET", b"/a", b"1.1", ((b"Host", b"test.example"), (b"X-Bad", b"a\r\nb")))


def rv() -> RequestVars:
    return RequestVars(
        config=CONFIG, server=SERVER, location=None, conn=ConnInfo("192.0.2.7", 40000, "192.0.2.1", 80),
        head=HEAD, target=parse_target(HEAD.target), host="test.example",
    )


def t(text: str):
    return compile_template(text, SRC, ("1", "2"))


def rule(pattern: str, replacement: str, regex: str | None = None) -> RedirectRule:
    return RedirectRule(t(pattern), t(replacement), None if regex is None else re.compile(regex))


def test_nothing_matching_passes_the_header_as_it_came() -> None:
    rules = CookieRules(paths=(rule("/x/", "/"),))
    assert rewrite_set_cookie(b"a=1;path=/app/ ;Secure", rules, rv()) == b"a=1;path=/app/ ;Secure"


def test_a_rewritten_header_is_written_back_with_its_attributes_normalised() -> None:
    rules = CookieRules(paths=(rule("/app/", "/"),))
    assert rewrite_set_cookie(b"a=1;path=/app/x ;Secure", rules, rv()) == b"a=1; path=/x; Secure"


def test_a_domain_keeps_its_leading_dot_and_compares_in_any_case() -> None:
    rules = CookieRules(domains=(rule("up.example", "$host"),))
    assert rewrite_set_cookie(b"a=1; Domain=.UP.example", rules, rv()) == b"a=1; Domain=.test.example"
    assert rewrite_set_cookie(b"a=1; Domain=sub.up.example", rules, rv()) == b"a=1; Domain=sub.up.example"


def test_a_regex_replaces_the_whole_value_with_its_captures() -> None:
    rules = CookieRules(paths=(rule("~", "/new/$1", r"^/old/(.*)$"),))
    assert rewrite_set_cookie(b"a=1; Path=/old/deep", rules, rv()) == b"a=1; Path=/new/deep"


def test_a_cookie_without_a_value_is_never_touched() -> None:
    rules = CookieRules(paths=(rule("/", "/x/"),))
    assert rewrite_set_cookie(b"flag; Path=/", rules, rv()) == b"flag; Path=/"


def test_flags_add_remove_and_replace() -> None:
    flags = CookieRules(flags=(CookieFlags(t("A"), None, (t("secure"), t("nohttponly"), t("samesite=lax"))),))
    got = rewrite_set_cookie(b"a=1; HttpOnly; samesite=strict", flags, rv())
    assert got == b"a=1; SameSite=Lax; Secure"


def test_a_value_with_a_line_break_from_a_variable_is_not_written() -> None:
    rules = CookieRules(paths=(rule("/", "$http_x_bad"),))
    assert rewrite_set_cookie(b"a=1; Path=/", rules, rv()) == b"a=1; Path=/"
