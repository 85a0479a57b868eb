"""
nginx's internal redirects, under one count for the whole request however
it is redirected: a rewrite that changed ``$uri`` (the locations searched
again), a ``try_files`` or ``index`` jump, an ``error_page``, a named
location.  nginx allows ten; the eleventh is a 500 that no error page
replaces.  ``$request_uri`` stays what the client sent, while the target the
request goes on with (what ``proxy_pass`` without a URI sends) is the new one.
"""

from __future__ import annotations

from attrs import evolve

from wstunnel.core.routing import escape_path
from wstunnel.wire.request import Target
from wstunnel.core.variables import RequestVars

__all__ = ["MAX_REDIRECTS", "carried", "counted", "moved_target"]

# nginx's NGX_HTTP_MAX_URI_CHANGES.
MAX_REDIRECTS = 10


def counted(rv: RequestVars) -> bool:
    """One more internal redirect of ``rv``'s request: False once it is over the limit."""
    rv.redirects += 1
    return rv.redirects <= MAX_REDIRECTS


def moved_target(target: Target, uri: str, args: str | None) -> Target:
    """``target`` redirected to ``uri``; ``args`` None keeps its arguments."""
    if args is None:
        args = target.args
    query = f"?{args}" if args else ""
    return evolve(target, uri=uri, args=args, request_uri=escape_path(uri) + query)


def carried(rv: RequestVars, new: RequestVars) -> RequestVars:
    """``new`` goes on as ``rv``'s request: with its count of redirects and its client's ``$request_uri``."""
    new.redirects = rv.redirects
    client = rv.client_target
    if new.target is not client:
        target = new.target
        new.target = client
        new.retarget(target)
    return new
