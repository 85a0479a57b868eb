"""
``log_format`` at load time: a format's text compiled into a
:class:`~wstunnel.config.model.LogFormat`, its variables checked against the
request variables, the maps and the log-only variables that
:mod:`wstunnel.core.logformat` fills in when a line is written.
"""

from __future__ import annotations

from typing import Collection

from wstunnel.config.model import LogFormat, Source
from wstunnel.config.templates import compile_template

__all__ = [
    "COMBINED",
    "ESCAPES",
    "LOG_VARIABLES",
    "combined_format",
    "compile_log_format",
]

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
ESCAPES = ("default", "json", "none")
# Known only once the request is over; wstunnel.core.logformat has one getter for each.
LOG_VARIABLES = frozenset(
    {
        "status",
        "body_bytes_sent",
        "bytes_sent",
        "request_length",
        "connection",
        "connection_requests",
        "tunnel_close_reason",
        "request",
        "request_time",
        "time_local",
        "time_iso8601",
        "msec",
        "remote_user",
        "upstream_addr",
        "upstream_status",
        "upstream_connect_time",
        "upstream_header_time",
        "upstream_response_time",
        "upstream_bytes_sent",
        "upstream_bytes_received",
    }
)


def compile_log_format(name: str, escaping: str, text: str, source: Source, maps: Collection[str]) -> LogFormat:
    """A ``log_format``; an unknown variable is a ConfigError at ``source``."""
    template = compile_template(text, source, LOG_VARIABLES.union(maps))
    return LogFormat(name, escaping, template, source)


def combined_format(source: Source) -> LogFormat:
    """nginx's predefined ``combined``."""
    return compile_log_format("combined", "default", COMBINED, source, ())
