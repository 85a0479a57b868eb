"""
The rewrite module's directives; so far ``return``, at server and location
level (``if``, ``rewrite`` and ``set`` are not supported yet).
"""

from __future__ import annotations

from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError, Return
from wstunnel.config.read import Stmt
from wstunnel.config.walk import Load

__all__ = ["REDIRECT_STATUSES", "return_directive"]

# The codes whose text is the Location of the answer, as in nginx.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_URL_STARTS = ("http://", "https://", "$scheme")


def return_directive(load: Load, stmt: Stmt, level: Level) -> None:
    """
    ``return code [text]``, ``return code URL``, ``return URL`` (a 302).
    nginx runs the first ``return`` of a level and never reaches the ones
    after it, so those are checked and dropped.
    """
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
    if level.returns is None:
        level.returns = Return(status, template)
