"""
Set-Cookie rewritten by ``proxy_cookie_domain``, ``proxy_cookie_path`` and
``proxy_cookie_flags``, as nginx 1.22 does it: the header is split at
``;`` into attributes, the first rule of each list that matches rewrites
the Domain or Path value, the first flags line naming the cookie adds or
removes Secure, HttpOnly and SameSite; a header anything changed is written
back with ``"; "`` between attributes, one nothing changed is passed as it
came.  A value that would hold a CR or LF from a variable is passed as it
came.
"""

from __future__ import annotations

import re

from wstunnel.config.model import CookieFlags, CookieRules, RedirectRule
from wstunnel.core.variables import RequestVars, render

__all__ = ["rewrite_set_cookie"]

_BAD_VALUE = re.compile(r"[\x00\r\n\x0b\x0c]")

_SECURE_ON, _SECURE_OFF, _HTTPONLY_ON, _HTTPONLY_OFF = 1, 2, 4, 8
_STRICT, _LAX, _NONE, _SAMESITE_OFF = 16, 32, 64, 128
_FLAGS = {
    "secure": _SECURE_ON,
    "nosecure": _SECURE_OFF,
    "httponly": _HTTPONLY_ON,
    "nohttponly": _HTTPONLY_OFF,
    "samesite=strict": _STRICT,
    "samesite=lax": _LAX,
    "samesite=none": _NONE,
    "nosamesite": _SAMESITE_OFF,
}
_SAMESITE = ((_STRICT, "Strict"), (_LAX, "Lax"), (_NONE, "None"))

Attr = list  # [key or None once removed, value or None]


def rewrite_set_cookie(value: bytes, rules: CookieRules, rv: RequestVars) -> bytes:
    """One Set-Cookie value as the client gets it."""
    attrs = _parse(value.decode("latin-1"))
    if attrs[0][1] is None:
        return value
    changed = False
    for attr in attrs[1:]:
        key, text = attr
        if text is None:
            continue
        lower = key.lower()
        if rules.domains and lower == "domain":
            changed |= _rewrite(attr, rules.domains, rv, _domain)
        if rules.paths and lower == "path":
            changed |= _rewrite(attr, rules.paths, rv, _prefix)
    if rules.flags:
        changed |= _apply_flags(attrs, rules.flags, rv)
    if not changed:
        return value
    written = "; ".join(k if v is None else f"{k}={v}" for k, v in attrs if k is not None)
    if _BAD_VALUE.search(written):
        return value
    return written.encode("latin-1", "replace")


def _parse(text: str) -> list[Attr]:
    """nginx's split: at each ``;``, a name up to ``=``, spaces around both trimmed."""
    attrs = []
    for part in text.split(";"):
        part = part.lstrip(" ")
        name, equals, rest = part.partition("=")
        attrs.append([name.rstrip(" "), rest.strip(" ") if equals else None])
    return attrs


def _rewrite(attr: Attr, rules: tuple[RedirectRule, ...], rv: RequestVars, match) -> bool:
    for rule in rules:
        if rule.regex is not None:
            found = rule.regex.search(attr[1])
            if found is None:
                continue
            rv.captured(found)
            attr[1] = render(rule.replacement, rv)
            return True
        kept = match(attr[1], render(rule.pattern, rv))
        if kept is not None:
            attr[1] = kept[0] + render(rule.replacement, rv) + kept[1]
            return True
    return False


def _prefix(value: str, pattern: str) -> tuple[str, str] | None:
    """A path rule: the pattern starts the value, and is replaced."""
    return ("", value[len(pattern) :]) if value.startswith(pattern) else None


def _domain(value: str, pattern: str) -> tuple[str, str] | None:
    """A domain rule: the whole value but a leading dot, in any case; the dot stays."""
    dot = "." if value.startswith(".") else ""
    return (dot, "") if value[len(dot) :].lower() == pattern.lower() else None


def _apply_flags(attrs: list[Attr], lines: tuple[CookieFlags, ...], rv: RequestVars) -> bool:
    name = attrs[0][0]
    for line in lines:
        if line.regex is not None:
            found = line.regex.search(name)
            if found is not None:
                rv.captured(found)
                break
        elif line.cookie is not None and render(line.cookie, rv).lower() == name.lower():
            break
    else:
        return False
    flags = 0
    for template in line.flags:
        flags |= _FLAGS.get(render(template, rv).lower(), 0)
    if not flags:
        return False
    _edit(attrs, flags)
    return True


def _edit(attrs: list[Attr], flags: int) -> None:
    """The flags applied to the attributes present, then the ones still due appended, as nginx orders them."""
    for attr in attrs[1:]:
        key = attr[0].lower()
        if key == "secure":
            flags, attr[0] = _toggle(flags, _SECURE_ON, _SECURE_OFF, attr[0])
        elif key == "httponly":
            flags, attr[0] = _toggle(flags, _HTTPONLY_ON, _HTTPONLY_OFF, attr[0])
        elif key == "samesite":
            flags = _samesite(attr, flags)
    if flags & _SECURE_ON:
        attrs.append(["Secure", None])
    if flags & _HTTPONLY_ON:
        attrs.append(["HttpOnly", None])
    due = next((text for bit, text in _SAMESITE if flags & bit), None)
    if due is not None:
        attrs.append(["SameSite", due])


def _toggle(flags: int, on: int, off: int, key: str) -> tuple[int, str | None]:
    if flags & on:
        return flags & ~on, key
    return flags, None if flags & off else key


def _samesite(attr: Attr, flags: int) -> int:
    for bit, text in _SAMESITE:
        if flags & bit:
            if (attr[1] or "").lower() != text.lower():
                attr[0], attr[1] = "SameSite", text
            return flags & ~bit
    if flags & _SAMESITE_OFF:
        attr[0] = None
    return flags
