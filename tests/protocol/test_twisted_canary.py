"""
The private Twisted API wstunnel relies on, checked on the installed Twisted.

setup.cfg pins Twisted below its next major version; when that pin moves,
these tests say which private name changed and which wstunnel module leans
on it, before a subtler test (or production) finds out.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from tls_support import Authority, server_options

TLS = "wstunnel/net/tls.py overrides or sets it"


class _Received(Protocol):
    def __init__(self) -> None:
        self.lost: list[Failure] = []

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.lost.append(reason)


def _tls_end(options, is_client: bool, protocol: type = BufferingTLSTransport):  # type: ignore[no-untyped-def]
    app = _Received()
    factory = TLSMemoryBIOFactory(options, is_client, Factory.forProtocol(lambda: app), Clock())
    factory.protocol = protocol
    tls = factory.buildProtocol(None)
    transport = StringTransport()
    tls.makeConnection(transport)
    return tls, transport, app


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    return Authority(Path(tmp_path_factory.mktemp("canary"))).issue("server", ["localhost"])


def test_tls_sends_close_notify_through_shutdownTLS_and_then_waits(certificate) -> None:
    assert list(inspect.signature(TLSMemoryBIOProtocol._shutdownTLS).parameters) == ["self"], (
        f"TLSMemoryBIOProtocol._shutdownTLS(self): {TLS}"
    )
    calls = []

    class Spy(BufferingTLSTransport):
        def _shutdownTLS(self) -> None:
            calls.append(self)
            super()._shutdownTLS()

    server, server_wire, _ = _tls_end(server_options(certificate), False)
    client, client_wire, _ = _tls_end(CertificateOptions(), True, Spy)
    for _ in range(20):
        to_server, to_client = client_wire.value(), server_wire.value()
        if not (to_server or to_client):
            break
        client_wire.clear()
        server_wire.clear()
        for tls, data in ((server, to_server), (client, to_client)):
            if data:
                tls.dataReceived(data)
    client.loseConnection()
    assert calls == [client], f"loseConnection no longer calls _shutdownTLS: {TLS}"
    assert client_wire.value(), "no close_notify written"
    assert not client_wire.disconnecting, (
        "Twisted no longer waits for the peer's close_notify: net/tls.py's _shutdownTLS override may go"
    )


def test_tls_connectionLost_skips_the_tls_teardown_when_lostTLSConnection_is_set(certificate) -> None:
    assert TLSMemoryBIOProtocol._lostTLSConnection is False, f"TLSMemoryBIOProtocol._lostTLSConnection: {TLS}"
    flagged, _, app = _tls_end(server_options(certificate), False)
    flagged._lostTLSConnection = True
    flagged.connectionLost(Failure(ConnectionDone()))
    assert [r.type for r in app.lost] == [ConnectionDone], f"_lostTLSConnection no longer skips the teardown: {TLS}"
    # Without the flag a connection that never spoke TLS ends as a TLS EOF.
    unflagged, _, app = _tls_end(server_options(certificate), False)
    unflagged.connectionLost(Failure(ConnectionDone()))
    assert [r.type for r in app.lost] == [ConnectionLost]
