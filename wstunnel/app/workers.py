"""
``worker_processes N``: a parent that supervises N worker processes.

Design (doc/deploy.md has the operator's view):

* Each worker is ``python -m wstunnel.app.workers CONFIG INDEX DIR``: a whole
  single-process proxy (:class:`~wstunnel.app.service.ProxyService`) whose
  sockets are bound with SO_REUSEPORT, so every worker has its own accept
  queue on every address and the kernel spreads new connections over them.
  A worker reloads, drains and reopens logs exactly as a single process
  does, so a reload never cuts a tunnel in any mode.
* The parent (the twistd process) binds nothing for good: at start it
  test-binds every address without SO_REUSEPORT, so an address already in
  use (another wstunnel, another server) fails the start as it does with
  one process.  It passes HUP (after validating the file itself, so a bad
  file is reported once), USR1 and TERM/INT on, starts a new worker when
  one dies, and exits 0 when the last worker has drained.
* Metrics: workers write snapshots into DIR (see :mod:`wstunnel.obs.metrics`).

Caveats of SO_REUSEPORT, documented for operators: connections still in a
dying worker's accept queue are reset, and a worker started after the file
was edited (but not reloaded) reads the edited file.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import tempfile
from typing import Callable

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from wstunnel.app.assemble import load, open_error_logs, proxy_process
from wstunnel.app.lifecycle import FINAL_GRACE, SignalHandlers, stop_reactor
from wstunnel.config.loader import load_config
from wstunnel.config.model import Config, ConfigErrors
from wstunnel.net.runtime import Runtime
from wstunnel.obs.metrics import SnapshotFiles
from wstunnel.app.service import bind_socket

__all__ = ["Supervisor", "main"]

# A worker that dies sooner than this after its start is restarted only
# after the same delay, so a worker that cannot start does not spin.
RESPAWN_DELAY = 1.0
# How long past the shutdown timeout the parent waits before SIGKILL.
KILL_SLACK = 5.0
_PR_SET_PDEATHSIG = 1


class _Worker(ProcessProtocol):
    def __init__(self, supervisor: "Supervisor", index: int, started: float) -> None:
        self.supervisor = supervisor
        self.index = index
        self.started = started
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.supervisor.worker_ended(self, reason)
        self.ended.callback(None)


class Supervisor(MultiService):
    """The parent of a multi-process run; see the module docstring."""

    log = Logger()

    def __init__(self, config: Config, reactor, log_files: list) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self._reactor = reactor
        self.config = config
        self._log_files = log_files
        self.workers: dict[int, _Worker] = {}
        self.directory = ""
        self._stopping = False
        self._signals = SignalHandlers(reactor, {
            signal.SIGHUP: self.reload,
            signal.SIGUSR1: self.reopen_logs,
            signal.SIGTERM: self.terminate,
            signal.SIGINT: self.terminate,
        })  # fmt: skip

    def privilegedStartService(self) -> None:
        for binding in Runtime.build(self.config).sockets:
            try:
                bind_socket(binding.host, binding.port).close()
            except OSError as e:
                raise OSError(e.errno, f"bind() to {binding.host}:{binding.port} failed ({e.strerror})") from e
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        self.directory = tempfile.mkdtemp(prefix="wstunnel-metrics-")
        for index in range(self.config.workers.processes):
            self._spawn(index)
        self._reactor.callWhenRunning(self._signals.install)

    def _spawn(self, index: int) -> None:
        worker = _Worker(self, index, self._reactor.seconds())
        args = [sys.executable, "-m", "wstunnel.app.workers", self.config.path, str(index), self.directory]
        process = self._reactor.spawnProcess(worker, sys.executable, args, env=os.environ,
                                             childFDs={0: "w", 1: 1, 2: 2})
        self.workers[index] = worker
        self.log.info("started worker process {pid} (#{index})", pid=process.pid, index=index)

    def worker_ended(self, worker: _Worker, reason: Failure) -> None:
        if self.workers.get(worker.index) is not worker:
            return
        del self.workers[worker.index]
        if self._stopping or worker.index >= self.config.workers.processes:
            return
        self.log.warn("worker process #{index} exited ({reason}), starting a new one",
                      index=worker.index, reason=reason.getErrorMessage())
        lived = self._reactor.seconds() - worker.started
        delay = 0 if lived >= RESPAWN_DELAY else RESPAWN_DELAY
        self._reactor.callLater(delay, self._respawn, worker.index)

    def _respawn(self, index: int) -> None:
        if not self._stopping and index not in self.workers and index < self.config.workers.processes:
            self._spawn(index)

    def _signal_all(self, number: int, which: Callable[[int], bool] = lambda index: True) -> None:
        for index, worker in list(self.workers.items()):
            if which(index) and worker.transport is not None:
                try:
                    worker.transport.signalProcess(number)  # type: ignore[attr-defined]
                except ProcessExitedAlready:
                    continue  # its processEnded is on the way

    def reload(self) -> None:
        """Validate here (one report of a bad file), then let every worker reload itself."""
        try:
            config = load_config(self.config.path)
        except ConfigErrors as e:
            for error in e.errors:
                self.log.error("reload failed, keeping the running configuration: {error}", error=str(error))
            return
        except OSError as e:
            self.log.error("reload failed, keeping the running configuration: {error}", error=str(e))
            return
        count = config.workers.processes
        self._signal_all(signal.SIGHUP, lambda index: index < count)
        self._signal_all(signal.SIGTERM, lambda index: index >= count)
        self.config = config
        for index in range(count):
            if index not in self.workers:
                self._spawn(index)
        self.log.info("configuration reloaded by {count} workers", count=count)

    def reopen_logs(self) -> None:
        for log_file in self._log_files:
            log_file.reopen()
        self._signal_all(signal.SIGUSR1)

    def terminate(self) -> None:
        """The first TERM/INT starts the workers' drains, a second one cuts them short."""
        if self._stopping:
            self._signal_all(signal.SIGTERM)
            return
        stop_reactor(self._reactor)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        self._stopping = True
        ended = [worker.ended for worker in self.workers.values()]
        self._signal_all(signal.SIGTERM)
        deadline = self.config.workers.shutdown_timeout + FINAL_GRACE + KILL_SLACK
        killer = self._reactor.callLater(deadline, self._signal_all, signal.SIGKILL)
        done = _all(ended)
        done.addCallback(lambda _: self._finish(killer))
        return done

    def _finish(self, killer) -> None:  # type: ignore[no-untyped-def]
        if killer.active():
            killer.cancel()
        shutil.rmtree(self.directory, ignore_errors=True)
        self._signals.restore()
        super().stopService()


def _all(deferreds: list[Deferred[None]]) -> Deferred[None]:
    return gatherResults(deferreds).addCallback(lambda _: None)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM (and drains) if the parent is killed outright."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return


def main(argv: list[str]) -> int:
    """One worker: ``CONFIG INDEX DIR``.  Exit status 0 after a drain, 1 if it cannot start."""
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    path, index, directory = argv
    # Out of the terminal's process group: a Ctrl-C reaches the parent
    # only, which passes one TERM on (two would cut the drain short).
    os.setpgrp()
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:
        return 1
    config = load(path)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    error_logs = open_error_logs(config, announce=False)
    top = proxy_process(config, reactor, error_logs, reuse_port=True, files=SnapshotFiles(directory, int(index)))
    try:
        top.privilegedStartService()
    except OSError as e:
        print(f"wstunnel worker #{index}: {e.strerror or e}", file=sys.stderr)
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    top.startService()
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
