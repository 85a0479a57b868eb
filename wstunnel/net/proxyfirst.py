"""
``listen ... proxy_protocol``: the PROXY header read off a client
connection before anything else.

:class:`ProxyPreamble` stands in for a protocol's ``dataReceived`` for
exactly as long as the header takes (the parser is
:mod:`wstunnel.wire.proxyproto`), so nothing on the data path pays for it
afterwards.  On a plain socket the client protocol binds it itself.  An L4
balancer that leaves TLS to wstunnel writes its PROXY header first and the
client's TLS records after it, so on a TLS socket :func:`header_first_factory`
binds it outside the TLS layer and hands the result to the HTTP protocol
inside; once the header is read, every byte goes straight to the TLS layer.
"""

from __future__ import annotations

from typing import Callable, Protocol

from attrs import evolve
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from wstunnel.config.model import Binding
from wstunnel.net.runtime import Runtime
from wstunnel.wire.proxyproto import ProxyHeader, ProxyHeaderError, ProxyHeaderParser, is_trusted
from wstunnel.wire.request import ConnInfo

__all__ = ["PreambleClient", "ProxyPreamble", "header_first_factory"]


class PreambleClient(Protocol):
    """What :class:`ProxyPreamble` needs from the client protocol."""

    peer_text: str

    def proxy_header_received(self, conn: ConnInfo, rest: bytes) -> None: ...
    def proxy_header_failed(self) -> None: ...


class ProxyPreamble:
    """
    Bound as the client protocol's ``dataReceived`` until the header is
    complete; then the client protocol takes its own method back.
    """

    log = Logger()

    def __init__(self, client: PreambleClient, conn: ConnInfo, rewrite_remote: bool) -> None:
        self._client = client
        self._conn = conn
        self._rewrite = rewrite_remote
        self._parser = ProxyHeaderParser()

    def feed(self, data: bytes) -> None:
        try:
            found = self._parser.feed(data)
        except ProxyHeaderError as e:
            self.log.info("broken PROXY protocol header from {client}: {error}",
                          client=self._client.peer_text, error=str(e))
            self._client.proxy_header_failed()
            return
        if found is not None:
            header, rest = found
            self._client.proxy_header_received(self._apply(header), rest)

    def _apply(self, header: ProxyHeader) -> ConnInfo:
        if header.source is None:
            return self._conn
        host, port = header.source
        conn = evolve(self._conn, proxy_protocol_addr=host, proxy_protocol_port=str(port))
        if self._rewrite:
            conn = evolve(conn, remote_addr=host, remote_port=port)
        return conn


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
