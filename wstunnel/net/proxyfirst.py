"""
``listen ... ssl proxy_protocol``: the PROXY header before the TLS handshake.

An L4 balancer that leaves TLS to wstunnel writes its PROXY header first
and the client's TLS records after it, so on such a socket the header is
read here, outside the TLS layer, and the result is handed to the HTTP
protocol inside it.  Once the header is read, every byte goes straight to
the TLS layer.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from wstunnel.config.model import Binding
from wstunnel.wire.proxyproto import ProxyPreamble, is_trusted
from wstunnel.wire.request import ConnInfo
from wstunnel.net.runtime import Runtime

__all__ = ["header_first_factory"]


class _HeaderFirst(ProtocolWrapper):
    """The PROXY header, then the TLS connection it wraps."""

    log = Logger()

    def makeConnection(self, transport: object) -> None:
        # Connecting the TLS layer connects the HTTP protocol inside it,
        # which builds its ConnInfo from the TCP peer.
        super().makeConnection(transport)
        client = self._client()
        if client.conn is None:  # refused (worker_connections) and already closed
            return
        binding = self.factory.binding(client.conn.server_addr)
        if binding.real_ip_from and not is_trusted(client.conn.remote_addr, binding.real_ip_from):
            self.log.info("PROXY protocol header from untrusted {client} refused", client=client.peer_text)
            client.proxy_header_failed()
            return
        rewrite = binding.real_ip_proxy_protocol and bool(binding.real_ip_from)
        self.dataReceived = ProxyPreamble(self, client.conn, rewrite).feed  # type: ignore[method-assign]

    def _client(self):  # type: ignore[no-untyped-def]
        return self.wrappedProtocol.wrappedProtocol

    @property
    def peer_text(self) -> str:
        return self._client().peer_text  # type: ignore[no-any-return]

    def proxy_header_received(self, conn: ConnInfo, rest: bytes) -> None:
        self._client().proxy_header_known(conn)
        self.dataReceived = self.wrappedProtocol.dataReceived  # type: ignore[method-assign]
        if rest:
            self.dataReceived(rest)

    def proxy_header_failed(self) -> None:
        self._client().proxy_header_failed()


class _HeaderFirstFactory(WrappingFactory):
    protocol = _HeaderFirst
    noisy = False

    def __init__(self, wrapped: IProtocolFactory, runtime: Callable[[], Runtime], key: tuple[str, int]) -> None:
        super().__init__(wrapped)
        self._runtime = runtime
        self._key = key

    def binding(self, local_host: str) -> Binding:
        return self._runtime().binding_for(self._key, local_host)


def header_first_factory(
    tls_factory: IProtocolFactory, *, runtime: Callable[[], Runtime], key: tuple[str, int]
) -> WrappingFactory:
    """Wraps a TLS socket's factory so the PROXY header is read before TLS."""
    return _HeaderFirstFactory(tls_factory, runtime, key)
