"""
The directives that shape the response head the client gets from any
source: ``add_header`` (headers added on top of the upstream's or on
wstunnel's own answers) and ``server_tokens``.
"""

from __future__ import annotations

from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError
from wstunnel.config.proxy import check_header_line
from wstunnel.config.read import Stmt
from wstunnel.config.walk import Load

__all__ = ["add_header", "server_tokens"]


def add_header(load: Load, stmt: Stmt, level: Level) -> None:
    """A level with any ``add_header`` replaces the enclosing level's whole list, as in nginx."""
    name, value, *rest = stmt.args
    if rest and rest[0] != "always":
        raise ConfigError(stmt.source, f'invalid parameter "{rest[0]}" in "add_header" directive')
    check_header_line(stmt, name, value)
    if level.add_headers is None:
        level.add_headers = []
    level.add_headers.append((name, value, bool(rest), stmt.source))


def server_tokens(load: Load, stmt: Stmt, level: Level) -> None:
    """
    Checked and accepted: wstunnel never shows its version, so its
    ``Server`` header and error pages say ``wstunnel`` whatever the value.
    """
    if stmt.args[0] not in ("on", "off", "build"):
        raise ConfigError(
            stmt.source, f'invalid value "{stmt.args[0]}" in "server_tokens" directive, it must be "on", "off" or "build"'
        )
