"""
twistd glue: ``twistd -n wstunnel [--config FILE] [--check]``.

Every way the configuration can be wrong ends here as ``SystemExit`` with
one ``FILE:LINE: message`` line per error, raised from ``makeService``:
twistd calls it before logging, daemonizing or binding anything, so a bad
configuration never leaves a half-started proxy behind.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from twisted.application.service import IService, MultiService
from twisted.python import usage

from wstunnel.config.loader import load_config
from wstunnel.obs.logs import ErrorLogService, every_error_log
from wstunnel.config.model import Config, ConfigErrors
from wstunnel.app.service import ProxyService
from wstunnel.app.workers import Supervisor

__all__ = ["DEFAULT_CONFIG", "Options", "check", "load", "makeService"]

DEFAULT_CONFIG = "/etc/wstunnel/wstunnel.conf"


class Options(usage.Options):
    synopsis = "[--config FILE] [--check]"
    longdesc = (
        "Run a WebSocket-aware HTTP/1.1 reverse proxy configured with nginx "
        "syntax (map, upstream, server, location, proxy_*). --check validates "
        "the whole configuration and exits, like nginx -t."
    )
    optParameters = [
        ["config", "c", DEFAULT_CONFIG, "nginx-syntax configuration file"],
    ]
    optFlags = [
        ["check", None, "test the configuration, print every error and exit 0 or 1"],
    ]


def load(path: str) -> Config:
    """The configuration at ``path``, or ``SystemExit`` listing what is wrong."""
    if not os.path.isfile(path):
        raise SystemExit(f"wstunnel: configuration file {path} not found (use --config FILE)")
    try:
        return load_config(path)
    except ConfigErrors as e:
        raise SystemExit("\n".join(str(error) for error in e.errors)) from None
    except OSError as e:
        raise SystemExit(f"wstunnel: cannot read {e.filename or path}: {e.strerror}") from None


def check(path: str) -> NoReturn:
    """``nginx -t``: report on stderr and exit 0 when the configuration is valid, 1 when not."""
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
    raise SystemExit(0)


def makeService(options: Options) -> IService:
    """
    The error logs, then the proxy: started in that order so the listeners'
    startup lines reach the configured error logs, and stopped in reverse.
    """
    if options["check"]:
        check(options["config"])
    config = load(options["config"])
    try:
        error_logs = ErrorLogService(
            config.error_logs, config.notices, warnings=config.warnings, scoped=every_error_log(config)
        )
    except OSError as e:
        raise SystemExit(f"wstunnel: cannot open error log {e.filename}: {e.strerror}") from None
    # The global reactor is imported only now, after twistd has installed
    # the one chosen with --reactor.
    from twisted.internet import reactor

    top = MultiService()
    error_logs.setServiceParent(top)
    if config.workers.processes > 1:
        Supervisor(config, reactor, [error_logs]).setServiceParent(top)
        return top
    proxy = ProxyService(config, reactor, signals=True)
    proxy.log_files.append(error_logs)
    proxy.reload_hooks.append(lambda new: error_logs.reconfigure(new.error_logs, every_error_log(new)))
    proxy.setServiceParent(top)
    return top
