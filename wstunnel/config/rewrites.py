"""
The rewrite rules ``proxy_redirect``, ``proxy_cookie_domain`` and
``proxy_cookie_path`` share: a text to match (with variables) or a
``~regex``, and a replacement, compiled once at load.
"""

from __future__ import annotations

import re

from wstunnel.config.model import ConfigError, RedirectRule, Source, Template
from wstunnel.config.pcre import PcreError, compile_pcre
from wstunnel.config.read import Stmt
from wstunnel.config.walk import Load

__all__ = ["checked_regex", "compiled_regex", "literal", "rewrite_rule"]


def checked_regex(load: Load, stmt: Stmt, written: str, always_caseless: bool = False) -> re.Pattern[str]:
    """
    ``~regex`` (``~*regex`` caseless, unless every regex of the directive
    is) checked at its line; its named groups become variables, as a
    location's do.
    """
    pattern, caseless = _regex_parts(written, always_caseless)
    try:
        compiled = compile_pcre(pattern, caseless)
    except PcreError as exc:
        raise ConfigError(stmt.source, f'pcre2_compile() failed: {exc} in "{pattern}"') from None
    load.captures.update(name.lower() for name in compiled.groupindex)
    return compiled


def rewrite_rule(
    load: Load, args: tuple[str, ...], source: Source, always_caseless: bool = False
) -> RedirectRule | None:
    """A ``PATTERN REPLACEMENT`` pair compiled; None once an unknown variable is reported."""
    replacement = load.template(args[1], source)
    if args[0].startswith("~"):
        regex = compiled_regex(args[0], always_caseless)
        return None if replacement is None else RedirectRule(literal(args[0]), replacement, regex)
    pattern = load.template(args[0], source)
    if pattern is None or replacement is None:
        return None
    return RedirectRule(pattern, replacement)


def compiled_regex(written: str, always_caseless: bool = False) -> re.Pattern[str]:
    """A ``~regex`` that :func:`checked_regex` already let through."""
    return compile_pcre(*_regex_parts(written, always_caseless))


def literal(text: str) -> Template:
    return Template(text, (text,))


def _regex_parts(written: str, always_caseless: bool) -> tuple[str, bool]:
    if always_caseless:
        return written[1:], True
    if written.startswith("~*"):
        return written[2:], True
    return written[1:], False
