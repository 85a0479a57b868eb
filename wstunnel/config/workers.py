"""
The main and events contexts: how many worker processes, how many
connections each may hold, how long a stopping worker waits.
"""

from __future__ import annotations

import os

from wstunnel.config.args import positive, time_arg
from wstunnel.config.levels import Level
from wstunnel.config.model import Binding, ConfigError, Workers
from wstunnel.config.read import Stmt
from wstunnel.config.walk import EVENTS, Load

__all__ = [
    "check_worker_ports",
    "events",
    "worker_connections",
    "worker_processes",
    "worker_rlimit_nofile",
    "worker_shutdown_timeout",
]


def worker_processes(load: Load, stmt: Stmt, level: Level) -> None:
    value = stmt.args[0]
    if value == "auto":
        load.workers["processes"] = len(os.sched_getaffinity(0))
        return
    load.workers["processes"] = positive(stmt)


def worker_connections(load: Load, stmt: Stmt, level: Level) -> None:
    load.workers["connections"] = positive(stmt)


def worker_rlimit_nofile(load: Load, stmt: Stmt, level: Level) -> None:
    load.workers["rlimit_nofile"] = positive(stmt)


def worker_shutdown_timeout(load: Load, stmt: Stmt, level: Level) -> None:
    load.workers["shutdown_timeout"] = time_arg(stmt, stmt.args[0])


def events(load: Load, stmt: Stmt, level: Level) -> None:
    load.walk(stmt.block or (), EVENTS, Level(stmt.source))


def check_worker_ports(load: Load, workers: Workers, bindings: tuple[Binding, ...]) -> None:
    """With several workers each binds its own socket: port 0 would give each another port."""
    if workers.processes == 1:
        return
    for binding in bindings:
        if binding.port == 0:
            listen = next(l for l in binding.default.listens if l.port == 0)
            load.errors.append(ConfigError(listen.source, '"listen" port 0 needs "worker_processes 1"'))
