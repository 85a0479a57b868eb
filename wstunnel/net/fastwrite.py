"""
Tunnel writes that go to the socket at once when nothing is queued.

Twisted's ``transport.write`` always queues: it appends to the buffer,
registers the socket for writability (an ``epoll_ctl``), and sends on the
next turn of the reactor, which then unregisters it (another
``epoll_ctl``).  For a tunnel relaying small WebSocket frames that is three
system calls and a loop turn per frame where one ``send`` would do
(doc/performance.md has the profile).

:func:`direct_writer` sends straight away when the transport's queue is
empty and hands anything the kernel did not take to ``transport.write``,
so ordering, the ``bufferSize`` pause of the producer (backpressure),
half-close and error reporting all stay Twisted's.  Only plain TCP
transports qualify: a TLS transport must encrypt, so it keeps its write.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport, ITransport

__all__ = ["direct_writer"]


def direct_writer(transport: ITransport) -> Callable[[bytes], None]:
    """The fastest correct ``write`` for ``transport``: its own, or a direct send first."""
    if not isinstance(transport, tcp.Connection) or ISSLTransport.providedBy(transport):
        # Looked up per call: a TLS transport rebinds its write (Twisted's
        # small-write aggregator, and wstunnel.net.tls for plain HTTP on a TLS port).
        return lambda data: transport.write(data)
    conn = transport
    send = conn.socket.send
    queued = conn.write

    def write(data: bytes) -> None:
        if not data:
            return  # as Twisted's write: no empty send (an empty end of a request body)
        # Anything queued, or a close under way: Twisted's path keeps the order.
        # Two of these are private to Twisted: tests/protocol/test_twisted_canary.py.
        if (
            conn._tempDataBuffer
            or conn.dataBuffer
            or conn.disconnecting
            or conn._writeDisconnecting
            or not conn.connected
        ):
            queued(data)
            return
        try:
            sent = send(data)
        except OSError:
            # EAGAIN, or an error Twisted's own write will meet and report.
            sent = 0
        if sent < len(data):
            queued(data[sent:])

    return write
