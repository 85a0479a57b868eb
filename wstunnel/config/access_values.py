"""
What a location asks of a request before its content: allow/deny, basic
authentication and the auth subrequest, and the per-client limits with
their zones.  Built at load by config/access.py and config/ratelimits.py.
"""

from __future__ import annotations

import ipaddress

from attrs import Factory, field, frozen

from wstunnel.config.values import Source, Template

__all__ = ["Access", "AccessRule", "LimitZone", "RateLimits"]


@frozen
class AccessRule:
    """One ``allow`` or ``deny``: ``network`` None with ``unix`` False is ``all``."""

    allow: bool
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    unix: bool = False  # "unix:": clients on a unix-domain socket


@frozen
class Access:
    """
    What a request must pass before its content phase: allow/deny, basic
    authentication and the auth subrequest, combined by ``satisfy``.  A
    ``limit_except`` block is ``limited``: the rules for every method not in
    ``except_methods``, inherited from the location it is in.
    """

    rules: tuple[AccessRule, ...] = ()  # allow/deny, first match wins
    satisfy_any: bool = False
    realm: Template | None = None  # auth_basic; None: off
    user_file: str | None = None  # auth_basic_user_file, absolute
    auth_request: str | None = None  # the subrequest's URI; None: off
    auth_request_set: tuple[tuple[str, Template], ...] = ()  # variable name, value in the subrequest
    except_methods: frozenset[bytes] = frozenset()
    limited: Access | None = None
    # Whether any check is configured: decided here, at load, not per request.
    checks: bool = field(
        init=False,
        default=Factory(lambda a: bool(a.rules) or a.realm is not None or a.auth_request is not None, takes_self=True),
    )


@frozen
class LimitZone:
    """
    A ``limit_conn_zone`` (``rate`` 0) or ``limit_req_zone``: the key, the
    table size in states, and the rate in milli-requests per second, the
    unit nginx's leaky bucket counts in.
    """

    name: str
    key: Template
    slots: int
    source: Source
    rate: int = 0


@frozen
class RateLimits:
    """
    A location's per-client limits, merged from its levels.  ``conns`` are
    (zone, number) pairs; ``reqs`` are (zone, burst, delay) in
    milli-requests, ``delay`` -1 for ``nodelay``.
    """

    conns: tuple[tuple[LimitZone, int], ...] = ()
    conn_status: int = 503
    conn_log_level: str = "error"
    conn_dry_run: bool = False
    reqs: tuple[tuple[LimitZone, int, int], ...] = ()
    req_status: int = 503
    req_log_level: str = "error"
    req_dry_run: bool = False
    rate: Template | None = None  # limit_rate: bytes per second, 0 unlimited
    rate_after: int = 0  # limit_rate_after
    proxy_rate: int = 0  # proxy_limit_rate: bytes per second read from the upstream, 0 unlimited
    tunnel_rate: int = 0  # wstunnel_tunnel_rate: bytes per second each way, 0 unlimited

    @property
    def checked(self) -> bool:
        """Whether a request must pass limit_req or limit_conn before it goes on."""
        return bool(self.conns or self.reqs)
