"""
nginx's regular expressions (PCRE2 without UTF) compiled as Python ``re``
patterns at load time, so a bad one is a located config error and a
request only runs a compiled pattern.

The two dialects agree on almost everything a location uses; this rewrites
what ``re`` spells differently (named groups ``(?<name>...)`` and
``(?'name'...)``, ``\\k<name>`` back-references, ``\\z`` and ``\\Z``,
``\\h``) and leaves anything ``re`` cannot read to fail there.  Patterns are
compiled with ``re.ASCII``: nginx matches bytes, so ``\\w``, ``\\d`` and
caseless matching know only ASCII.
"""

from __future__ import annotations

import re

__all__ = ["RegexError", "compile_regex"]


class RegexError(ValueError):
    """A pattern that does not compile; the message is the reason."""


_NAMED_GROUP = re.compile(r"\(\?(?:<(?![=!])|'|P<)([A-Za-z_][A-Za-z0-9_]*)[>']")
_BACKREF = re.compile(r"\\k(?:<([^>]*)>|'([^']*)'|\{([^}]*)\})")
_OUTSIDE_CLASS = {"z": r"\Z", "Z": r"(?=\n?\Z)", "h": r"[ \t\xa0]"}
_INSIDE_CLASS = {"h": r" \t\xa0"}


def compile_regex(pattern: str, caseless: bool) -> re.Pattern[str]:
    """``pattern`` as nginx's PCRE reads it; raises :class:`RegexError` with the reason."""
    flags = re.ASCII | (re.IGNORECASE if caseless else 0)
    try:
        return re.compile(_translate(pattern), flags)
    except re.error as exc:
        raise RegexError(str(exc)) from None


def _translate(pattern: str) -> str:
    out: list[str] = []
    pos, end = 0, len(pattern)
    in_class = False
    first = 0  # where the open class's items start: a "]" there is a literal
    while pos < end:
        char = pattern[pos]
        if char == "\\":
            text, pos = _escape(pattern, pos, in_class)
        elif in_class:
            in_class = char != "]" or pos == first
            text, pos = char, pos + 1
        elif char == "[":
            in_class = True
            first = pos + 2 if pattern.startswith("[^", pos) else pos + 1
            text, pos = pattern[pos:first], first
        elif (named := _NAMED_GROUP.match(pattern, pos)) is not None:
            text, pos = f"(?P<{named.group(1)}>", named.end()
        else:
            text, pos = char, pos + 1
        out.append(text)
    return "".join(out)


def _escape(pattern: str, pos: int, in_class: bool) -> tuple[str, int]:
    """The escape starting at ``pos`` in ``re``'s spelling, and where it ends."""
    letter = pattern[pos + 1 : pos + 2]
    backref = None if in_class else _BACKREF.match(pattern, pos)
    if backref is not None:
        name = next(g for g in backref.groups() if g is not None)
        return f"(?P={name})", backref.end()
    table = _INSIDE_CLASS if in_class else _OUTSIDE_CLASS
    if letter in table:
        return table[letter], pos + 2
    return pattern[pos : pos + 2], pos + 2
