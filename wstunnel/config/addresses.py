"""
Addresses and URLs as nginx writes them: ``host:port``, ``[v6]:port``,
``listen`` addresses (resolved at load time) and ``proxy_pass`` URLs,
checked for syntax before upstream names are known.

The parsers raise ``ValueError`` with nginx's wording; the directive's
handler adds the file and line.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Callable, Sequence

from attrs import frozen

from wstunnel.config.model import ConfigError, Source

__all__ = [
    "ProxyURL",
    "Resolver",
    "format_address",
    "is_ip",
    "listen_addresses",
    "parse_proxy_url",
    "resolve_host",
    "split_host_port",
]

Resolver = Callable[[str, int], Sequence[str]]

# nginx refuses "listen 0"; we let the system pick a free port, which tests need.
_LISTEN_LOWEST_PORT = 0


def resolve_host(host: str, port: int) -> list[str]:
    """Every TCP address of ``host``, once each, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _port(text: str, whole: str, lowest: int = 1) -> int:
    if not text.isdigit() or not lowest <= int(text) <= 65535:
        raise ValueError(f'invalid port in "{whole}"')
    return int(text)


def split_host_port(text: str, default_port: int | None, lowest_port: int = 1) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; the host without brackets."""
    if text.startswith("["):
        end = text.find("]")
        host, tail = (text[1:end], text[end + 1 :]) if end > 0 else ("", "")
        if end < 0 or (tail and not tail.startswith(":")):
            raise ValueError(f'invalid IPv6 address in "{text}"')
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f'invalid IPv6 address in "{text}"') from None
        port_text = tail[1:] if tail else None
    elif text.count(":") > 1:
        raise ValueError(f'IPv6 address in "{text}" must be written in brackets')
    else:
        host, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    if not host:
        raise ValueError(f'no host in "{text}"')
    return host, default_port if port_text is None else _port(port_text, text, lowest_port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 literal (no brackets), not a name to resolve."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@frozen
class ProxyURL:
    """A ``proxy_pass`` URL checked for syntax, before upstream names are known."""

    scheme: str
    authority: str
    host: str
    port: int | None
    uri: str | None
    source: Source


def parse_proxy_url(url: str, source: Source) -> ProxyURL:
    if "$" in url.partition("://")[0]:
        raise ValueError('variables in "proxy_pass" are not supported by wstunnel')
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f'invalid URL prefix in "{url}"')
    cut = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
    authority, uri = rest[:cut], rest[cut:]
    if "$" in authority:  # variables in the URI part are rendered per request
        raise ValueError('variables in "proxy_pass" are not supported by wstunnel')
    if authority.startswith("unix:"):
        raise ValueError("unix domain sockets are not supported by wstunnel")
    if "@" in authority:
        raise ValueError(f'user information in "{url}" is not supported')
    host, port = split_host_port(authority, None)
    return ProxyURL(scheme, authority, host, port, uri or None, source)


def listen_addresses(address: str, source: Source, resolve: Resolver) -> list[tuple[str, int]]:
    """The addresses a ``listen`` binds: a name is resolved now, to all its addresses, as nginx does."""
    if address.startswith("unix:"):
        raise ConfigError(source, "unix domain sockets are not supported by wstunnel")
    try:
        if address.isdigit():
            return [("0.0.0.0", _port(address, address, _LISTEN_LOWEST_PORT))]
        host, port = split_host_port(address, 80, _LISTEN_LOWEST_PORT)
    except ValueError as exc:
        raise ConfigError(source, f'{exc} of the "listen" directive') from None
    assert port is not None
    if host == "*":
        return [("0.0.0.0", port)]
    if is_ip(host):
        return [(host, port)]
    try:
        return [(ip, port) for ip in resolve(host, port)]
    except OSError:
        raise ConfigError(source, f'host not found in "{address}" of the "listen" directive') from None
