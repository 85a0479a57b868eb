"""
nginx's internal redirects, under one count for the whole request however
it is redirected: a rewrite that changed ``$uri`` (the locations searched
again), a ``try_files`` or ``index`` jump, an ``error_page``, a named
location.  nginx allows ten; the eleventh is a 500 that no error page
replaces.  ``$request_uri`` stays what the client sent, while the target the
request goes on with (what ``proxy_pass`` without a URI sends) is the new
one (:meth:`~wstunnel.core.variables.RequestVars.carry_on`).
"""

from __future__ import annotations

from wstunnel.config.model import Location, Server
from wstunnel.core.routing import escape_path
from wstunnel.core.variables import RequestVars
from wstunnel.wire.request import Target

__all__ = ["MAX_REDIRECTS", "counted", "moved_target", "named_location", "new_target"]

# nginx's NGX_HTTP_MAX_URI_CHANGES.
MAX_REDIRECTS = 10


def counted(rv: RequestVars) -> bool:
    """One more internal redirect of ``rv``'s request: False once it is over the limit."""
    rv.redirects += 1
    return rv.redirects <= MAX_REDIRECTS


def named_location(server: Server, name: str) -> Location | None:
    """The location ``@name`` of ``server``, which try_files and error_page reach by name rather than by URI."""
    return next((each for each in server.locations if each.named and each.path == name), None)


# What a request line cannot carry, escaped in new arguments: a capture of
# the decoded $uri may hold a space, a CR or an LF.
_UNSAFE_IN_ARGS = {c: f"%{c:02X}" for c in range(256) if c <= 0x20 or c >= 0x7F}


def new_target(uri: str, args: str, host: str | None) -> Target:
    """
    The request's target once an internal redirect or a rewrite gave it a
    new ``$uri`` and ``$args``: what goes upstream is the new URI escaped, as
    nginx sends it, and arguments never carry a byte a request line cannot.
    """
    path = escape_path(uri)
    args = args.translate(_UNSAFE_IN_ARGS)
    return Target(path=path, args=args, uri=uri, request_uri=f"{path}?{args}" if args else path, host=host)


def moved_target(target: Target, uri: str, args: str | None) -> Target:
    """``target`` redirected to ``uri``; ``args`` None keeps its arguments."""
    return new_target(uri, target.args if args is None else args, target.host)

