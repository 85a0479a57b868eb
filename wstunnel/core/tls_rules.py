"""
The rules a request obeys on a TLS connection, and the ``$ssl_*`` variables.

The handshake picks a server by SNI before any request is read; a request
whose Host names another server, or that lacks the client certificate its
server demands, must not be served through that handshake.  These are pure
decisions on the loaded configuration and :class:`TLSInfo`;
:mod:`wstunnel.net.tls` applies them.
"""

from __future__ import annotations

from typing import Callable

from wstunnel.config.model import Binding, Server
from wstunnel.wire.errors import RequestError
from wstunnel.wire.request import TLSInfo

__all__ = [
    "CERTIFICATE_ERROR_NOTE",
    "NO_CERTIFICATE_NOTE",
    "TLS_VARIABLES",
    "handshake_server",
    "refusal",
]

# nginx's own pages for its internal 496 and 495 (both sent as 400).
NO_CERTIFICATE_NOTE = "No required SSL certificate was sent"
CERTIFICATE_ERROR_NOTE = "The SSL certificate error"


TLS_VARIABLES: dict[str, Callable[[TLSInfo], str]] = {
    "ssl_protocol": lambda info: info.protocol,
    "ssl_cipher": lambda info: info.cipher,
    "ssl_server_name": lambda info: info.server_name,
    "ssl_client_s_dn": lambda info: info.client_s_dn,
    "ssl_client_verify": lambda info: info.client_verify,
}


def handshake_server(select: Callable[[str], Server], binding: Binding, sni: str | None) -> Server:
    """
    The server whose certificate and client-certificate rules the handshake
    used: the one SNI names, the default server without SNI (nginx).
    """
    return binding.default if not sni else select(sni.rstrip(".").lower())


def refusal(handshake: Server, server: Server, info: TLSInfo) -> RequestError | None:
    """
    A request that its TLS connection may not make: one whose Host names
    another server than the handshake chose (it would escape that server's
    certificate and client-certificate rules), or one without the client
    certificate ``ssl_verify_client on`` demands (nginx's 496/495, sent as 400).
    """
    if handshake is not server:
        return RequestError(421, f'Host names server "{server.name}", the TLS handshake chose "{handshake.name}"')
    tls = server.tls
    if tls is not None and tls.verify_client == "on":
        if info.client_verify == "NONE":
            return RequestError(400, "no required SSL certificate was sent", NO_CERTIFICATE_NOTE)
        if info.client_verify != "SUCCESS":
            return RequestError(400, f"the SSL certificate error: {info.client_verify}", CERTIFICATE_ERROR_NOTE)
    return None
