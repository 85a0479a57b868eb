"""
The running proxy: one listening socket per configured address, and the
current :class:`~wstunnel.net.runtime.Runtime` they all read.

A reload (:meth:`ProxyService.reload`, SIGHUP) loads and validates the
whole file first and changes nothing when it is wrong.  Listeners are keyed
by (address, port): an address in both configurations keeps its socket, so
no connection is refused during a reload, and per-connection options of
that address (``proxy_protocol``) come from the runtime a connection
captures at accept, so changing them needs no new socket.  New addresses
are bound before anything else changes (a failed bind fails the reload);
removed ones are closed, and the connections they accepted run on.
"""

from __future__ import annotations

import signal
import socket
from typing import Callable, Iterable

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from wstunnel.net.client import ProxyFactory
from wstunnel.app.lifecycle import Drain, SignalHandlers, stop_reactor
from wstunnel.net.limits import raise_nofile
from wstunnel.net.listen import listen_on
from wstunnel.config.loader import load_config
from wstunnel.obs.metrics import PUBLISH_INTERVAL, SnapshotFiles
from wstunnel.config.model import Binding, Config, ConfigErrors, ListenOptions
from wstunnel.balancing.peers import failed_out
from wstunnel.net.proxyfirst import header_first_factory
from wstunnel.net.registry import Registry
from wstunnel.net.runtime import Runtime
from wstunnel.net.zones import Zones
from wstunnel.net.tls import ContextCache, server_factory

__all__ = ["ProxyService", "bind_socket", "tune_listener"]

_KEEPALIVE_TIMERS = (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)


def bind_socket(
    host: str, port: int, options: ListenOptions = ListenOptions(), reuse_port: bool = False, defer: float = 60.0
) -> socket.socket:
    """
    A listening socket made the way nginx makes it: ``[::]:port`` is
    IPv6-only unless ``ipv6only=off`` (so ``listen 80; listen [::]:80;`` can
    coexist), and SO_REUSEADDR lets a restart bind at once.  ``reuse_port``
    lets every worker process bind its own socket on the address (the
    kernel spreads connections over them).  ``defer`` is how long
    ``deferred`` lets the kernel hold a connection that sent nothing
    (nginx: the default server's ``client_header_timeout``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it (Linux): responses are written at once
        # (wstunnel.net.fastwrite), as nginx's tcp_nodelay does, with no
        # setsockopt per connection.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reuse_port or options.reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(options.ipv6only))
        sock.bind((host, port))
        tune_listener(sock, options, defer)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def tune_listener(sock: socket.socket, options: ListenOptions, defer: float) -> None:
    """
    The options that a bound socket can change, set on the listening socket
    as nginx does (on Linux accepted sockets inherit the keepalive
    settings, so no connection pays a setsockopt), then ``listen()``, which
    also sets a new backlog on a socket already listening: a reload retunes
    the sockets it keeps with this.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(bool(options.so_keepalive)))
    for option, value in zip(_KEEPALIVE_TIMERS, options.keepalive_timers):
        if value is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, max(1, int(defer)) if options.deferred else 0)
    if options.fastopen is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, options.fastopen)
    sock.listen(options.backlog)


class ProxyService(MultiService):
    """
    Binds every listener in ``privilegedStartService`` (before twistd drops
    privileges) and raises if one cannot be bound, so a bad address never
    leaves a half-started proxy.  Stopping closes the listeners, then
    drains the connections (:class:`~wstunnel.app.lifecycle.Drain`).

    ``signals``: handle HUP/TERM/INT/USR1 (off for in-process tests).
    ``files``: where the workers of a multi-process run share metrics.
    ``log_files`` are reopened on USR1; ``reload_hooks`` get each new config
    before it takes effect (an ``OSError`` from one fails the reload).
    """

    log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: IReactorTCP,
        *,
        reuse_port: bool = False,
        signals: bool = False,
        files: SnapshotFiles | None = None,
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self.runtime = Runtime.build(config, zones=Zones(files.directory if files is not None else None))
        self.registry = Registry(reactor, peers=self._peers)  # type: ignore[arg-type]
        self.registry.stats.files = files
        self._reuse_port = reuse_port
        self._listeners: dict[tuple[str, int], IListeningPort] = {}
        self._publisher: LoopingCall | None = None
        self._drain: Drain | None = None
        self.log_files: list = []
        self.reload_hooks: list[Callable[[Config], None]] = []
        self._signals = (
            SignalHandlers(reactor, self.signal_actions()) if signals else None  # type: ignore[arg-type]
        )
        # Every TLS context is built now, before anything is bound.
        self._tls_contexts = ContextCache()
        self._tls_contexts.get(config)

    @property
    def ports(self) -> list[IListeningPort]:
        return list(self._listeners.values())

    def current(self) -> Runtime:
        return self.runtime

    def _peers(self) -> dict[str, list[tuple[str, bool]]]:
        """Each upstream's peers and whether each is up (not ``down``, not failed out)."""
        now = self._reactor.seconds()  # type: ignore[attr-defined]
        return {
            name: [
                (state.peer.address, not state.peer.down and (b.single or not failed_out(state, now)))
                for state in (*b.primary, *b.backup)
            ]
            for name, b in self.runtime.balancers.items()
        }

    def signal_actions(self) -> dict[int, Callable[[], None]]:
        return {
            signal.SIGHUP: self.reload,
            signal.SIGUSR1: self.reopen_logs,
            signal.SIGTERM: self.terminate,
            signal.SIGINT: self.terminate,
        }

    # Starting.

    def privilegedStartService(self) -> None:
        nofile = self.runtime.config.workers.rlimit_nofile
        if nofile is not None:
            raise_nofile(nofile)
        self._listeners = self._listen_all(self.runtime.sockets)
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        files = self.registry.stats.files
        if files is not None:
            self._publisher = LoopingCall(lambda: files.publish(self.registry.stats.snapshot()))
            self._publisher.clock = self._reactor
            self._publisher.start(PUBLISH_INTERVAL)
        if self._signals is not None:
            self._reactor.callWhenRunning(self._signals.install)  # type: ignore[attr-defined]

    def _listen_all(self, bindings: Iterable[Binding]) -> dict[tuple[str, int], IListeningPort]:
        """Every binding's socket, or none of them and the ``OSError``."""
        bound: dict[tuple[str, int], IListeningPort] = {}
        try:
            for binding in bindings:
                bound[(binding.host, binding.port)] = self._listen(binding)
        except OSError:
            for port in bound.values():
                port.stopListening()
            raise
        return bound

    def _listen(self, binding: Binding) -> IListeningPort:
        try:
            sock = bind_socket(
                binding.host,
                binding.port,
                binding.options,
                reuse_port=self._reuse_port,
                defer=binding.default.client.header_timeout,
            )
        except OSError as e:
            raise OSError(e.errno, f"bind() to {_addr(binding)} failed ({e.strerror})") from e
        key = (binding.host, binding.port)
        factory = ProxyFactory(
            runtime=self.current, key=key, reactor=self._reactor, registry=self.registry
        )
        if binding.ssl:
            factory = server_factory(  # type: ignore[assignment]
                factory, runtime=self.current, key=key, cache=self._tls_contexts, clock=self._reactor  # type: ignore[arg-type]
            )
            if binding.proxy_protocol:
                factory = header_first_factory(factory, runtime=self.current, key=key)  # type: ignore[assignment]
        try:
            port = listen_on(sock, factory, self._reactor)
        except BaseException:
            sock.close()
            raise
        self.log.info("wstunnel listening on {address}{ssl}", address=_addr(binding, port),
                      ssl=" ssl" if binding.ssl else "")
        return port

    # Signals.

    def reload(self) -> bool:
        """SIGHUP: the file again, validated whole; on any error the running config stays."""
        path = self.runtime.config.path
        try:
            config = load_config(path)
        except ConfigErrors as e:
            for error in e.errors:
                self.log.error("reload failed, keeping the running configuration: {error}", error=str(error))
            self.registry.stats.reloaded(False)
            return False
        except OSError as e:
            self.log.error("reload failed, keeping the running configuration: cannot read {path}: {error}",
                           path=e.filename or path, error=e.strerror)
            self.registry.stats.reloaded(False)
            return False
        return self.apply(config)

    def apply(self, config: Config) -> bool:
        """Switch new connections to ``config``; connections already open keep theirs."""
        runtime = Runtime.build(config, access_logs=self.runtime.access_logs, zones=self.runtime.zones)
        wanted = {(b.host, b.port): b for b in runtime.sockets}
        try:
            self._tls_contexts.get(config)
            self._set_nofile(config)
            for hook in self.reload_hooks:
                hook(config)
            self._retune(wanted)
            added = self._listen_all(b for key, b in wanted.items() if key not in self._listeners)
        except OSError as e:
            self.log.error("reload failed, keeping the running configuration: {error}", error=str(e))
            self.registry.stats.reloaded(False)
            return False
        for key in [key for key in self._listeners if key not in wanted]:
            self._listeners.pop(key).stopListening()
            self.log.info("stopped listening on {address}", address=_addr(self.runtime.bindings[key]))
        self._listeners.update(added)
        self.runtime = runtime
        self.registry.stats.reloaded(True)
        self.log.info("configuration reloaded from {path}", path=config.path)
        return True

    def _retune(self, wanted: dict[tuple[str, int], Binding]) -> None:
        """
        A kept socket takes its address's new options; ``ipv6only`` and
        ``reuseport`` are settled at bind and keep their old values.
        """
        for key, port in self._listeners.items():
            binding = wanted.get(key)
            if binding is not None and binding.options != self.runtime.bindings[key].options:
                tune_listener(port.socket, binding.options, binding.default.client.header_timeout)  # type: ignore[attr-defined]

    def _set_nofile(self, config: Config) -> None:
        nofile = config.workers.rlimit_nofile
        if nofile is not None and nofile != self.runtime.config.workers.rlimit_nofile:
            raise_nofile(nofile)

    def reopen_logs(self) -> None:
        """SIGUSR1: reopen every log file (after logrotate renamed them)."""
        self.runtime.access_logs.reopen()
        for log_file in self.log_files:
            log_file.reopen()
        self.log.info("log files reopened")

    def terminate(self) -> None:
        """SIGTERM/SIGINT: a graceful stop; a second one cuts the drain short."""
        if self._drain is not None:
            self.log.info("second stop signal: closing every connection now")
            self._drain.close_all()
            return
        stop_reactor(self._reactor)  # type: ignore[arg-type]

    # Stopping.

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        if self._publisher is not None and self._publisher.running:
            self._publisher.stop()
        ports, self._listeners = list(self._listeners.values()), {}
        closed = gatherResults([maybeDeferred(port.stopListening) for port in ports])
        self._drain = Drain(self.registry, self._reactor, self.runtime.config.workers.shutdown_timeout)  # type: ignore[arg-type]
        closed.addCallback(lambda _: self._drain.start())  # type: ignore[union-attr]
        closed.addCallback(lambda _: self._stopped())
        return closed

    def _stopped(self) -> Deferred[None] | None:
        self.runtime.access_logs.close()
        if self._signals is not None:
            self._signals.restore()
        return super().stopService()


def _addr(binding: Binding, port: IListeningPort | None = None) -> str:
    number = port.getHost().port if port is not None else binding.port
    host = f"[{binding.host}]" if ":" in binding.host else binding.host
    return f"{host}:{number}"
