"""
nginx-style logs on top of :mod:`twisted.logger`.

``error_log`` directives become one observer of the global log publisher,
writing nginx's line shape, so the tools that operators point at nginx's
error log keep working.  As in nginx each level has its own list: a
message about a request carries its location's list as the structured
field ``log_targets`` (a :class:`ScopedLogger` adds it from the object that
logs, so call sites do not change), and the observer writes it to those
files at their levels; a message without one (start, reload, limits,
Twisted's own) goes to the main level's list.  ``access_log`` lines are
data, one per request: they are written straight to their files, never
through level filtering or twistd's own log.

Each line is one ``write(2)`` on a descriptor opened with ``O_APPEND``, as
nginx does: lines from several writers never interleave, and no Python
buffer holds a line that failed (a full disk) to fail again later.
"stderr" and "stdout" mean descriptors 2 and 1, not ``sys.stderr``: under
twistd that is redirected into the log system and would feed lines back to
the observers.
"""

from __future__ import annotations

import os
import time
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from twisted.application.service import Service
from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    LogPublisher,
    Logger,
    eventAsText,
    globalLogPublisher,
)
from zope.interface import implementer

from wstunnel.config.model import AccessLog, Config, ErrorLog, one_per_path

__all__ = [
    "NGINX_LEVELS",
    "AccessLogs",
    "ErrorLogService",
    "ScopedLogger",
    "error_line",
    "every_error_log",
]

NGINX_LEVELS: Mapping[str, LogLevel] = MappingProxyType(
    {
        "debug": LogLevel.debug,
        "info": LogLevel.info,
        "notice": LogLevel.info,
        "warn": LogLevel.warn,
        "error": LogLevel.error,
        "crit": LogLevel.critical,
        "alert": LogLevel.critical,
        "emerg": LogLevel.critical,
    }
)

_LEVEL_NAMES = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warn",
    LogLevel.error: "error",
    LogLevel.critical: "crit",
}

_STANDARD_FDS = {"stdout": 1, "stderr": 2}
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def _open_fd(path: str) -> tuple[int, bool]:
    """The descriptor for a log path, and whether closing it is ours to do."""
    if path in _STANDARD_FDS:
        return _STANDARD_FDS[path], False
    return os.open(path, _APPEND, 0o644), True


def _close(fds: Iterable[tuple[int, bool]]) -> None:
    for fd, owned in fds:
        if owned:
            os.close(fd)


def error_line(event: LogEvent) -> str | None:
    """
    ``YYYY/MM/DD HH:MM:SS [level] PID#0: message`` (plus a traceback when the
    event carries a failure), or ``None`` for an event with no text.
    """
    text = eventAsText(event, includeTimestamp=False, includeSystem=False)
    if not text:
        return None
    when = time.localtime(event.get("log_time") or time.time())
    level = _LEVEL_NAMES.get(event.get("log_level"), "info")
    return f"{time.strftime('%Y/%m/%d %H:%M:%S', when)} [{level}] {os.getpid()}#0: {text}\n"


class ScopedLogger(Logger):
    """
    A :class:`~twisted.logger.Logger` (used as a class attribute) whose
    events carry ``log_targets``: the ``error_logs`` attribute of the
    object that logs (a client connection, an exchange, a tunnel), which
    the config resolved at load time.  Per message it costs one attribute
    read; nothing is logged on the tunnel's data path anyway.
    """

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        targets = getattr(self.source, "error_logs", None)
        if targets.__class__ is tuple and "log_targets" not in kwargs:
            kwargs["log_targets"] = targets
        super().emit(level, format, **kwargs)


def every_error_log(config: Config) -> tuple[ErrorLog, ...]:
    """Every ``error_log`` a message can be routed to: main's and every server's and location's."""
    found = list(config.error_logs)
    for server in config.servers:
        found.extend(server.error_logs)
        for location in server.locations:
            found.extend(location.error_logs)
    return tuple(dict.fromkeys(found))


@implementer(ILogObserver)
class _ErrorLogRouter:
    """
    Writes each event to its ``log_targets`` (else the main list), to each
    file whose level the event reaches, rendering the line once.  A list
    of an older configuration naming a file the current one no longer has
    (a tunnel opened before a reload) falls back to the main list.
    """

    def __init__(self, fds: Mapping[str, int], main: tuple[ErrorLog, ...]) -> None:
        self._fds = fds
        self._main = main

    def __call__(self, event: LogEvent) -> None:
        targets: Any = event.get("log_targets", self._main)
        fds = self._fds
        if any(target.path not in fds for target in targets):
            targets = self._main
        level = event.get("log_level", LogLevel.info)
        data = None
        for target in targets:
            if level < NGINX_LEVELS[target.level]:
                continue
            if data is None:
                line = error_line(event)
                if line is None:
                    return
                data = line.encode("utf-8", "backslashreplace")
            os.write(fds[target.path], data)


class ErrorLogService(Service):
    """
    The configured ``error_log``s, attached to ``publisher`` while running.

    ``error_logs`` is the main level's list, for messages without a
    request; ``scoped`` names every other level's files (see
    :func:`every_error_log`), which are opened too, since requests' messages
    name them.  Files are opened when the service is built, so that an
    unwritable path stops ``makeService`` with a clear message before any
    port is bound (``OSError`` propagates).  Several ``error_log``s of one
    level naming one file share it at the lowest of their levels, as in
    nginx, so no line is written twice.  ``notices`` and ``warnings`` (an
    expired certificate) are logged once, right after the observer is
    attached, so they reach these files too.
    """

    log = Logger()

    def __init__(
        self,
        error_logs: Iterable[ErrorLog],
        notices: Iterable[str] = (),
        publisher: LogPublisher = globalLogPublisher,
        warnings: Iterable[str] = (),
        scoped: Iterable[ErrorLog] = (),
    ) -> None:
        self._main = one_per_path(tuple(error_logs))
        self._paths = _paths(self._main, scoped)
        self._notices = tuple(notices)
        self._warnings = tuple(warnings)
        self._publisher = publisher
        self._log = Logger(observer=publisher)
        self._fds = self._open()
        self._observer: _ErrorLogRouter | None = None

    def _open(self) -> dict[str, tuple[int, bool]]:
        fds: dict[str, tuple[int, bool]] = {}
        try:
            for path in self._paths:
                fds[path] = _open_fd(path)
        except OSError:
            _close(fds.values())
            raise
        return fds

    def startService(self) -> None:
        super().startService()
        if not self._fds:
            self._fds = self._open()
        self._attach()
        for notice in self._notices:
            self._log.info("{notice}", notice=notice)
        for warning in self._warnings:
            self._log.warn("{warning}", warning=warning)

    def _attach(self) -> None:
        self._observer = _ErrorLogRouter({path: fd for path, (fd, _) in self._fds.items()}, self._main)
        self._publisher.addObserver(self._observer)

    def _detach(self) -> None:
        if self._observer is not None:
            self._publisher.removeObserver(self._observer)
            self._observer = None

    def reconfigure(self, error_logs: Iterable[ErrorLog], scoped: Iterable[ErrorLog] = ()) -> None:
        """A reload's ``error_log``s (see :meth:`_replace`)."""
        main = one_per_path(tuple(error_logs))
        self._replace(main, _paths(main, scoped))

    def reopen(self) -> None:
        """SIGUSR1: the same files, opened again by name (logrotate renamed them)."""
        self._replace(self._main, self._paths)

    def _replace(self, main: tuple[ErrorLog, ...], paths: tuple[str, ...]) -> None:
        """
        The new files are opened before the old ones are let go, so a path
        that cannot be opened keeps the old logs and raises ``OSError``.
        """
        old = self._main, self._paths, self._fds
        self._main, self._paths = main, paths
        try:
            self._fds = self._open()
        except OSError:
            self._main, self._paths, self._fds = old
            raise
        self._detach()
        self._attach()
        _close(old[2].values())

    def stopService(self) -> None:
        self._detach()
        _close(self._fds.values())
        self._fds = {}
        super().stopService()


def _paths(main: Iterable[ErrorLog], scoped: Iterable[ErrorLog]) -> tuple[str, ...]:
    """Every file to open, once."""
    return tuple(dict.fromkeys(e.path for e in (*main, *scoped)))


class AccessLogs:
    """
    The open ``access_log`` files, one per path however many locations name
    it, opened on first use; each line is on disk when the request ends.  A
    path that cannot be opened is reported once in the error log and then
    skipped, and a failed write is reported, rather than failing requests.
    """

    log = Logger()

    def __init__(self) -> None:
        self._fds: dict[str, tuple[int, bool] | None] = {}

    def write(self, targets: tuple[AccessLog, ...], line: str) -> None:
        """Append ``line`` and a newline to each target's file."""
        data = line.encode("utf-8", "backslashreplace") + b"\n"
        for target in targets:
            entry = self._fd(target.path)
            if entry is None:
                continue
            try:
                os.write(entry[0], data)
            except OSError as e:
                self.log.error("cannot write access log {path}: {error}", path=target.path, error=e)

    def _fd(self, path: str) -> tuple[int, bool] | None:
        if path not in self._fds:
            try:
                self._fds[path] = _open_fd(path)
            except OSError as e:
                self.log.error("cannot open access log {path}: {error}", path=path, error=e)
                self._fds[path] = None
        return self._fds[path]

    def close(self) -> None:
        """Close every file this object opened."""
        _close(entry for entry in self._fds.values() if entry is not None)
        self._fds = {}

    def reopen(self) -> None:
        """SIGUSR1: each file is opened again, by name, at its next line."""
        self.close()
