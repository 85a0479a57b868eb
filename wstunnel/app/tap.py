"""
twistd glue: ``twistd -n wstunnel [--config FILE] [--check] [--dump]``.

Every way the configuration can be wrong ends here as ``SystemExit`` with
one ``FILE:LINE: message`` line per error, raised from ``makeService``:
twistd calls it before logging, daemonizing or binding anything, so a bad
configuration never leaves a half-started proxy behind.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from twisted.application.service import IService
from twisted.python import usage

from wstunnel.app.assemble import error_logs_first, load, open_error_logs, proxy_process
from wstunnel.app.workers import Supervisor
from wstunnel.config.dump import dump as dump_config

__all__ = ["DEFAULT_CONFIG", "Options", "check", "makeService"]

DEFAULT_CONFIG = "/etc/wstunnel/wstunnel.conf"


class Options(usage.Options):
    synopsis = "[--config FILE] [--check] [--dump]"
    longdesc = (
        "Run a WebSocket-aware HTTP/1.1 reverse proxy configured with nginx "
        "syntax (map, upstream, server, location, proxy_*). --check validates "
        "the whole configuration and exits, like nginx -t; --dump (-T) also "
        "prints it with every include expanded, like nginx -T."
    )
    optParameters = [
        ["config", "c", DEFAULT_CONFIG, "nginx-syntax configuration file"],
    ]
    optFlags = [
        ["check", None, "test the configuration, print every error and exit 0 or 1"],
        ["dump", "T", "as --check, then print the configuration read, includes expanded, on stdout"],
    ]


def check(path: str, *, dump: bool = False) -> NoReturn:
    """
    ``nginx -t``: report on stderr and exit 0 when the configuration is
    valid, 1 when not.  ``dump`` (``nginx -T``): a valid configuration is
    also printed on stdout, every include expanded.
    """
    try:
        config = load(path)
    except SystemExit as e:
        print(e.code, file=sys.stderr)
        raise SystemExit(f"wstunnel: configuration file {path} test failed") from None
    for notice in config.notices:
        print(f"wstunnel: [notice] {notice}", file=sys.stderr)
    for warning in config.warnings:
        print(f"wstunnel: [warn] {warning}", file=sys.stderr)
    print(f"wstunnel: configuration file {path} test is successful", file=sys.stderr)
    if dump:
        sys.stdout.write(dump_config(path))
    raise SystemExit(0)


def makeService(options: Options) -> IService:
    """
    The error logs, then the proxy, or with ``worker_processes N`` the
    parent that supervises N proxies (see :mod:`wstunnel.app.assemble`).
    """
    if options["check"] or options["dump"]:
        check(options["config"], dump=options["dump"])
    config = load(options["config"])
    error_logs = open_error_logs(config, announce=True)
    # The global reactor is imported only now, after twistd has installed
    # the one chosen with --reactor.
    from twisted.internet import reactor

    if config.workers.processes > 1:
        return error_logs_first(error_logs, Supervisor(config, reactor, [error_logs]))
    return proxy_process(config, reactor, error_logs)
