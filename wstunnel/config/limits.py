"""
What one client may cost: the client timeouts, keep-alive, header buffers
and the largest body, set per level and merged into
:class:`~wstunnel.config.model.ClientLimits`.
"""

from __future__ import annotations

from wstunnel.config.args import count, size_arg, time_arg
from wstunnel.config.levels import Level, UpstreamLevel
from wstunnel.config.model import ConfigError
from wstunnel.config.read import Stmt
from wstunnel.config.walk import Load

__all__ = ["client_count", "client_max_body_size", "client_time", "header_buffers", "keepalive_timeout"]

_CLIENT_FIELDS = {"client_header_timeout": "header_timeout", "client_body_timeout": "body_timeout"}
_COUNT_FIELDS = {"keepalive_requests": "keepalive_requests"}


def client_time(load: Load, stmt: Stmt, level: Level) -> None:
    level.client[_CLIENT_FIELDS[stmt.name]] = time_arg(stmt, stmt.args[0])


def keepalive_timeout(load: Load, stmt: Stmt, level: Level) -> None:
    if len(stmt.args) > 1:
        raise ConfigError(stmt.source, 'the "keepalive_timeout" header timeout parameter is not supported by wstunnel')
    level.client["keepalive_timeout"] = time_arg(stmt, stmt.args[0])


def client_count(load: Load, stmt: Stmt, level: Level) -> None:
    """``keepalive_requests``: of a client connection, or in an upstream block of an upstream one."""
    target = level.keepalive if isinstance(level, UpstreamLevel) else level.client
    target[_COUNT_FIELDS[stmt.name]] = count(stmt, stmt.args[0], lowest=0)


def header_buffers(load: Load, stmt: Stmt, level: Level) -> None:
    number, size = stmt.args
    buffers = count(stmt, number, lowest=1)
    length = size_arg(stmt, size)
    if length < 64:
        raise ConfigError(stmt.source, f'"{stmt.name}" buffer size {size} is too small')
    level.client["header_buffers"] = buffers
    level.client["header_buffer_size"] = length


def client_max_body_size(load: Load, stmt: Stmt, level: Level) -> None:
    level.client["max_body_size"] = size_arg(stmt, stmt.args[0])
