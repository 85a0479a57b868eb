"""
The PROXY protocol (v1 text and v2 binary), as sent by an L4 balancer
(HAProxy, a cloud network load balancer) before the client's first byte.

:class:`ProxyHeaderParser` is sans-IO: it is fed the connection's first
bytes, buffers at most one header, and returns the client's address plus
whatever followed the header.  Reading it off a connection is the net
layer's job (:mod:`wstunnel.net.proxyfirst`).

The specification is HAProxy's "The PROXY protocol".  As nginx does, a
header that is missing or malformed closes the connection; so does one
from a source outside ``set_real_ip_from`` when that is configured.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from attrs import frozen

__all__ = [
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxyHeaderParser",
    "is_trusted",
    "V2_SIGNATURE",
]

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included (TCP6 with the longest addresses)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16
# TLVs after the addresses are skipped; cloud balancers add a few dozen
# bytes of them.  Past this a header is refused rather than buffered.
V2_MAX_PAYLOAD = 4096
_V2_FAMILIES = {0x1: (4, ipaddress.IPv4Address), 0x2: (16, ipaddress.IPv6Address)}


class ProxyHeaderError(ValueError):
    """A missing or malformed PROXY header; the message says what was wrong."""


@frozen
class ProxyHeader:
    """The connection's original source, or ``None`` (v2 LOCAL, v1 UNKNOWN, non-IP families)."""

    source: tuple[str, int] | None


class ProxyHeaderParser:
    """Feed bytes until :meth:`feed` returns the header and the bytes after it."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        """``(header, rest)`` once complete, ``None`` while more is needed; raises ProxyHeaderError."""
        buffer = self._buffer + data
        self._buffer = buffer
        if buffer[:1] == V2_SIGNATURE[:1]:
            return _feed_v2(buffer)
        if buffer[:1] == V1_PREFIX[:1]:
            return _feed_v1(buffer)
        raise ProxyHeaderError("no PROXY protocol header")


def _feed_v1(buffer: bytes) -> tuple[ProxyHeader, bytes] | None:
    if not buffer.startswith(V1_PREFIX[: len(buffer)]):
        raise ProxyHeaderError("no PROXY protocol header")
    end = buffer.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(buffer) >= V1_MAX:
            raise ProxyHeaderError("PROXY v1 header longer than 107 bytes")
        return None
    return _parse_v1(buffer[:end]), buffer[end + 2 :]


def _parse_v1(line: bytes) -> ProxyHeader:
    words = line.split(b" ")
    if len(words) >= 2 and words[1] == b"UNKNOWN":
        return ProxyHeader(None)
    if len(words) != 6 or words[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"invalid PROXY v1 header {line[:V1_MAX]!r}")
    kind = ipaddress.IPv4Address if words[1] == b"TCP4" else ipaddress.IPv6Address
    try:
        source = kind(words[2].decode("ascii"))
        kind(words[3].decode("ascii"))
        port = _v1_port(words[4])
        _v1_port(words[5])
    except (ValueError, UnicodeDecodeError):
        raise ProxyHeaderError(f"invalid address in PROXY v1 header {line!r}") from None
    return ProxyHeader((str(source), port))


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or (len(text) > 1 and text.startswith(b"0")) or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def _feed_v2(buffer: bytes) -> tuple[ProxyHeader, bytes] | None:
    if not buffer.startswith(V2_SIGNATURE[: len(buffer)]):
        raise ProxyHeaderError("no PROXY protocol header")
    if len(buffer) < V2_FIXED:
        return None
    version, command = buffer[12] >> 4, buffer[12] & 0x0F
    if version != 2 or command > 1:
        raise ProxyHeaderError(f"unsupported PROXY v2 version/command byte 0x{buffer[12]:02x}")
    length = int.from_bytes(buffer[14:16], "big")
    if length > V2_MAX_PAYLOAD:
        raise ProxyHeaderError(f"PROXY v2 header of {length} bytes is too long")
    if len(buffer) < V2_FIXED + length:
        return None
    payload, rest = buffer[V2_FIXED : V2_FIXED + length], buffer[V2_FIXED + length :]
    family = _V2_FAMILIES.get(buffer[13] >> 4)
    if command == 0 or family is None:
        # LOCAL (the balancer's own health check) or AF_UNSPEC/AF_UNIX.
        return ProxyHeader(None), rest
    size, kind = family
    if len(payload) < 2 * size + 4:
        raise ProxyHeaderError("PROXY v2 address block is too short")
    source = kind(payload[:size])
    port = int.from_bytes(payload[2 * size : 2 * size + 2], "big")
    return ProxyHeader((str(source), port)), rest


def is_trusted(host: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether ``host`` (an IP literal, IPv4-mapped IPv6 counted as IPv4) is in ``networks``."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
