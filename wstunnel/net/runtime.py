"""
Everything a connection needs from one loaded configuration, built once.

A connection takes the current :class:`Runtime` when it is accepted and
keeps it to the end, so a reload (one reference swap) never changes the
rules under a request or tunnel that is already running.
"""

from __future__ import annotations

from attrs import field, frozen

from wstunnel.balancing.balancer import Balancer, make_balancer
from wstunnel.obs.logs import AccessLogs
from wstunnel.config.model import Binding, Config
from wstunnel.net.pool import IdlePool
from wstunnel.core.routing import Router

__all__ = ["Runtime"]


@frozen
class Runtime:
    config: Config
    router: Router
    balancers: dict[str, Balancer]
    bindings: dict[tuple[str, int], Binding]
    access_logs: AccessLogs
    pools: dict[str, IdlePool] = field(factory=dict)  # upstreams with keepalive

    @classmethod
    def build(cls, config: Config, access_logs: AccessLogs | None = None) -> "Runtime":
        """``access_logs``: the previous runtime's files, which a reload keeps using."""
        upstreams = _all_upstreams(config)
        return cls(
            config=config,
            router=Router(config),
            balancers={name: make_balancer(up) for name, up in upstreams.items()},
            bindings={(b.host, b.port): b for b in config.bindings},
            access_logs=access_logs if access_logs is not None else AccessLogs(),
            pools={name: IdlePool(up) for name, up in upstreams.items() if up.keepalive > 0},
        )

    def balancer(self, upstream_name: str) -> Balancer:
        """The group's balancer, which holds its peers' live state (wstunnel.balancing.peers)."""
        return self.balancers[upstream_name]

    @property
    def sockets(self) -> list[Binding]:
        """
        The bindings that get a socket of their own.  As in nginx, a
        wildcard listen on a port takes the specific addresses of the same
        family on that port: one socket is bound, and the virtual servers
        are chosen by the address each connection arrived on.
        """
        wild = {(b.port, ":" in b.host) for b in self.config.bindings if b.host in ("0.0.0.0", "::")}
        return [
            b for b in self.config.bindings
            if b.host in ("0.0.0.0", "::") or (b.port, ":" in b.host) not in wild
        ]

    def binding_for(self, key: tuple[str, int], local_host: str) -> Binding:
        """The binding a connection accepted on socket ``key`` belongs to."""
        return self.bindings.get((local_host, key[1])) or self.bindings[key]


def _all_upstreams(config: Config) -> dict:
    """Named upstream blocks plus the implicit groups of ``proxy_pass host:port``."""
    found = dict(config.upstreams)
    for server in config.servers:
        for location in server.locations:
            if location.proxy_pass is not None:
                up = location.proxy_pass.upstream
                found.setdefault(up.name, up)
    return found
