"""
The service tree of a proxy process, built one way for twistd
(:mod:`wstunnel.app.tap`) and for each worker of ``worker_processes N``
(:mod:`wstunnel.app.workers`).

The error logs come first and the proxy (or the supervising parent)
second: a ``MultiService`` starts its children in that order, so the
listeners' startup lines reach the configured error logs, and stops them
in reverse, so the drain's last lines do too.  Every way the configuration
or an error log can be wrong is a ``SystemExit`` with a one-line message,
raised before anything is bound.
"""

from __future__ import annotations

import os

from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IReactorTCP

from wstunnel.app.service import ProxyService
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config, ConfigErrors
from wstunnel.obs.logs import ErrorLogService, every_error_log
from wstunnel.obs.metrics import SnapshotFiles

__all__ = ["error_logs_first", "load", "open_error_logs", "proxy_process"]


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


def open_error_logs(config: Config, *, announce: bool) -> ErrorLogService:
    """
    Every ``error_log`` file of ``config``, opened now.  ``announce``: log
    the configuration's notices and warnings once started; a worker leaves
    that to its parent, so an operator reads each once.
    """
    try:
        return ErrorLogService(
            config.error_logs,
            config.notices if announce else (),
            warnings=config.warnings if announce else (),
            scoped=every_error_log(config),
        )
    except OSError as e:
        raise SystemExit(f"wstunnel: cannot open error log {e.filename}: {e.strerror}") from None


def error_logs_first(error_logs: ErrorLogService, service: IService) -> MultiService:
    """``error_logs``, then ``service``, under one parent (see the module docstring)."""
    top = MultiService()
    error_logs.setServiceParent(top)
    service.setServiceParent(top)
    return top


def proxy_process(
    config: Config,
    reactor: IReactorTCP,
    error_logs: ErrorLogService,
    *,
    reuse_port: bool = False,
    files: SnapshotFiles | None = None,
) -> MultiService:
    """One proxy with signal handling, whose reloads and USR1 reach ``error_logs`` too."""
    proxy = ProxyService(config, reactor, reuse_port=reuse_port, signals=True, files=files)
    proxy.log_files.append(error_logs)
    proxy.reload_hooks.append(lambda new: error_logs.reconfigure(new.error_logs, every_error_log(new)))
    return error_logs_first(error_logs, proxy)
