"""
The rewrite module per request: a :class:`~wstunnel.config.model.RewriteProgram`
compiled at load, run against one request's variables, as nginx's script
engine runs a server's or location's rewrite codes.

:func:`run` changes the request as it goes (``$uri`` and ``$args`` after a
``rewrite``, ``set`` variables, captures) and records on :class:`Rewriting`
what the phases around it need: whether the URI changed (a new location
search follows), whether a ``break`` left the location as it was, and the
implicit location of an ``if`` that held.  It returns the answer that ends
the request there (a ``return``, a redirect, a 500), or None to go on.
File tests go through the injected ``files`` function, so nothing here
touches the filesystem.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Union

from wstunnel.config.model import (
    BreakStep,
    Condition,
    IfBlock,
    Location,
    Return,
    RewriteProgram,
    RewriteRule,
    RewriteStep,
    SetVariable,
)
from wstunnel.core.redirect import new_target
from wstunnel.core.variables import RequestVars, render
from wstunnel.wire.errors import RequestError

__all__ = ["FileCheck", "Notice", "Redirected", "Rewriting", "no_files", "no_notice", "run"]

# ``files(test, path)``: test is "-f", "-d", "-e" or "-x"; the answer as nginx's open_file_info gives it.
FileCheck = Callable[[str, str], bool]


# Where the lines of ``rewrite_log on`` go.
Notice = Callable[[str], None]


def no_files(test: str, path: str) -> bool:
    """A filesystem where nothing exists: what a test gets unless it injects one."""
    return False


def no_notice(text: str) -> None:
    """``rewrite_log`` lines dropped: what a caller gets unless it injects a logger."""


class Redirected(NamedTuple):
    """A ``rewrite`` that answers: 301 or 302 with ``url`` as Location."""

    status: int
    url: str


Answer = Union[Return, Redirected, RequestError]


class Rewriting:
    """What one request's rewrite phases decided so far."""

    __slots__ = ("files", "notice", "uri_changed", "valid_location", "location")

    def __init__(self, files: FileCheck, notice: Notice) -> None:
        self.files = files
        self.notice = notice
        self.uri_changed = False  # a rewrite without "break" changed $uri: the location is searched again
        self.valid_location = True  # False once "break" kept a location its new $uri may not match
        self.location: Location | None = None  # the implicit location of the last "if" that held


class _Stop(Exception):
    """``break``, ``last``: this phase's remaining directives are skipped."""


def run(program: RewriteProgram, rv: RequestVars, state: Rewriting) -> Answer | None:
    """``program`` run for one request: the answer that ends it, or None to go on."""
    try:
        return _steps(program.steps, rv, state, program.log)
    except _Stop:
        return None


def _steps(steps: tuple[RewriteStep, ...], rv: RequestVars, state: Rewriting, log: bool) -> Answer | None:
    for step in steps:
        kind = step.__class__
        if kind is SetVariable:
            rv.assign(step.name, render(step.value, rv))  # type: ignore[union-attr]
        elif kind is RewriteRule:
            answer = _rewrite(step, rv, state, log)  # type: ignore[arg-type]
            if answer is not None:
                return answer
        elif kind is IfBlock:
            if _holds(step.condition, rv, state, log):  # type: ignore[union-attr]
                if step.location is not None:  # type: ignore[union-attr]
                    # Its block's settings apply from here: add_header to a return inside it too.
                    state.location = rv.location = step.location  # type: ignore[union-attr]
                answer = _steps(step.steps, rv, state, log)  # type: ignore[union-attr]
                if answer is not None:
                    return answer
        elif kind is BreakStep:
            if state.uri_changed:
                state.valid_location = False
                state.uri_changed = False
            raise _Stop
        else:
            return step  # type: ignore[return-value]
    return None


def _rewrite(rule: RewriteRule, rv: RequestVars, state: Rewriting, log: bool) -> Answer | None:
    """One ``rewrite``: nothing when its regex does not match $uri, else the new $uri and $args, or the redirect."""
    uri = rv.target.uri
    match = rule.pattern.search(uri)
    if match is None:
        rv.forget_captures()
        if log:
            state.notice(f'"{rule.pattern.pattern}" does not match "{uri}"')
        return None
    if log:
        state.notice(f'"{rule.pattern.pattern}" matches "{uri}"')
    rv.replaced_captures(match)
    old_args = rv.target.args
    new_uri = render(rule.uri, rv)
    new_args = None if rule.args is None else render(rule.args, rv)
    if rule.redirect:
        url = new_uri if new_args is None else f"{new_uri}?{new_args}"
        if rule.add_args and old_args:
            url += ("?" if new_args is None else "&") + old_args
        if log:
            state.notice(f'rewritten redirect: "{url}"')
        return Redirected(rule.redirect, url)
    if new_args is None:
        new_args = old_args if rule.add_args else ""
    elif rule.add_args and old_args:
        new_args += "&" + old_args
    if log:
        state.notice(f'rewritten data: "{new_uri}", args: "{new_args}"')
    if not new_uri:
        return RequestError(500, "the rewritten URI has a zero length")
    rv.retarget(new_target(new_uri, new_args, rv.target.host))
    if rule.flag == "break":
        state.valid_location = False
        state.uri_changed = False
    else:
        state.uri_changed = True
    if rule.flag:
        raise _Stop
    return None


def _holds(condition: Condition, rv: RequestVars, state: Rewriting, log: bool) -> bool:
    """An ``if`` condition for this request; a regex that matches sets the captures, one that fails clears them."""
    value = render(condition.value, rv)
    op = condition.op
    if op == "":
        return value not in ("", "0")
    if op == "=":
        assert condition.operand is not None
        return (value == render(condition.operand, rv)) != condition.negate
    if op == "~":
        assert condition.pattern is not None
        match = condition.pattern.search(value)
        if log:
            verdict = "does not match" if match is None else "matches"
            state.notice(f'"{condition.pattern.pattern}" {verdict} "{value}"')
        if match is None:
            rv.forget_captures()
        else:
            rv.replaced_captures(match)
        return (match is not None) != condition.negate
    return state.files(op, value) != condition.negate
