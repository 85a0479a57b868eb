"""nginx's PCRE spellings compiled into Python ``re`` patterns, and what is refused."""

from __future__ import annotations

import pytest

from wstunnel.config.pcre import PcreError, compile_pcre


@pytest.mark.parametrize(
    "pattern, text, groups",
    [
        (r"^(?<a>x+)-\k<a>$", "xx-xx", ("xx",)),
        (r"^(?'a'x)\k'a'\k{a}$", "xxx", ("x",)),
        (r"^(?P<a>x)(?P=a)$", "xx", ("x",)),
        (r"^[[:alpha:][:digit:]_]+$", "aZ9_", ()),
        (r"^\Q.*[\E$", ".*[", ()),
        (r"^a{,2}$", "a{,2}", ()),
        (r"^a{,}$", "a{,}", ()),
        (r"^\x{41}\e$", "A\x1b", ()),
        (r"^[\h]+\v$", " \t\xa0\x85", ()),
        (r"^[]a]+$", "]a]", ()),
        (r"^[&~|[]+$", "&~|[", ()),
    ],
)
def test_translated_spellings_match(pattern: str, text: str, groups: tuple) -> None:
    match = compile_pcre(pattern, caseless=False).search(text)
    assert match is not None and match.groups() == groups


def test_end_anchors_keep_pcres_meaning() -> None:
    assert compile_pcre(r"x\Z", False).search("x\n")
    assert not compile_pcre(r"x\z", False).search("x\n")
    assert compile_pcre(r"x$", False).search("x\n")


def test_classes_and_case_are_ascii_as_in_nginx() -> None:
    assert not compile_pcre(r"^\w$", False).search("\xe9")
    assert not compile_pcre(r"^\xe9$", True).search("\xc9")
    assert compile_pcre(r"^abc$", True).search("ABC")


@pytest.mark.parametrize(
    "pattern, reason",
    [
        ("(a", "missing ), unterminated subpattern"),
        ("[a", "missing terminating ] for character class"),
        ("a\\", "\\ at end of pattern"),
        ("(?U)a+", 'inline option "(?U" is not supported by wstunnel'),
        ("\\pL", "\\p is not supported by wstunnel"),
        ("\\R", "\\R is not supported by wstunnel"),
        ("\\x{100}", "character code point value in \\x{} or \\o{} is too large"),
        ("(?|(a)|(b))", "recursion, callouts and branch reset groups are not supported by wstunnel"),
        ("(a)(?1)", "recursion, callouts and branch reset groups are not supported by wstunnel"),
        ("[[:^alpha:]]", "[:^alpha:] is not supported by wstunnel"),
        ("[[:nosuch:]]", "unknown POSIX class name [:nosuch:]"),
        ("a(?i)b", "global flags not at the start of the expression"),
    ],
)
def test_refused(pattern: str, reason: str) -> None:
    with pytest.raises(PcreError) as info:
        compile_pcre(pattern, caseless=False)
    assert str(info.value).startswith(reason)
