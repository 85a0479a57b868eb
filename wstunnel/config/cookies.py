"""
``proxy_cookie_domain``, ``proxy_cookie_path`` and ``proxy_cookie_flags``:
checked as they are read, compiled once per level that writes them, as
nginx 1.22 reads them.  Each is a list inherited all-or-nothing; ``off``
cancels the inherited one and may not stand beside a line of its own level.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError, CookieFlags, CookieRules, RedirectRule, Source
from wstunnel.config.read import Stmt
from wstunnel.config.rewrites import checked_regex, compiled_regex, rewrite_rule
from wstunnel.config.walk import Load

__all__ = ["COMPILERS", "cookie_flags", "cookie_rewrite", "cookie_rules"]

_OFF = ("off",)
Written = Sequence[tuple[tuple[str, ...], Source]]


def cookie_rewrite(load: Load, stmt: Stmt, level: Level) -> None:
    """``proxy_cookie_domain`` and ``proxy_cookie_path``: ``off`` or ``PATTERN REPLACEMENT``."""
    _check_list(stmt, level)
    if len(stmt.args) == 2 and stmt.args[0].startswith("~"):
        checked_regex(load, stmt, stmt.args[0], always_caseless=stmt.name == "proxy_cookie_domain")
    level.shaping.setdefault(stmt.name, []).append((stmt.args, stmt.source))


def cookie_flags(load: Load, stmt: Stmt, level: Level) -> None:
    """
    ``proxy_cookie_flags off`` or ``COOKIE FLAG...``.  As in nginx the flags
    may hold variables, so an unknown one is skipped when the answer comes,
    not refused here.
    """
    _check_list(stmt, level)
    if len(stmt.args) > 1 and stmt.args[0].startswith("~"):
        checked_regex(load, stmt, stmt.args[0], always_caseless=True)
    level.shaping.setdefault(stmt.name, []).append((stmt.args, stmt.source))


def _check_list(stmt: Stmt, level: Level) -> None:
    written = level.shaping.get(stmt.name)
    if written is not None and (written[0][0] == _OFF or stmt.args == _OFF):
        raise ConfigError(stmt.source, f'"{stmt.name}" directive is duplicate')
    if len(stmt.args) == 1 and stmt.args != _OFF:
        raise ConfigError(stmt.source, f'invalid parameter "{stmt.args[0]}"')


def _domains(load: Load, written: Written) -> tuple[RedirectRule, ...]:
    """A domain's leading dot is not part of what is compared or written, as in nginx."""
    pairs = [(a if a[0].startswith("~") else (a[0].removeprefix("."), a[1].removeprefix(".")), s) for a, s in written]
    return _rules(load, pairs, always_caseless=True)


def _paths(load: Load, written: Written) -> tuple[RedirectRule, ...]:
    return _rules(load, written, always_caseless=False)


def _rules(load: Load, written: Written, always_caseless: bool) -> tuple[RedirectRule, ...]:
    if written[0][0] == _OFF:
        return ()
    compiled = (rewrite_rule(load, args, source, always_caseless) for args, source in written)
    return tuple(rule for rule in compiled if rule is not None)


def _flags(load: Load, written: Written) -> tuple[CookieFlags, ...]:
    if written[0][0] == _OFF:
        return ()
    out = []
    for (cookie, *flags), source in written:
        regex = compiled_regex(cookie, True) if cookie.startswith("~") else None
        name = load.template(cookie, source) if regex is None else None
        values = [load.template(flag, source) for flag in flags]
        if (regex is not None or name is not None) and None not in values:
            out.append(CookieFlags(name, regex, tuple(values)))  # type: ignore[arg-type]
    return tuple(out)


COMPILERS = {
    "proxy_cookie_domain": _domains,
    "proxy_cookie_path": _paths,
    "proxy_cookie_flags": _flags,
}


def cookie_rules(shaping: Mapping[str, object]) -> CookieRules | None:
    """The effective rules of a location, or None when Set-Cookie passes untouched."""
    rules = CookieRules(
        domains=shaping.get("proxy_cookie_domain", ()),  # type: ignore[arg-type]
        paths=shaping.get("proxy_cookie_path", ()),  # type: ignore[arg-type]
        flags=shaping.get("proxy_cookie_flags", ()),  # type: ignore[arg-type]
    )
    return rules if rules.domains or rules.paths or rules.flags else None
