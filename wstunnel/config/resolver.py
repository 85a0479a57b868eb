"""
``resolver`` and ``resolver_timeout``: the DNS servers through which a
``proxy_pass`` with variables finds a name that no ``upstream`` block
holds.  Server names are resolved here, at load, as nginx does; the names
of requests are resolved by the net layer at request time.
"""

from __future__ import annotations

from attrs import evolve

from wstunnel.config.addresses import is_ip, split_host_port
from wstunnel.config.args import time_arg
from wstunnel.config.inherit import Effective
from wstunnel.config.levels import Level
from wstunnel.config.model import ConfigError, Resolver
from wstunnel.config.read import Stmt
from wstunnel.config.walk import Load

__all__ = ["resolver", "resolver_in_force", "resolver_timeout"]

_DNS_PORT = 53
_SWITCHES = ("ipv4", "ipv6")


def resolver(load: Load, stmt: Stmt, level: Level) -> None:
    """``resolver address ... [valid=time] [ipv4=on|off] [ipv6=on|off] [status_zone=zone]``."""
    servers: list[tuple[str, int]] = []
    options: dict[str, object] = {}
    for arg in stmt.args:
        name, sep, value = arg.partition("=")
        if sep and name in ("valid", *_SWITCHES, "status_zone"):
            options[name] = _option(stmt, arg, name, value)
        else:
            servers += _servers(load, stmt, arg)
    if not servers:
        raise ConfigError(stmt.source, '"resolver" directive names no address')
    if options.get("ipv4") is False and options.get("ipv6") is False:
        raise ConfigError(stmt.source, '"ipv4" and "ipv6" cannot both be "off"')
    options.pop("status_zone", None)
    level.resolver = Resolver(tuple(dict.fromkeys(servers)), stmt.source, **options)  # type: ignore[arg-type]


def _option(stmt: Stmt, arg: str, name: str, value: str) -> object:
    if name == "valid":
        try:
            return time_arg(stmt, value)
        except ConfigError:
            raise ConfigError(stmt.source, f"invalid parameter: {arg}") from None
    if name == "status_zone":
        return value
    if value not in ("on", "off"):
        raise ConfigError(stmt.source, f"invalid parameter: {arg}")
    return value == "on"


def _servers(load: Load, stmt: Stmt, arg: str) -> list[tuple[str, int]]:
    """One address of the directive: an IP, or a name resolved now to all its addresses."""
    try:
        host, port = split_host_port(arg, _DNS_PORT)
    except ValueError:
        raise ConfigError(stmt.source, f'invalid port in resolver "{arg}"') from None
    assert port is not None
    if is_ip(host):
        return [(host, port)]
    try:
        addresses = list(load.resolve(host, port))
    except OSError:
        addresses = []
    if not addresses:
        raise ConfigError(stmt.source, f'host not found in resolver "{arg}"')
    return [(ip, port) for ip in addresses]


def resolver_timeout(load: Load, stmt: Stmt, level: Level) -> None:
    level.resolver_timeout = time_arg(stmt, stmt.args[0])


def resolver_in_force(eff: Effective) -> Resolver | None:
    """The resolver a location uses: the nearest ``resolver``, under the nearest ``resolver_timeout``."""
    if eff.resolver is None:
        return None
    return evolve(eff.resolver, timeout=eff.resolver_timeout)
