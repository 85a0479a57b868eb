"""
The write a tunnel or an answer uses on a transport.

A :class:`~wstunnel.net.stream.Stream`'s ``direct_write`` sends at once
when nothing is queued and queues only what the kernel did not take.  Any other transport (TLS, a unix socket, a test's
StringTransport) keeps its ``write``, looked up per call: a TLS transport
rebinds it (Twisted's small-write aggregator, and wstunnel.net.tls for
plain HTTP on a TLS port).
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import ITransport

from wstunnel.net.stream import Stream

__all__ = ["direct_writer"]


def direct_writer(transport: ITransport) -> Callable[[bytes], None]:
    """The fastest correct ``write`` for ``transport``."""
    if isinstance(transport, Stream):
        return transport.direct_write
    return lambda data: transport.write(data)
