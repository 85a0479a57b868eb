#!/usr/bin/env python3
"""
The floor under any Twisted proxy: Twisted's own port-forwarder
(``twisted.protocols.portforward``) on the epoll reactor, as bench/run.py's
``twisted`` target.  It does no HTTP at all, one upstream connection per
client connection, so its figures are what Twisted's TCP transports and
event loop cost on this machine; wstunnel can approach them, not pass them
(doc/performance.md).  Not a proxy to deploy:

    python bench/portforward.py LISTEN_PORT BACKEND_PORT
"""

from __future__ import annotations

import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor  # noqa: E402
from twisted.protocols import portforward  # noqa: E402


def main() -> int:
    listen_port, backend_port = int(sys.argv[1]), int(sys.argv[2])
    portforward.ProxyFactory.noisy = False
    portforward.ProxyClientFactory.noisy = False
    factory = portforward.ProxyFactory("127.0.0.1", backend_port)
    reactor.listenTCP(listen_port, factory, backlog=1024, interface="127.0.0.1")
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
