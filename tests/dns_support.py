"""
What tests of ``resolver`` need.  A DNS server on loopback: twisted.names
answering from a dict the test fills (A and AAAA records with their TTL),
counting the questions it was asked, so a test sees what a cache spared.
Names it does not hold are NXDOMAIN; names in ``silent`` are never
answered.  And the ``logged`` fixture, for the error-log lines of a
resolution that failed (import it into the test module to use it).
"""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.names import common, dns, error, server

__all__ = ["TestDNS", "logged", "start_dns"]


class TestDNS(common.ResolverBase):
    """The records served: ``records[name] = [(address, ttl), ...]``."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, list[tuple[str, int]]] = {}
        self.silent: set[str] = set()
        self.asked: Counter[tuple[str, int]] = Counter()
        self.port = None

    def _lookup(self, name, cls, type, timeout):
        key = name.decode() if isinstance(name, bytes) else name
        self.asked[(key, type)] += 1
        if key in self.silent:
            return defer.Deferred()
        if key not in self.records:
            return defer.fail(error.DNSNameError(key))
        answers = []
        for address, ttl in self.records[key]:
            v6 = ipaddress.ip_address(address).version == 6
            if type == (dns.AAAA if v6 else dns.A):
                payload = dns.Record_AAAA(address, ttl) if v6 else dns.Record_A(address, ttl)
                answers.append(dns.RRHeader(name=key, type=type, ttl=ttl, payload=payload, auth=True))
        return defer.succeed((answers, [], []))

    def questions(self, name: str) -> int:
        """How many A questions ``name`` got."""
        return self.asked[(name, dns.A)]


def start_dns() -> TestDNS:
    """A TestDNS listening on a free UDP port of 127.0.0.1 (``dns.port.getHost().port``)."""
    records = TestDNS()
    factory = server.DNSServerFactory(clients=[records])
    records.port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    return records


@pytest.fixture
def logged():
    """The messages logged in this process while the test runs, as one text."""
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield lambda: "\n".join(formatEvent(event) for event in events)
    globalLogPublisher.removeObserver(events.append)
