"""
The running proxy: one listening socket per configured address, and the
current :class:`~wstunnel.runtime.Runtime` they all read.
"""

from __future__ import annotations

import socket

from twisted.application.service import MultiService
from twisted.internet.interfaces import IListeningPort, IReactorSocket, IReactorTCP
from twisted.logger import Logger

from .frontend import ProxyFactory
from .model import Binding, Config
from .runtime import Runtime
from .tls import ContextCache, server_factory

__all__ = ["ProxyService", "bind_socket"]

# nginx's default listen backlog on Linux.
BACKLOG = 511


def bind_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """
    A listening socket made the way nginx makes it: ``[::]:port`` is
    IPv6-only (so ``listen 80; listen [::]:80;`` can coexist), and
    SO_REUSEADDR lets a restart bind at once.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ProxyService(MultiService):
    """
    Binds every listener in ``privilegedStartService`` (before twistd drops
    privileges) and raises if one cannot be bound, so a bad address never
    leaves a half-started proxy.
    """

    log = Logger()

    def __init__(self, config: Config, reactor: IReactorTCP) -> None:
        super().__init__()
        self._reactor = reactor
        self.runtime = Runtime.build(config)
        self.ports: list[IListeningPort] = []
        # Every TLS context is built now, before anything is bound.
        self._tls_contexts = ContextCache()
        self._tls_contexts.get(config)

    def current(self) -> Runtime:
        return self.runtime

    def privilegedStartService(self) -> None:
        try:
            for binding in self.runtime.sockets:
                self.ports.append(self._listen(binding))
        except OSError:
            for port in self.ports:
                port.stopListening()
            self.ports.clear()
            raise
        super().privilegedStartService()

    def _listen(self, binding: Binding) -> IListeningPort:
        try:
            sock = bind_socket(binding.host, binding.port)
        except OSError as e:
            raise OSError(e.errno, f"bind() to {_addr(binding)} failed ({e.strerror})") from e
        key = (binding.host, binding.port)
        factory = ProxyFactory(runtime=self.current, key=key, reactor=self._reactor)
        if binding.ssl:
            factory = server_factory(  # type: ignore[assignment]
                factory, runtime=self.current, key=key, cache=self._tls_contexts, clock=self._reactor  # type: ignore[arg-type]
            )
        reactor: IReactorSocket = self._reactor  # type: ignore[assignment]
        try:
            port = reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
        finally:
            sock.close()
        self.log.info("wstunnel listening on {address}{ssl}", address=_addr(binding, port),
                      ssl=" ssl" if binding.ssl else "")
        return port

    def stopService(self):  # type: ignore[override]
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()
        self.runtime.access_logs.close()
        return super().stopService()


def _addr(binding: Binding, port: IListeningPort | None = None) -> str:
    number = port.getHost().port if port is not None else binding.port
    host = f"[{binding.host}]" if ":" in binding.host else binding.host
    return f"{host}:{number}"
