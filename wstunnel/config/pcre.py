"""
nginx's regular expressions (PCRE2, without UTF) as Python ``re`` patterns.

Most of PCRE's syntax means the same in ``re``.  This rewrites what ``re``
spells differently (named groups ``(?<name>...)``, ``\\k<name>``, ``\\z``
and ``\\Z``, POSIX classes, ``\\Q...\\E``, ``{,n}``), and refuses what
``re`` cannot express or would read with another meaning (``(?U)``,
``\\p{..}``, recursion).  Patterns are compiled with ``re.ASCII``: nginx
matches bytes, so ``\\d``, ``\\w`` and caseless matching only know ASCII.
"""

from __future__ import annotations

import re
import warnings

__all__ = ["PcreError", "compile_pcre"]


class PcreError(ValueError):
    """A pattern nginx would refuse, or one Python's ``re`` cannot express."""


_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "ascii": "\\x00-\\x7f",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "word": "\\w",
    "xdigit": "0-9A-Fa-f",
}
# PCRE escapes with no equivalent in re (or a different one); \u, \U and \N{...}
# are refused by PCRE2 too.
_UNSUPPORTED_ESCAPES = frozenset("CFGHKLNPRUVXcglopu")
_IN_CLASS = {"h": " \\t\\xa0", "v": "\\n\\x0b\\f\\r\\x85"}
_OUTSIDE_CLASS = {"h": "[ \\t\\xa0]", "v": "[\\n\\x0b\\f\\r\\x85]", "z": "\\Z", "Z": "(?=\\n?\\Z)"}
_GROUP_NAME = re.compile(r"\(\?(?:<|'|P<)([A-Za-z_][A-Za-z0-9_]*)[>']")
_BACKREF = re.compile(r"\\k(?:<([^>]*)>|'([^']*)'|\{([^}]*)\})")
_INLINE_FLAGS = re.compile(r"\(\?([A-Za-z^-]*)[):]")
_HEX = re.compile(r"\\x\{([0-9A-Fa-f]+)\}")
_EMPTY_MIN = re.compile(r"\{,[0-9]*\}")


def compile_pcre(pattern: str, caseless: bool) -> re.Pattern[str]:
    """``pattern`` as nginx's PCRE reads it; raises :class:`PcreError` with the reason."""
    translated = _translate(pattern)
    flags = re.ASCII | (re.IGNORECASE if caseless else 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile(translated, flags)
    except (re.error, FutureWarning, DeprecationWarning) as exc:
        raise PcreError(str(exc)) from None


def _translate(pattern: str) -> str:
    out: list[str] = []
    pos = 0
    in_class = False
    class_start = -1
    end = len(pattern)
    while pos < end:
        char = pattern[pos]
        if char == "\\":
            text, pos = _escape(pattern, pos, in_class)
            out.append(text)
            continue
        if in_class:
            text, pos, in_class = _class_char(pattern, pos, class_start)
            out.append(text)
            continue
        if char == "[":
            in_class, class_start = True, pos + 1
            if pattern.startswith("[^", pos):
                class_start += 1
            out.append(pattern[pos : class_start])
            pos = class_start
            continue
        if char == "(":
            text, pos = _group(pattern, pos)
            out.append(text)
            continue
        if char == "{" and (found := _EMPTY_MIN.match(pattern, pos)):
            # PCRE2 10.42 reads "{,n}" as text, re as a quantifier.
            out.append(re.escape(found.group()))
            pos = found.end()
            continue
        out.append(char)
        pos += 1
    if in_class:
        raise PcreError("missing terminating ] for character class")
    return "".join(out)


def _escape(pattern: str, pos: int, in_class: bool) -> tuple[str, int]:
    """The escape at ``pos`` (a backslash) in re's spelling, and where it ends."""
    if pos + 1 == len(pattern):
        raise PcreError("\\ at end of pattern")
    letter = pattern[pos + 1]
    if letter == "Q":
        close = pattern.find("\\E", pos + 2)
        close = len(pattern) if close < 0 else close
        literal = "".join("\\" + c if not c.isalnum() else c for c in pattern[pos + 2 : close])
        return literal, close + 2
    if letter == "E":
        return "", pos + 2
    if letter == "x" and (found := _HEX.match(pattern, pos)):
        code = int(found.group(1), 16)
        if code > 0xFF:
            raise PcreError("character code point value in \\x{} or \\o{} is too large")
        return f"\\x{code:02x}", found.end()
    if letter == "k" and not in_class and (found := _BACKREF.match(pattern, pos)):
        return f"(?P={next(g for g in found.groups() if g is not None)})", found.end()
    if letter == "e":
        return "\\x1b", pos + 2
    table = _IN_CLASS if in_class else _OUTSIDE_CLASS
    if letter in table:
        return table[letter], pos + 2
    if letter in _UNSUPPORTED_ESCAPES or letter == "k":
        raise PcreError(f"\\{letter} is not supported by wstunnel")
    return pattern[pos : pos + 2], pos + 2


def _class_char(pattern: str, pos: int, class_start: int) -> tuple[str, int, bool]:
    """One item inside ``[...]``; the bool says whether the class is still open."""
    char = pattern[pos]
    if char == "]" and pos != class_start:
        return "]", pos + 1, False
    if char == "[" and pattern.startswith("[:", pos):
        close = pattern.find(":]", pos + 2)
        name = pattern[pos + 2 : close] if close > 0 else ""
        negated = name.startswith("^")
        if close > 0 and name.lstrip("^") in _POSIX_CLASSES:
            if negated:
                raise PcreError(f"[:{name}:] is not supported by wstunnel")
            return _POSIX_CLASSES[name], close + 2, True
        raise PcreError(f"unknown POSIX class name [:{name}:]")
    if char in "[&~|":
        return "\\" + char, pos + 1, True
    return char, pos + 1, True


def _group(pattern: str, pos: int) -> tuple[str, int]:
    """The opening of a group at ``pos`` in re's spelling, and where it ends."""
    named = _GROUP_NAME.match(pattern, pos)
    if named:
        return f"(?P<{named.group(1)}>", named.end()
    if pattern.startswith(("(?|", "(?&", "(?P>", "(?R", "(?+", "(?C"), pos) or re.match(
        r"\(\?-?[0-9]", pattern[pos:]
    ):
        raise PcreError("recursion, callouts and branch reset groups are not supported by wstunnel")
    flags = _INLINE_FLAGS.match(pattern, pos)
    if flags and set(flags.group(1)) - set("imsx-"):
        raise PcreError(f'inline option "(?{flags.group(1)}" is not supported by wstunnel')
    return "(", pos + 1
