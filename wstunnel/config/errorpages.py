"""
``error_page``, ``recursive_error_pages`` and ``proxy_intercept_errors``:
which answer replaces an error, checked as nginx checks them and inherited
as nginx inherits them (a level with any ``error_page`` replaces the
enclosing level's whole list; the two switches inherit one by one).
"""

from __future__ import annotations

from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError, ErrorPage, ErrorPages
from wstunnel.config.read import Stmt, flag
from wstunnel.config.walk import Load

__all__ = ["error_page", "error_switch", "inherited_errors"]

# nginx's internal code for a request that reached no handler: never a page's code.
_CLIENT_CLOSED = 499
# nginx's internal codes answered as 400 (header too large, the TLS refusals):
# without "=", their pages answer 400 too.
_SENT_AS_400 = frozenset({494, 495, 496, 497})
_SWITCHES = {"recursive_error_pages": "recursive", "proxy_intercept_errors": "intercept"}


def error_page(load: Load, stmt: Stmt, level: Level) -> None:
    """``error_page code ... [=[response]] uri|@name|URL``."""
    *codes, target = stmt.args
    overwrite = None
    if codes[-1].startswith("="):
        if len(codes) == 1:
            raise _invalid(stmt, codes[0])
        overwrite = _overwrite(stmt, codes.pop())
    statuses = [_code(stmt, text) for text in codes]
    template = load.template(target, stmt.source)
    if template is None:
        return
    if level.error_pages is None:
        level.error_pages = []
    level.error_pages.extend(
        ErrorPage(status, template, 400 if overwrite is None and status in _SENT_AS_400 else overwrite, stmt.source)
        for status in statuses
    )


def error_switch(load: Load, stmt: Stmt, level: Level) -> None:
    """``recursive_error_pages`` and ``proxy_intercept_errors``: on or off."""
    level.error_switches[_SWITCHES[stmt.name]] = flag(stmt)


def inherited_errors(level: Level, parent: ErrorPages) -> ErrorPages:
    """The error pages in force at ``level`` inside ``parent``."""
    switches = level.error_switches
    return ErrorPages(
        pages=parent.pages if level.error_pages is None else tuple(level.error_pages),
        recursive=switches.get("recursive", parent.recursive),
        intercept=switches.get("intercept", parent.intercept),
    )


def _overwrite(stmt: Stmt, text: str) -> int:
    """``=``: the page's own code (0); ``=code``: that code."""
    if text == "=":
        return 0
    if not text[1:].isdigit():
        raise _invalid(stmt, text)
    return int(text[1:])


def _code(stmt: Stmt, text: str) -> int:
    if not text.isdigit() or int(text) == _CLIENT_CLOSED:
        raise _invalid(stmt, text)
    status = int(text)
    if not 300 <= status <= 599:
        raise ConfigError(stmt.source, f'value "{text}" in "{stmt.name}" directive must be between 300 and 599')
    return status


def _invalid(stmt: Stmt, text: str) -> ConfigError:
    return ConfigError(stmt.source, f'invalid value "{text}" in "{stmt.name}" directive')
