"""
``error_log``, ``access_log`` and ``log_format``: where each level logs,
and the access-log formats compiled once every map is known.
"""

from __future__ import annotations

import os

from wstunnel.config.levels import Level
from wstunnel.config.logformats import ESCAPES, combined_format, compile_log_format
from wstunnel.config.model import ERROR_LOG_LEVELS, AccessLog, ConfigError, ErrorLog, LogFormat, MapDef, Source
from wstunnel.config.read import Stmt
from wstunnel.config.templates import NUMBERED_CAPTURES
from wstunnel.config.walk import Load

__all__ = ["access_log", "compile_log_formats", "error_log", "log_format"]


def error_log(load: Load, stmt: Stmt, level: Level) -> None:
    path = stmt.args[0]
    severity = stmt.args[1] if len(stmt.args) > 1 else "error"
    if path.startswith(("syslog:", "memory:")):
        raise ConfigError(stmt.source, f'"{path.split(":")[0]}:" error logs are not supported by wstunnel')
    if severity not in ERROR_LOG_LEVELS:
        raise ConfigError(stmt.source, f'invalid log level "{severity}"')
    if level.error_logs is None:
        level.error_logs = []
    level.error_logs.append(ErrorLog(_log_path(load, path), severity, stmt.source))


def log_format(load: Load, stmt: Stmt, level: Level) -> None:
    name, *strings = stmt.args
    escaping = "default"
    if strings and strings[0].startswith("escape="):
        escaping = strings.pop(0)[len("escape="):]
        if escaping not in ESCAPES:
            raise ConfigError(stmt.source, f'unknown log format escaping "{escaping}"')
    if not strings:
        raise ConfigError(stmt.source, 'invalid number of arguments in "log_format" directive')
    if name == "combined" or name in load.log_formats:
        raise ConfigError(stmt.source, f'duplicate "log_format" name "{name}"')
    load.log_formats[name] = (escaping, "".join(strings), stmt.source)


def access_log(load: Load, stmt: Stmt, level: Level) -> None:
    path, *rest = stmt.args
    if path == "off":
        if rest:
            raise ConfigError(stmt.source, f'invalid parameter "{rest[0]}"')
        level.access_off = True
        return
    if path.startswith("syslog:"):
        raise ConfigError(stmt.source, '"syslog:" access logs are not supported by wstunnel')
    if "$" in path:
        raise ConfigError(stmt.source, "variables in access_log paths are not supported by wstunnel")
    format_name = rest[0] if rest else "combined"
    if format_name != "combined" and format_name not in load.log_formats:
        raise ConfigError(stmt.source, f'unknown log format "{format_name}"')
    if len(rest) > 1:
        raise ConfigError(stmt.source, f'access_log parameter "{rest[1]}" is not supported by wstunnel')
    if level.access_logs is None:
        level.access_logs = []
    level.access_logs.append(AccessLog(_log_path(load, path), format_name, stmt.source))


def _log_path(load: Load, path: str) -> str:
    """Log files are relative to the main config file's directory."""
    if path in ("stderr", "stdout"):
        return path
    return os.path.join(load.main_dir, path)


def compile_log_formats(load: Load, maps: dict[str, MapDef]) -> dict[str, LogFormat]:
    formats = {"combined": combined_format(Source(load.path, 0))}
    named_captures = load.captures - NUMBERED_CAPTURES  # nginx's log_format has no $1..$9
    for name, (escaping, text, source) in load.log_formats.items():
        try:
            formats[name] = compile_log_format(name, escaping, text, source, maps.keys() | named_captures)
        except ConfigError as exc:
            load.errors.append(exc)
    return formats
