"""
TLS on both sides of the proxy, built from the settings :mod:`wstunnel.config.tls`
loaded and checked.

Client side: one OpenSSL context per ``server`` block with a certificate.  A
connection starts on its socket's default server's context; the SNI
callback then picks the server by name among those listening on the
address the connection arrived on, as routing does for Host, and sets its
certificate and client-certificate rules.  A connection that does not start
with a TLS record is plain HTTP sent to an HTTPS port: its bytes pass through
to the HTTP protocol, which reads the request and answers nginx's 400.

Upstream side: ``proxy_pass https://`` connects through TLS; the request is
released to the upstream only after the handshake and the name check
(service-identity) succeeded, both under ``proxy_connect_timeout``.

Both sides send close_notify on close and then close the TCP connection
without waiting for the peer's answer, as nginx does: a peer that vanished
cannot keep a connection open (twisted#7926).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Protocol

from cryptography.hazmat.primitives.hashes import SHA256
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from wstunnel.config.addresses import is_ip
from wstunnel.config.model import Binding, Config, KeyPair, ServerTLS, UpstreamTLS
from wstunnel.config.tls import set_groups
from wstunnel.core.routing import Router
from wstunnel.core.tls_rules import handshake_server
from wstunnel.wire.request import TLSInfo
from wstunnel.net.upstream import PeerConnector, UpstreamFactory, UpstreamListener, UpstreamProtocol, UpstreamTLSError

__all__ = [
    "ContextCache",
    "HandshakeTimeout",
    "RunningConfig",
    "UpstreamTLSContexts",
    "server_factory",
    "session_info",
]

_ALPN = [b"http/1.1"]
_DEFAULT_CIPHERS = "HIGH:!aNULL:!MD5"  # nginx's ssl_ciphers default
_PROTOCOL_VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}
_TLS_HANDSHAKE = 0x16  # the first byte of every TLS connection (a handshake record)
_CHAIN_TOO_LONG = 22  # X509_V_ERR_CERT_CHAIN_TOO_LONG
PLAIN_HTTP_NOTE = "The plain HTTP request was sent to HTTPS port"  # nginx's 497 page

# X509_V_ERR_* codes as OpenSSL words them (X509_verify_cert_error_string),
# for $ssl_client_verify and the upstream error log.
_VERIFY_REASONS = {
    2: "unable to get issuer certificate",
    4: "unable to decrypt certificate's signature",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
    28: "certificate rejected",
}


def verify_reason(code: int) -> str:
    return _VERIFY_REASONS.get(code, f"certificate verify error {code}")


class _TLSProtocol(BufferingTLSTransport):
    """
    A TLS transport that records the first certificate verification error
    (set by the verify callbacks below) and does not wait for the peer's
    close_notify once its own is sent.
    """

    verify_error: int | None = None

    def _shutdownTLS(self) -> None:
        super()._shutdownTLS()
        self.transport.loseConnection()


class _ServerTLSProtocol(_TLSProtocol):
    """
    A connection to a TLS socket.  One whose first byte is not a TLS
    handshake record is ``plain``: from then on bytes pass through
    untouched both ways, so the HTTP protocol reads the request, and
    :mod:`wstunnel.core.dispatch` refuses it as nginx does (a 400 with its page,
    logged like any request, then the close).
    """

    plain = False
    _sniffed = False

    def dataReceived(self, data: bytes) -> None:
        if not self._sniffed:
            self._sniffed = True
            if data[0] != _TLS_HANDSHAKE:
                self.plain = True
                self.write = self.transport.write  # type: ignore[method-assign]
                self.writeSequence = self.transport.writeSequence  # type: ignore[method-assign]
        if self.plain:
            self.wrappedProtocol.dataReceived(data)
            return
        super().dataReceived(data)

    def loseConnection(self) -> None:
        if self.plain:
            self.disconnecting = True
            self.transport.loseConnection()
            return
        super().loseConnection()

    def abortConnection(self) -> None:
        if self.plain:
            self.disconnecting = True
            self.transport.abortConnection()
            return
        super().abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        if self.plain:
            self._lostTLSConnection = True  # no TLS state to finish
        super().connectionLost(reason)


class _ServerTLSFactory(TLSMemoryBIOFactory):
    protocol = _ServerTLSProtocol

    def __init__(self, creator: "_ServerConnections", wrapped: IProtocolFactory, clock: IReactorTime) -> None:
        super().__init__(creator, False, wrapped, clock)
        self.creator = creator


class _ClientTLSFactory(TLSMemoryBIOFactory):
    protocol = _TLSProtocol


def _verify_callback(depth_limit: int, *, strict: bool) -> Callable[..., bool]:
    """
    Records the first failure on the connection's TLS protocol.  ``strict``
    (upstreams) fails the handshake; otherwise the handshake completes and
    the request is refused with nginx's answers, so ``optional`` and
    ``$ssl_client_verify`` can see what went wrong.
    """

    def callback(conn: SSL.Connection, cert: object, errnum: int, depth: int, ok: int) -> bool:
        if depth > depth_limit and ok:
            ok, errnum = 0, _CHAIN_TOO_LONG
        if not ok:
            protocol = conn.get_app_data()
            if protocol.verify_error is None:
                protocol.verify_error = errnum
        return bool(ok) or not strict

    return callback


def _version_range(protocols: tuple[str, ...]) -> dict:
    if "TLSv1.2" not in protocols:
        return {"raiseMinimumTo": TLSVersion.TLSv1_3}
    if "TLSv1.3" not in protocols:
        return {"lowerMaximumSecurityTo": TLSVersion.TLSv1_2}
    return {}


def _key_pair_options(pair: KeyPair | None) -> dict:
    if pair is None:
        return {}
    return {"privateKey": pair.key, "certificate": pair.leaf, "extraCertChain": list(pair.chain[1:])}


# -- the client side -------------------------------------------------------------------------


def _staple(conn: SSL.Connection, response: bytes) -> bytes:
    """OpenSSL's OCSP callback: the response of ``ssl_stapling_file``, for a client that asks."""
    return response


def _on_server_name(conn: SSL.Connection) -> None:
    """OpenSSL's SNI callback, shared by every context: the socket's creator decides."""
    protocol = conn.get_app_data()
    protocol.factory.creator.select(conn, protocol)


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes:
    """
    ``http/1.1`` whatever else is offered (``listen ... http2`` too); a
    client offering only other protocols fails the handshake, as with nginx.
    """
    return _ALPN[0] if _ALPN[0] in offered else b""


def _server_options(tls: ServerTLS) -> int:
    options = SSL.OP_NO_COMPRESSION
    if tls.prefer_server_ciphers:
        options |= SSL.OP_CIPHER_SERVER_PREFERENCE
    if not tls.session_tickets:
        options |= SSL.OP_NO_TICKET
    return options


def _server_context(tls: ServerTLS) -> SSL.Context:
    """The context of one server, made directly so that every nginx option can be left off as well as set."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_options(_server_options(tls))
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    ctx.set_min_proto_version(_PROTOCOL_VERSIONS[tls.protocols[0]])
    ctx.set_max_proto_version(_PROTOCOL_VERSIONS[tls.protocols[-1]])
    ctx.set_cipher_list((tls.ciphers or _DEFAULT_CIPHERS).encode("ascii"))
    ctx.use_certificate(tls.key_pair.leaf)
    ctx.use_privatekey(tls.key_pair.key)
    for cert in tls.key_pair.chain[1:]:
        ctx.add_extra_chain_cert(cert)
    ctx.set_alpn_select_callback(_select_alpn)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER if tls.session_cache else SSL.SESS_CACHE_OFF)
    if tls.dhparam_file is not None:
        ctx.load_tmp_dh(tls.dhparam_file.encode())
    set_groups(ctx, tls.ecdh_curve)
    if tls.ocsp_response is not None:
        ctx.set_ocsp_server_callback(_staple, tls.ocsp_response)
    ctx.set_timeout(int(tls.session_timeout))
    # Resumed sessions must stay with the server (and client-certificate
    # rules) that made them.
    ctx.set_session_id(hashlib.sha256(tls.key_pair.leaf.fingerprint(SHA256())).digest())
    if tls.client_ca_file is not None:
        ctx.load_verify_locations(tls.client_ca_file)
        ctx.load_client_ca(tls.client_ca_file.encode())
    ctx.set_tlsext_servername_callback(_on_server_name)
    return ctx


class ContextCache:
    """
    The OpenSSL contexts of one configuration's servers, built once and
    shared by its TLS sockets; a new configuration gets new contexts.
    """

    def __init__(self) -> None:
        self._config: Config | None = None
        self._contexts: dict[int, tuple[SSL.Context, int, Callable[..., bool]]] = {}

    def get(self, config: Config) -> dict[int, tuple[SSL.Context, int, Callable[..., bool]]]:
        if config is not self._config:
            self._contexts = {
                id(server): (
                    _server_context(server.tls),
                    SSL.VERIFY_NONE if server.tls.verify_client == "off" else SSL.VERIFY_PEER,
                    _verify_callback(server.tls.verify_depth, strict=False),
                )
                for binding in config.bindings
                if binding.ssl
                for server in binding.servers
                if server.tls is not None
            }
            self._config = config
        return self._contexts


class RunningConfig(Protocol):
    """What the TLS sockets read from the running configuration (its :class:`~wstunnel.net.runtime.Runtime`)."""

    @property
    def config(self) -> Config: ...
    @property
    def router(self) -> Router: ...
    @property
    def bindings(self) -> dict[tuple[str, int], Binding]: ...
    def binding_for(self, key: tuple[str, int], local_host: str) -> Binding: ...


@implementer(IOpenSSLServerConnectionCreator)
class _ServerConnections:
    """The TLS connections of one listening socket."""

    def __init__(self, runtime: Callable[[], RunningConfig], key: tuple[str, int], cache: ContextCache) -> None:
        self._runtime = runtime
        self._key = key
        self._cache = cache

    def serverConnectionForTLS(self, tlsProtocol: _ServerTLSProtocol) -> SSL.Connection:
        runtime = self._runtime()
        default = runtime.bindings[self._key].default
        ctx, _, _ = self._cache.get(runtime.config)[id(default)]
        conn = SSL.Connection(ctx, None)
        conn.set_app_data(tlsProtocol)
        conn.set_accept_state()
        return conn

    def select(self, conn: SSL.Connection, protocol: _ServerTLSProtocol) -> None:
        """The SNI callback for this socket: the server by name, among those on the arrival address."""
        runtime = self._runtime()
        binding = runtime.binding_for(self._key, protocol.transport.getHost().host)
        raw = conn.get_servername()
        sni = raw.decode("ascii", "replace") if raw else None
        server = handshake_server(lambda name: runtime.router.select_server(binding, name), binding, sni)
        ctx, mode, callback = self._cache.get(runtime.config)[id(server)]
        conn.set_context(ctx)
        conn.set_verify(mode, callback)


def server_factory(
    factory: IProtocolFactory,
    *,
    runtime: Callable[[], RunningConfig],
    key: tuple[str, int],
    cache: ContextCache,
    clock: IReactorTime,
) -> TLSMemoryBIOFactory:
    """Wraps a listening socket's factory in TLS with SNI."""
    return _ServerTLSFactory(_ServerConnections(runtime, key, cache), factory, clock)


def session_info(transport: _TLSProtocol) -> TLSInfo:
    """The handshake's outcome, read once per connection at its first request."""
    conn = transport.getHandle()
    cert = conn.get_peer_certificate(as_cryptography=True)
    if cert is None:
        verify, subject = "NONE", ""
    else:
        error = transport.verify_error
        verify = "SUCCESS" if error is None else f"FAILED:{verify_reason(error)}"
        subject = cert.subject.rfc4514_string()
    raw = conn.get_servername()
    return TLSInfo(
        protocol=conn.get_protocol_version_name(),
        cipher=conn.get_cipher_name() or "",
        server_name=raw.decode("ascii", "replace") if raw else "",
        client_s_dn=subject,
        client_verify=verify,
    )


# -- the upstream side -----------------------------------------------------------------------


class HandshakeTimeout(UpstreamTLSError, ConnectTimeout):
    """No complete handshake within ``proxy_connect_timeout``: a 504, like a connect timeout."""


@implementer(IOpenSSLClientConnectionCreator)
class _UpstreamConnections:
    """TLS connections to the upstreams of one location's settings (one context for all)."""

    def __init__(self, tls: UpstreamTLS) -> None:
        options = CertificateOptions(**_key_pair_options(tls.client), **_version_range(tls.protocols))
        ctx = options.getContext()
        if tls.verify:
            if tls.trusted_file is None:
                ctx.set_default_verify_paths()
            else:
                ctx.load_verify_locations(tls.trusted_file)
            ctx.set_verify(SSL.VERIFY_PEER, _verify_callback(tls.verify_depth, strict=True))
        self._ctx = ctx
        ip = is_ip(tls.name)
        self._sni = tls.name.encode("idna") if tls.server_name and not ip else None

    def clientConnectionForTLS(self, tlsProtocol: _TLSProtocol) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, None)
        conn.set_app_data(tlsProtocol)
        conn.set_alpn_protos(_ALPN)
        if self._sni is not None:
            conn.set_tlsext_host_name(self._sni)
        conn.set_connect_state()
        return conn


def _name_problem(transport: _TLSProtocol, tls: UpstreamTLS) -> str | None:
    if not tls.verify:
        return None
    cert = transport.getHandle().get_peer_certificate(as_cryptography=True)
    try:
        if is_ip(tls.name):
            verify_certificate_ip_address(cert, tls.name)
        else:
            verify_certificate_hostname(cert, tls.name)
    except (VerificationError, CertificateError):
        return f'upstream SSL certificate does not match "{tls.name}"'
    return None


def _handshake_failure(transport: _TLSProtocol, reason: Failure) -> str:
    error = transport.verify_error
    if error is not None:
        return f"upstream SSL certificate verify error: ({error}:{verify_reason(error)})"
    if reason.check(SSL.Error):
        return f"SSL handshake failed ({reason.getErrorMessage()})"
    return "peer closed connection in SSL handshake"


@implementer(IHandshakeListener)
class _TLSUpstreamProtocol(UpstreamProtocol):
    """
    An upstream connection over TLS: the exchange hears of it only once the
    handshake and the name check succeeded; a failure or a timeout is
    reported as a failed connect, so the usual retry and 502/504 apply.
    """

    def __init__(self, listener: UpstreamListener, tls: UpstreamTLS, clock: IReactorTime, timeout: float) -> None:
        super().__init__(listener)
        self._tls = tls
        self._clock = clock
        self._timeout = timeout
        self._timer: IDelayedCall | None = None
        self._handshaken = False
        self._failed = False

    def connectionMade(self) -> None:
        self._timer = self._clock.callLater(self._timeout, self._timed_out)

    def handshakeCompleted(self) -> None:
        self._cancel_timer()
        problem = _name_problem(self.transport, self._tls)
        if problem is not None:
            self._fail(UpstreamTLSError(problem))
            return
        self._handshaken = True
        super().connectionMade()

    def connectionLost(self, reason: Failure) -> None:
        if self._handshaken:
            super().connectionLost(reason)
            return
        self._cancel_timer()
        self._fail(UpstreamTLSError(_handshake_failure(self.transport, reason)))

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(HandshakeTimeout("SSL handshake timed out"))

    def _fail(self, error: Exception) -> None:
        if self._failed:
            return
        self._failed = self._done = True
        self.transport.abortConnection()
        self._listener.upstream_connect_failed(Failure(error))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class _TLSUpstreamFactory(UpstreamFactory):
    def __init__(self, listener: UpstreamListener, tls: UpstreamTLS, clock: IReactorTime, timeout: float) -> None:
        super().__init__(listener)
        self._tls = tls
        self._clock = clock
        self._timeout = timeout

    def buildProtocol(self, addr: object) -> UpstreamProtocol:
        return _TLSUpstreamProtocol(self._listener, self._tls, self._clock, self._timeout)


class _TLSPeerConnector(PeerConnector):
    """A location's peers over TLS: the handshake and name check come before the exchange hears of the connection."""

    def __init__(self, timeout: float, tls: UpstreamTLS, connections: _UpstreamConnections) -> None:
        super().__init__(timeout)
        self._tls = tls
        self._connections = connections

    def factory(self, listener: UpstreamListener, clock: IReactorTime) -> IProtocolFactory:
        wrapped = _TLSUpstreamFactory(listener, self._tls, clock, self.timeout)
        return _ClientTLSFactory(self._connections, True, wrapped, clock)


class UpstreamTLSContexts:
    """
    The client TLS contexts of one configuration, built with its runtime
    and dropped with it: one per distinct ``proxy_ssl_*`` settings, shared
    by the locations that have the same ones.
    """

    def __init__(self) -> None:
        self._contexts: dict[UpstreamTLS, _UpstreamConnections] = {}

    def connector(self, tls: UpstreamTLS, timeout: float) -> PeerConnector:
        connections = self._contexts.get(tls)
        if connections is None:
            connections = self._contexts[tls] = _UpstreamConnections(tls)
        return _TLSPeerConnector(timeout, tls, connections)
