"""
A parsed upstream response head: the answer's counterpart of
:class:`~wstunnel.wire.request.RequestHead`.  :func:`wstunnel.wire.heads.check_response_head`
makes it from the lines it has just checked, so a head is parsed once;
the upstream protocol reads its framing, the exchange its status and the
101's headers, and the client side writes it on.
"""

from __future__ import annotations

from attrs import frozen

__all__ = ["ResponseHead"]


@frozen
class ResponseHead:
    """
    A status line and its header lines, validated.  Names keep the
    upstream's spelling and order (they are relayed as sent); look-ups
    compare them lower-cased.
    """

    status: int
    reason: bytes  # b"" when the upstream sent none
    http_version: bytes  # b"1.1" or b"1.0"
    headers: tuple[tuple[bytes, bytes], ...]

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower-case), in order."""
        return [v for n, v in self.headers if n.lower() == name]
