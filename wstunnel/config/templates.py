"""
nginx variables in directive values: ``$name`` / ``${name}`` compiled into
:class:`~wstunnel.config.model.Template` values at load time.

Every name is checked now, so an unknown variable is a config error at its
line and the request path (:mod:`wstunnel.core.variables`) only looks values
up and concatenates.
"""

from __future__ import annotations

import re
from typing import Collection

from wstunnel.config.model import ConfigError, Source, Template, VarRef

__all__ = [
    "ARG_PREFIX",
    "BUILTIN_VARIABLES",
    "HEADER_PREFIX",
    "NUMBERED_CAPTURES",
    "SENT_PREFIX",
    "compile_template",
    "is_builtin",
]

BUILTIN_VARIABLES = frozenset(
    {
        "host",
        "remote_addr",
        "binary_remote_addr",
        "limit_conn_status",
        "limit_req_status",
        "remote_port",
        "server_addr",
        "server_port",
        "server_name",
        "scheme",
        "request_uri",
        "request_method",
        "request_filename",
        "document_root",
        "uri",
        "args",
        "query_string",
        "is_args",
        "proxy_host",
        "proxy_add_x_forwarded_for",
        "proxy_protocol_addr",
        "proxy_protocol_port",
        "ssl_protocol",
        "ssl_cipher",
        "ssl_server_name",
        "ssl_client_s_dn",
        "ssl_client_verify",
        "upstream_cache_status",
    }
)
HEADER_PREFIX = "http_"
SENT_PREFIX = "sent_http_"
ARG_PREFIX = "arg_"
# $1..$9: a regex's captures; one digit, so "$12" is $1 then "2", as in nginx.
NUMBERED_CAPTURES = frozenset("123456789")

# "$" then either "{name}" (closing brace optional so we can report it), a capture digit or a bare name.
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)(\}?)|([1-9]|[A-Za-z0-9_]*))")


def is_builtin(name: str) -> bool:
    """Whether ``name`` (lower-case, no ``$``) is provided by wstunnel itself."""
    return name in BUILTIN_VARIABLES or name.startswith((HEADER_PREFIX, ARG_PREFIX, SENT_PREFIX))


def compile_template(text: str, source: Source, maps: Collection[str]) -> Template:
    """
    Split ``text`` into literals and variable references, checking every
    name now; nginx variable names are case-insensitive, so they are
    stored lower-cased.
    """
    parts: list[str | VarRef] = []
    literal = ""
    pos = 0
    for match in _VARIABLE.finditer(text):
        braced, closing, bare = match.groups()
        name = bare if braced is None else braced
        if braced is not None and not closing:
            raise ConfigError(source, f'the closing bracket in "{braced}" variable is missing')
        if not name:
            raise ConfigError(source, f'invalid variable name in "{text}"')
        name = name.lower()
        if (not is_builtin(name) and name not in maps) or (braced is not None and name in NUMBERED_CAPTURES):
            raise ConfigError(source, f'unknown "{name}" variable')
        literal += text[pos : match.start()]
        if literal:
            parts.append(literal)
            literal = ""
        parts.append(VarRef(name))
        pos = match.end()
    literal += text[pos:]
    if literal or not parts:
        parts.append(literal)
    return Template(text=text, parts=tuple(parts))
