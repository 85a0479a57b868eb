"""
Building: what the walk gathered becomes one frozen
:class:`~wstunnel.config.model.Config`.  Maps and log formats are compiled
once every map's name is known, upstream names are resolved, inheritance
is applied per server and location, and the servers are grouped into one
binding per listening address.
"""

from __future__ import annotations

from wstunnel.config.addresses import format_address
from wstunnel.config.inherit import effective, root_settings
from wstunnel.config.listens import address_options
from wstunnel.config.logs import compile_log_formats
from wstunnel.config.maps import compile_maps
from wstunnel.config.model import (
    Binding,
    Config,
    ConfigError,
    ConfigErrors,
    ErrorLog,
    Listen,
    Server,
    Source,
    Upstream,
    Workers,
    one_per_path,
)
from wstunnel.config.read import Stmt
from wstunnel.config.servers import build_server
from wstunnel.config.tls import check_bindings
from wstunnel.config.upstream import resolve_upstreams
from wstunnel.config.walk import MAIN, Load
from wstunnel.config.workers import check_worker_ports

__all__ = ["build"]


def build(load: Load, statements: list[Stmt]) -> Config:
    """The configuration ``statements`` describe; raises ConfigErrors listing every mistake."""
    load.snippet = not any(s.name == "http" for s in statements)
    load.walk(statements, MAIN, load.main)
    maps = compile_maps(load)
    log_formats = compile_log_formats(load, maps)
    upstreams = resolve_upstreams(load)
    implicit: dict[tuple[str, int], Upstream] = {}
    main_logs = one_per_path(load.main.error_logs or [ErrorLog("stderr", "error", Source(load.path, 0))])
    http = effective(load, load.http, root_settings(load.path, main_logs))
    servers = tuple(build_server(load, s, http, upstreams, implicit) for s in load.servers)
    bindings = _bindings(load, servers)
    workers = Workers(**load.workers)  # type: ignore[arg-type]
    check_worker_ports(load, workers, bindings)
    if load.errors:
        raise ConfigErrors(load.errors)
    all_upstreams = {u.name: u for u in upstreams.values()}
    all_upstreams.update((u.name, u) for u in implicit.values())
    return Config(
        path=load.path,
        bindings=bindings,
        servers=servers,
        upstreams=all_upstreams,
        maps=maps,
        error_logs=main_logs,
        notices=tuple(load.notices),
        workers=workers,
        warnings=tuple(load.materials.warnings),
        log_formats=log_formats,
    )


def _bindings(load: Load, servers: tuple[Server, ...]) -> tuple[Binding, ...]:
    """One binding per address; its default is the ``default_server``, else the first."""
    groups: dict[tuple[str, int], list[tuple[Server, Listen]]] = {}
    for server in servers:
        for listen in server.listens:
            group = groups.setdefault((listen.host, listen.port), [])
            address = format_address(listen.host, listen.port)
            if any(s is server for s, _ in group):
                load.errors.append(ConfigError(listen.source, f"a duplicate listen {address}"))
                continue
            if listen.default_server and any(l.default_server for _, l in group):
                load.errors.append(ConfigError(listen.source, f"a duplicate default server for {address}"))
                continue
            group.append((server, listen))
    bindings = tuple(_binding(load, host, port, group) for (host, port), group in groups.items())
    load.errors.extend(check_bindings(bindings, load.tls_failed))
    return bindings


def _binding(load: Load, host: str, port: int, group: list[tuple[Server, Listen]]) -> Binding:
    """A binding; its default is the ``default_server``, else the first."""
    servers = tuple(s for s, _ in group)
    options, errors = address_options(l for _, l in group)
    load.errors.extend(errors)
    return Binding(
        host,
        port,
        next((s for s, l in group if l.default_server), group[0][0]),
        servers,
        # nginx ORs proxy_protocol over every listen of one address.
        proxy_protocol=any(l.proxy_protocol for _, l in group),
        real_ip_from=tuple(dict.fromkeys(net for s in servers for net in s.real_ip_from)),
        real_ip_proxy_protocol=any(s.real_ip_proxy_protocol for s in servers),
        ssl=any(l.ssl for _, l in group),
        options=options,
    )
