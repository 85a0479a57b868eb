"""The states of a client connection, which its protocol and its request side share."""

from __future__ import annotations

from enum import Enum

__all__ = ["State"]


class State(Enum):
    """
    ``READING``: waiting for or reading a request head.  ``PROXYING``: a
    request is being answered (by an exchange or by wstunnel itself).
    ``TUNNEL``: the tunnel owns both connections.  ``CLOSED``: closing or closed.
    """

    READING = "reading a request head"
    PROXYING = "an exchange is running"
    TUNNEL = "tunnel"
    CLOSED = "closed"
