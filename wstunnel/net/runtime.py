"""
Everything a connection needs from one loaded configuration, built once.

A connection takes the current :class:`Runtime` when it is accepted and
keeps it to the end, so a reload (one reference swap) never changes the
rules under a request or tunnel that is already running.  Whatever is
derived from the configuration (routing tables, balancers, header plans,
upstream TLS contexts) lives here, so it shares that one lifecycle: no
module keeps a cache of its own.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from attrs import evolve, field, frozen
from twisted.internet.interfaces import IReactorTCP, IReactorTime

from wstunnel.balancing.balancer import Balancer, make_balancer
from wstunnel.obs.logs import AccessLogs
from wstunnel.config.model import Binding, Config, Location
from wstunnel.core.headers import HeaderPlan, header_plan
from wstunnel.net.pool import IdlePool
from wstunnel.core.routing import Router
from wstunnel.net.tls import UpstreamTLSContexts
from wstunnel.net.upstream import Connect, PeerConnector
from wstunnel.config.addresses import split_host_port
from wstunnel.config.model import Template, VarRef
from wstunnel.core.variables import RequestVars
from wstunnel.net.dynamic import DynamicExchange, Targets
from wstunnel.net.exchange import Exchange
from wstunnel.net.resolve import Resolvers
from wstunnel.net.userfiles import UserFileCache
from wstunnel.net.zones import Zones

__all__ = ["Forwarding", "Runtime"]

# The Host of a proxy_pass with variables that sets none: the rendered host[:port].
_PROXY_HOST = Template("$proxy_host", (VarRef("proxy_host"),))


@frozen
class Forwarding:
    """
    How the requests of one ``proxy_pass`` location go upstream, worked out
    at load: a request reads all of it with one lookup.
    """

    plan: HeaderPlan  # its proxy_set_header list
    connector: PeerConnector  # TCP or unix, plain or TLS, under its proxy_connect_timeout
    balancer: Balancer  # its group's (a stand-in's for a proxy_pass with variables)
    pool: IdlePool | None  # its group's idle connections; None: no keepalive
    # The reactor and clock the connector was last bound to, and that connect.
    _bound: list = field(init=False, factory=list, eq=False, repr=False)

    def connect(self, reactor: IReactorTCP, clock: IReactorTime) -> Connect:
        """The connector bound to ``reactor``: once, not per request (a process has one reactor)."""
        bound = self._bound
        if bound and bound[0] is reactor and bound[1] is clock:
            return bound[2]
        connect = self.connector.bind(reactor, clock)
        bound[:] = (reactor, clock, connect)
        return connect


@frozen
class Runtime:
    config: Config
    router: Router
    balancers: dict[str, Balancer]
    bindings: dict[tuple[str, int], Binding]
    access_logs: AccessLogs
    pools: dict[str, IdlePool] = field(factory=dict)  # upstreams with keepalive
    # By the Location's identity: hashing a frozen Location walks the whole
    # nested model, and the config held here keeps every Location alive.
    forwardings: dict[int, Forwarding] = field(factory=dict)
    targets: Targets | None = None  # what a proxy_pass with variables may name
    users: UserFileCache = field(factory=UserFileCache)  # auth_basic_user_file tables
    zones: Zones = field(factory=Zones)
    # The limit_conn and limit_req tables of this config's zones, by the LimitZone's identity.
    limit_tables: dict[int, object] = field(factory=dict)

    @classmethod
    def build(cls, config: Config, access_logs: AccessLogs | None = None, zones: Zones | None = None) -> "Runtime":
        """``access_logs``, ``zones``: the previous runtime's, which a reload keeps using."""
        upstreams = _all_upstreams(config)
        balancers = {name: make_balancer(up) for name, up in upstreams.items()}
        pools = {name: IdlePool(up) for name, up in upstreams.items() if up.keepalive > 0}
        zones = zones if zones is not None else Zones()
        targets = _targets(config, balancers, pools)
        return cls(
            config=config,
            router=Router(config),
            balancers=balancers,
            bindings={(b.host, b.port): b for b in config.bindings},
            access_logs=access_logs if access_logs is not None else AccessLogs(),
            pools=pools,
            forwardings=_forwardings(config, balancers, pools, targets),
            targets=targets,
            zones=zones,
            limit_tables=_limit_tables(config, zones),
        )

    def balancer(self, upstream_name: str) -> Balancer:
        """The group's balancer, which holds its peers' live state (wstunnel.balancing.peers)."""
        try:
            return self.balancers[upstream_name]
        except KeyError:
            assert self.targets is not None, upstream_name
            return self.targets.stand_ins[upstream_name]

    def plan(self, location: Location) -> HeaderPlan:
        """The ``proxy_set_header`` plan of a ``proxy_pass`` location of this config."""
        return self.forwardings[id(location)].plan

    def forwarding(self, location: Location) -> Forwarding:
        """``location`` (a ``proxy_pass`` one of this runtime's config) as it forwards requests."""
        return self.forwardings[id(location)]

    def dynamic(self, rv: RequestVars, reactor: object) -> Callable[..., Exchange]:
        """The Exchange maker of a request to a ``proxy_pass`` with variables, which ``rv`` renders."""
        assert self.targets is not None
        return partial(DynamicExchange, targets=self.targets, rv=rv, reactor=reactor)

    @property
    def sockets(self) -> list[Binding]:
        """
        The bindings that get a socket of their own.  As in nginx, a
        wildcard listen on a port takes the specific addresses of the same
        family on that port: one socket is bound, and the virtual servers
        are chosen by the address each connection arrived on, unless
        ``bind`` (or any socket option) gives the address a socket of its own.
        """
        wild = {(b.port, ":" in b.host) for b in self.config.bindings if b.host in ("0.0.0.0", "::")}
        return [
            b for b in self.config.bindings
            if b.host in ("0.0.0.0", "::") or b.options.bind or (b.port, ":" in b.host) not in wild
        ]

    def binding_for(self, key: tuple[str, int], local_host: str) -> Binding:
        """The binding a connection accepted on socket ``key`` belongs to."""
        return self.bindings.get((local_host, key[1])) or self.bindings[key]


def _all_upstreams(config: Config) -> dict:
    """Named upstream blocks plus the implicit groups of ``proxy_pass host:port``."""
    found = dict(config.upstreams)
    for server in config.servers:
        for location in server.locations:
            if location.proxy_pass is not None and location.proxy_pass.authority is None:
                up = location.proxy_pass.upstream
                found.setdefault(up.name, up)
    return found


def _forwardings(
    config: Config, balancers: dict[str, Balancer], pools: dict[str, IdlePool], targets: Targets | None
) -> dict[int, Forwarding]:
    contexts = UpstreamTLSContexts()
    found = {}
    for server in config.servers:
        for location in server.locations:
            proxy_pass = location.proxy_pass
            if proxy_pass is None:
                continue
            timeout = location.timeouts.connect
            tls = proxy_pass.tls
            connector = PeerConnector(timeout) if tls is None else contexts.connector(tls, timeout)
            plan = header_plan(location, config)
            if proxy_pass.authority is not None and plan.host is None:
                plan = evolve(plan, host=_PROXY_HOST)
            name = proxy_pass.upstream.name
            balancer = balancers[name] if name in balancers else targets.stand_ins[name]  # type: ignore[union-attr]
            found[id(location)] = Forwarding(plan, connector, balancer, pools.get(name))
    return found


def _targets(config: Config, balancers: dict[str, Balancer], pools: dict[str, IdlePool]) -> Targets | None:
    """The groups a rendered authority may name: upstream blocks, and plain ``proxy_pass`` groups by address."""
    locations = [location for server in config.servers for location in server.locations]
    if not any(location.proxy_pass is not None and location.proxy_pass.authority for location in locations):
        return None
    implicit = {}
    for location in locations:
        proxy_pass = location.proxy_pass
        if proxy_pass is not None and proxy_pass.authority is None and proxy_pass.upstream.implicit:
            default = 443 if proxy_pass.scheme == "https" else 80
            host, port = split_host_port(proxy_pass.upstream.name, default)
            implicit[(host.lower(), port)] = proxy_pass.upstream
    named = {up.name.lower(): up for up in config.upstreams.values()}
    stand_ins = {
        location.proxy_pass.upstream.name: make_balancer(location.proxy_pass.upstream)
        for location in locations
        if location.proxy_pass is not None and location.proxy_pass.authority is not None
    }
    return Targets(named, implicit, balancers, pools, Resolvers(), stand_ins)


def _limit_tables(config: Config, zones: Zones) -> dict[int, object]:
    found: dict[int, object] = {}
    for server in config.servers:
        for location in server.locations:
            limits = location.limits
            if limits is None:
                continue
            for zone, _ in limits.conns:
                found[id(zone)] = zones.conn(zone)
            for zone, _, _ in limits.reqs:
                found[id(zone)] = zones.req(zone)
    return found
