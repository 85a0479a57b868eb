"""
Where a ``proxy_pass`` with variables sends one request, decided from its
rendered host[:port] as nginx decides it: an ``upstream`` block of that
name (when no port is given), or the group a plain ``proxy_pass`` to the
same host and port made; otherwise an IP literal is connected to as is and
a name must be resolved.  The rendering is the caller's, so that this
module knows nothing of variables.
"""

from __future__ import annotations

import re
from typing import Mapping, NamedTuple

from wstunnel.config.addresses import is_ip
from wstunnel.config.model import Upstream
from wstunnel.wire.errors import RequestError

__all__ = ["Choice", "choose", "rendered_proxy_host", "split_authority"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# What ends an authority, or has no place in one.
_NOT_IN_AUTHORITY = re.compile(r"[/?#@\s]")


class Choice(NamedTuple):
    """``upstream`` when the authority names one; else ``host`` (no brackets) to connect to or resolve."""

    upstream: Upstream | None
    host: str
    port: int
    literal: bool  # host is an IP address: nothing to resolve


def split_authority(text: str, scheme: str) -> tuple[str, int, bool]:
    """
    The rendered ``host[:port]``: the host without brackets, the port (the
    scheme's by default) and whether one was written.  A value nginx
    cannot parse is its 500, with its words.
    """
    if _NOT_IN_AUTHORITY.search(text):
        raise RequestError(500, f'invalid host in upstream "{text}"')
    host, port_text, explicit = text, "", False
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        if end < 0 or ":" not in host or not is_ip(host) or (rest and not rest.startswith(":")):
            raise RequestError(500, f'invalid IPv6 address in upstream "{text}"')
        explicit, port_text = bool(rest), rest[1:]
    elif ":" in text:
        host, _, port_text = text.partition(":")
        explicit = True
    if not host:
        raise RequestError(500, f'no host in upstream "{text}"')
    if explicit and not (port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise RequestError(500, f'invalid port in upstream "{text}"')
    return host, int(port_text) if explicit else _DEFAULT_PORTS[scheme], explicit


def rendered_proxy_host(text: str, scheme: str) -> str:
    """
    ``$proxy_host`` of a rendered authority: the host, with the port when it
    is not the scheme's; a value that is no authority as it is (the request
    fails where it is chosen, and its log line may still show it).
    """
    try:
        host, port, _ = split_authority(text, scheme)
    except RequestError:
        return text
    shown = f"[{host}]" if ":" in host else host
    return shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"


def choose(
    text: str,
    scheme: str,
    named: Mapping[str, Upstream],
    implicit: Mapping[tuple[str, int], Upstream],
) -> Choice:
    """
    ``named``: the upstream blocks by lower-case name; ``implicit``: the
    groups of plain ``proxy_pass host:port`` lines by lower-case host and port.
    """
    host, port, explicit = split_authority(text, scheme)
    lower = host.lower()
    upstream = None if explicit else named.get(lower)
    if upstream is None:
        upstream = implicit.get((lower, port))
    return Choice(upstream, host, port, is_ip(host))

