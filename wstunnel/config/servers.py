"""
Virtual servers: the ``http`` and ``server`` blocks, ``listen``,
``server_name``, the trusted sources of the client address, and the TLS
settings of each level; then each :class:`~wstunnel.config.model.Server`
built with its locations.
"""

from __future__ import annotations

import ipaddress
import os

from attrs import evolve

from wstunnel.config import tls
from wstunnel.config.files import file_settings
from wstunnel.config.inherit import Effective, effective
from wstunnel.config.levels import Level, ServerLevel
from wstunnel.config.locations import build_locations
from wstunnel.config.model import ConfigError, Listen, Server, Upstream
from wstunnel.config.read import Stmt
from wstunnel.config.rewrite import rewrite_program
from wstunnel.config.walk import HTTP, SERVER, Load

__all__ = [
    "build_server",
    "http_block",
    "real_ip_header",
    "server_block",
    "server_name",
    "set_real_ip_from",
    "tls_setting",
]


def http_block(load: Load, stmt: Stmt, level: Level) -> None:
    load.http.source = stmt.source
    load.walk(stmt.block or (), HTTP, load.http)


def server_block(load: Load, stmt: Stmt, level: Level) -> None:
    server = ServerLevel(stmt.source)
    load.servers.append(server)
    load.walk(stmt.block or (), SERVER, server)


def server_name(load: Load, stmt: Stmt, level: Level) -> None:
    assert isinstance(level, ServerLevel)
    for name in stmt.args:
        if name.startswith("~"):
            raise ConfigError(stmt.source, f'regular expression server names are not supported by wstunnel: "{name}"')
        if "$" in name:
            raise ConfigError(stmt.source, f'variables in "server_name" are not supported by wstunnel: "{name}"')
        if name.startswith(".") or "*" in name.removeprefix("*."):
            raise ConfigError(
                stmt.source, f'server name "{name}" is not supported by wstunnel (only exact names and "*.suffix")'
            )
        level.names.append(name.lower())


def set_real_ip_from(load: Load, stmt: Stmt, level: Level) -> None:
    value = stmt.args[0]
    if value.startswith("unix:"):
        raise ConfigError(stmt.source, '"set_real_ip_from unix:" is not supported by wstunnel')
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(stmt.source, f'invalid network "{value}" in "set_real_ip_from" directive') from None
    if level.real_ip_from is None:
        level.real_ip_from = []
    level.real_ip_from.append(network)


def real_ip_header(load: Load, stmt: Stmt, level: Level) -> None:
    if stmt.args[0] != "proxy_protocol":
        raise ConfigError(
            stmt.source, f'"real_ip_header {stmt.args[0]}" is not supported by wstunnel (only proxy_protocol)'
        )
    level.real_ip_header = stmt.args[0]


def tls_setting(load: Load, stmt: Stmt, level: Level) -> None:
    """An ``ssl_*`` or ``proxy_ssl_*`` value, checked now and inherited one by one."""
    level.tls[stmt.name] = tls.parse_setting(
        stmt.name, stmt.args, stmt.source, load.materials.warnings, level.tls.get(stmt.name)
    )


def build_server(
    load: Load,
    level: ServerLevel,
    http: Effective,
    upstreams: dict[str, Upstream],
    implicit: dict[tuple[str, int], Upstream],
) -> Server:
    """A server with every setting inherited; ``implicit`` collects the upstreams of ``proxy_pass host``."""
    settings = effective(load, level, http)
    tls_settings = {**load.http.tls, **level.tls}
    locations = build_locations(load, level.locations, settings, tls_settings, upstreams, implicit)
    listens = level.listens or [Listen("0.0.0.0", _default_port(), False, level.source)]
    if tls.flag_on(tls_settings, "ssl"):
        listens = [evolve(listen, ssl=True) for listen in listens]
    real_ip_from = level.real_ip_from if level.real_ip_from is not None else load.http.real_ip_from
    real_ip_header = level.real_ip_header or load.http.real_ip_header
    try:
        server_tls = tls.server_tls(tls_settings, load.materials)
    except ConfigError as exc:
        load.errors.append(exc)
        server_tls = None
    server = Server(
        tuple(level.names) or ("",),
        tuple(listens),
        tuple(locations),
        level.source,
        real_ip_from=tuple(real_ip_from or ()),
        real_ip_proxy_protocol=real_ip_header == "proxy_protocol",
        tls=server_tls,
        error_logs=settings.error_logs,
        client=settings.client,
        access_logs=settings.access_logs,
        rewrites=rewrite_program(load, level, None),
        add_headers=settings.add_headers,
        access=settings.access,
        errors=settings.errors,
        files=file_settings(load, settings.files, settings.timeouts.client_send, level),
    )
    if server_tls is None and "ssl_certificate" in tls_settings:
        load.tls_failed.add(id(server))  # already reported; "no ssl_certificate" would mislead
    return server


def _default_port() -> int:
    """nginx's rule for a server without ``listen``: 80 as root, else 8000."""
    return 80 if os.geteuid() == 0 else 8000
