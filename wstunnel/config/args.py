"""
Directive arguments that are numbers, times and sizes, with nginx's wording
for a bad one: ``invalid value "x" in "keepalive" directive``.
"""

from __future__ import annotations

from wstunnel.config.model import ConfigError
from wstunnel.config.read import Stmt
from wstunnel.config.units import parse_size, parse_time

__all__ = ["count", "positive", "size_arg", "time_arg"]


def positive(stmt: Stmt) -> int:
    value = stmt.args[0]
    if not (value.isdigit() and int(value) > 0):
        raise ConfigError(stmt.source, f'invalid value "{value}" in "{stmt.name}" directive')
    return int(value)


def count(stmt: Stmt, text: str, *, lowest: int) -> int:
    if not text.isdigit() or int(text) < lowest:
        raise ConfigError(stmt.source, f'invalid value "{text}" in "{stmt.name}" directive')
    return int(text)


def time_arg(stmt: Stmt, text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive {exc}') from None


def size_arg(stmt: Stmt, text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ConfigError(stmt.source, f'"{stmt.name}" directive {exc}') from None
