"""
The rewrite module's directives (``return``, ``rewrite``, ``set``, ``if``,
``break``, ``rewrite_log``) at server and location level and inside
``if``.  Each is checked and compiled as it is read (regexes, templates,
the replacement split into URI and arguments) and recorded in file order on
its level; :func:`rewrite_program` turns a level's list into the immutable
:class:`~wstunnel.config.model.RewriteProgram` that
:mod:`wstunnel.core.rewrite` runs per request.
"""

from __future__ import annotations

import re
from typing import Callable

from wstunnel.config.levels import Level, LocationLevel, RawIf, RawStep
from wstunnel.config.model import (
    BreakStep,
    Condition,
    ConfigError,
    IfBlock,
    Location,
    Return,
    RewriteProgram,
    RewriteRule,
    RewriteStep,
    SetVariable,
    Source,
    Template,
)
from wstunnel.config.pcre import PcreError, compile_pcre
from wstunnel.config.read import Stmt, flag
from wstunnel.config.templates import compile_template, is_builtin
from wstunnel.config.walk import LOCATION_IF, SERVER_IF, Load

__all__ = [
    "REDIRECT_STATUSES",
    "break_directive",
    "if_directive",
    "if_locations",
    "return_directive",
    "rewrite_directive",
    "rewrite_log",
    "rewrite_program",
    "set_directive",
]

# The codes whose text is the Location of the answer, as in nginx.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_URL_STARTS = ("http://", "https://", "$scheme")
_FLAGS = {"last": 0, "break": 0, "redirect": 302, "permanent": 301}
_MATCHES = {"~": False, "~*": True, "!~": False, "!~*": True}
_FILE_TESTS = ("-f", "-d", "-e", "-x")


def _steps(level: Level) -> list[RawStep]:
    if level.rewrites is None:
        level.rewrites = []
    return level.rewrites


def return_directive(load: Load, stmt: Stmt, level: Level) -> None:
    """``return code [text]``, ``return code URL``, ``return URL`` (a 302)."""
    first, *rest = stmt.args
    if first.isdigit() and int(first) <= 999:
        status, text = int(first), (rest[0] if rest else None)
    elif not rest and first.startswith(_URL_STARTS):
        status, text = 302, first
    else:
        raise ConfigError(stmt.source, f'invalid return code "{first}"')
    template = None if text is None else load.template(text, stmt.source)
    if text is not None and template is None:
        return
    _steps(level).append(Return(status, template))


def break_directive(load: Load, stmt: Stmt, level: Level) -> None:
    _steps(level).append(BreakStep())


def rewrite_log(load: Load, stmt: Stmt, level: Level) -> None:
    level.rewrite_log = flag(stmt)


def set_directive(load: Load, stmt: Stmt, level: Level) -> None:
    """
    ``set $name value``: the name was declared before the walk, so any
    template may use it; a ``map``'s variable may be set too, as in nginx.
    """
    name, value = stmt.args
    if not name.startswith("$") or len(name) == 1:
        raise ConfigError(stmt.source, f'invalid variable name "{name}"')
    name = name[1:].lower()
    if is_builtin(name):
        raise ConfigError(stmt.source, f'the duplicate "{name}" variable')
    _steps(level).append(SetVariable(name, _template(load, value, stmt.source)))


def rewrite_directive(load: Load, stmt: Stmt, level: Level) -> None:
    """
    ``rewrite regex replacement [flag]`` with nginx's reading of the
    replacement: one starting with ``http://``, ``https://`` or ``$scheme``
    is a redirect (302 unless ``permanent``), a trailing ``?`` keeps the
    client's arguments off, and a literal ``?`` starts new arguments.
    """
    regex, replacement, *flag = stmt.args
    flag_name = flag[0] if flag else ""
    if flag_name and flag_name not in _FLAGS:
        raise ConfigError(stmt.source, f'invalid parameter "{flag_name}"')
    pattern = _regex(load, stmt, regex, caseless=False)
    redirect = _FLAGS.get(flag_name, 0)
    if not redirect and replacement.startswith(_URL_STARTS):
        redirect = 302
    add_args = not replacement.endswith("?")
    uri_text, question, args_text = (replacement if add_args else replacement[:-1]).partition("?")
    uri = _template(load, uri_text, stmt.source)
    args = _template(load, args_text, stmt.source) if question else None
    _steps(level).append(RewriteRule(pattern, uri, args, add_args, flag_name, redirect, stmt.source))


def if_directive(load: Load, stmt: Stmt, level: Level) -> None:
    """
    ``if (condition) { ... }``.  At server level only the rewrite module's
    directives may be inside; in a location the block is also an implicit
    location that inherits from it (its ``proxy_pass`` too) and takes the
    request when the condition holds.
    """
    condition = _condition(load, stmt)
    if isinstance(level, LocationLevel):
        inner: Level = LocationLevel(
            stmt.source, path=level.path, exact=level.exact, modifier=level.modifier, regex=level.regex, implicit=True
        )
        ctx = LOCATION_IF
    else:
        inner, ctx = Level(stmt.source), SERVER_IF
    _steps(level).append(RawIf(condition, inner))
    load.walk(stmt.block or (), ctx, inner)
    if isinstance(inner, LocationLevel) and inner.proxy_pass is not None and inner.proxy_pass.uri is not None:
        if "$" not in inner.proxy_pass.uri:
            raise ConfigError(
                inner.proxy_pass.source,
                '"proxy_pass" cannot have URI part in location given by regular expression, or inside named '
                'location, or inside "if" statement, or inside "limit_except" block',
            )


def _condition(load: Load, stmt: Stmt) -> Condition:
    """nginx's ngx_http_rewrite_if_condition: a variable, a comparison, a regex match or a file test."""
    args = stmt.args
    first = args[0]
    if first.startswith("$"):
        value = _template(load, first, stmt.source)
        if len(args) == 1:
            return Condition("", value)
        if len(args) != 3:
            raise ConfigError(stmt.source, f'invalid condition "{first}"')
        op, operand = args[1], args[2]
        if op in ("=", "!="):
            return Condition("=", value, operand=_template(load, operand, stmt.source), negate=op == "!=")
        if op in _MATCHES:
            pattern = _regex(load, stmt, operand, caseless=_MATCHES[op])
            return Condition("~", value, pattern=pattern, negate=op.startswith("!"))
        raise ConfigError(stmt.source, f'unexpected "{op}" in condition')
    test = first[1:] if first.startswith("!") else first
    if test in _FILE_TESTS and len(args) == 2:
        return Condition(test, _template(load, args[1], stmt.source), negate=first.startswith("!"))
    raise ConfigError(stmt.source, f'invalid condition "{first}"')


def _template(load: Load, text: str, source: Source) -> Template:
    """``text`` compiled, its mistake raised for the walk to record."""
    return compile_template(text, source, load.maps.keys() | load.captures)


def _regex(load: Load, stmt: Stmt, text: str, *, caseless: bool) -> re.Pattern[str]:
    """A regex compiled now; its named groups become variables, as a location's do."""
    try:
        compiled = compile_pcre(text, caseless)
    except PcreError as exc:
        raise ConfigError(stmt.source, f'pcre2_compile() failed: {exc} in "{text}"') from None
    for name in compiled.groupindex:
        load.declare(name, stmt.source)
    return compiled




def rewrite_program(
    load: Load, level: Level, build_if: Callable[[LocationLevel], Location] | None
) -> RewriteProgram | None:
    """
    ``level``'s rewrite directives as the program a request runs, None when
    it has none (the per-request path then skips the phase).  ``build_if``
    builds the implicit location of a location's ``if``.
    """
    if not level.rewrites or (isinstance(level, LocationLevel) and level.implicit):
        return None
    return RewriteProgram(_compiled(load, level, build_if), _logging(load, level))


def _compiled(
    load: Load, level: Level, build_if: Callable[[LocationLevel], Location] | None
) -> tuple[RewriteStep, ...]:
    steps: list[RewriteStep] = []
    for step in level.rewrites or ():
        if isinstance(step, RawIf):
            inner = step.level
            location = None
            if isinstance(inner, LocationLevel) and build_if is not None:
                assert isinstance(level, LocationLevel)
                if inner.proxy_pass is None:
                    inner.proxy_pass = level.proxy_pass
                location = build_if(inner)
            steps.append(IfBlock(step.condition, _compiled(load, inner, build_if), location))
        else:
            steps.append(step)
    return tuple(steps)


def _logging(load: Load, level: Level) -> bool:
    """``rewrite_log`` in force at ``level``: its own, else the nearest enclosing level's, else off."""
    here: Level | None = level
    while here is not None:
        if here.rewrite_log is not None:
            return here.rewrite_log
        here = load.parent(here)
    return bool(load.http.rewrite_log)


def if_locations(location: Location) -> tuple[Location, ...]:
    """The implicit locations of ``location``'s ``if`` blocks: served like it, never found by a search."""
    if location.rewrites is None:
        return ()
    return tuple(step.location for step in location.rewrites.steps if isinstance(step, IfBlock) and step.location)
