"""nginx's PCRE spelling compiled as Python ``re`` patterns."""

from __future__ import annotations

import pytest

from wstunnel.config.regex import RegexError, compile_regex


@pytest.mark.parametrize(
    "pattern, text, groups",
    [
        ("^/(?<a>x)(?P<b>y)(?'c'z)$", "/xyz", {"a": "x", "b": "y", "c": "z"}),
        ("^/(?<a>x)-\\k<a>-\\k'a'-\\k{a}$", "/x-x-x-x", {"a": "x"}),
        ("[\\[](?<n>\\])[]a]", "[]]", {"n": "]"}),
        ("[^]x](?<q>1)", "y1", {"q": "1"}),
        ("(?<=/)(?<w>a)(?<!b)", "/a", {"w": "a"}),
    ],
)
def test_named_groups_and_back_references(pattern: str, text: str, groups: dict) -> None:
    assert compile_regex(pattern, False).search(text).groupdict() == groups


def test_end_anchors_keep_pcre_meaning() -> None:
    assert compile_regex("a\\z", False).search("a\n") is None
    assert compile_regex("a\\Z", False).search("a\n") is not None
    assert compile_regex("a\\Z", False).search("a") is not None
    assert compile_regex("a\\hb", False).search("a\tb") is not None


def test_caseless_and_classes_know_only_ascii() -> None:
    assert compile_regex("\\.PNG$", True).search("/a.png")
    assert compile_regex("\xe9", True).search("\xc9") is None  # bytes, not letters
    assert compile_regex("^\\w+$", False).search("caf\xe9") is None


def test_a_bad_pattern_says_why() -> None:
    with pytest.raises(RegexError, match="missing \\), unterminated subpattern"):
        compile_regex("^/(a", False)
