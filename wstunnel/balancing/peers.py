"""
The live state of upstream peers: open connections, failures, weights.

Plain data changed by plain functions of events and ``now`` (the caller's
clock reading, in seconds).  Nothing here reads a clock, logs or touches a
socket, so tests drive it with numbers, and a later multi-worker design can
keep the same fields in shared memory and call the same functions.

The rules are nginx's (ngx_http_upstream_round_robin.c):

- a peer is *usable* unless it is ``down``, at ``max_conns`` open
  connections, or *failed out*: ``max_fails`` failures counted and the last
  check less than ``fail_timeout`` ago;
- :func:`selected` counts the connection and, when the last check is older
  than ``fail_timeout``, starts a new check (this is how a failed-out peer
  gets one trial request after ``fail_timeout``);
- :func:`released` ends the connection; a failure counts, marks the peer
  checked and lowers its effective weight by ``weight / max_fails``; a
  success after a newer check forgets the failures;
- a group of a single peer (and no backup) never counts failures: there is
  nothing to fall back to, so taking it out would only turn errors into
  "no live upstreams".

Events, in order, for one connection: ``selected`` when the balancer
chooses the peer, ``released`` when the connection ends (for a WebSocket,
when the tunnel ends: a tunnel is an open connection for its whole life).
"""

from __future__ import annotations

from attrs import define, field

from wstunnel.config.model import Peer

__all__ = ["PeerState", "failed_out", "released", "selected", "usable"]


@define(eq=False)
class PeerState:
    """
    One peer's counters.  Identity is the peer's identity (``eq=False``), so
    states can sit in the per-request set of tried peers.

    :ivar current_weight: smooth weighted round robin's running weight.
    :ivar effective_weight: the weight in use; lowered by failures and grown
        back by one per selection round, up to ``peer.weight``.
    :ivar conns: connections open now (tunnels included).
    :ivar fails: failures counted since the last success after a check.
    :ivar accessed: time of the last failure.
    :ivar checked: time of the last failure or of the first selection more
        than ``fail_timeout`` after the previous check.
    """

    peer: Peer
    current_weight: int = 0
    effective_weight: int = field()
    conns: int = 0
    fails: int = 0
    accessed: float = 0.0
    checked: float = 0.0

    @effective_weight.default
    def _start_at_full_weight(self) -> int:
        return self.peer.weight


def failed_out(state: PeerState, now: float) -> bool:
    """Whether the peer sits out after ``max_fails`` failures."""
    peer = state.peer
    return bool(peer.max_fails) and state.fails >= peer.max_fails and now - state.checked <= peer.fail_timeout


def usable(state: PeerState, now: float, *, single: bool = False) -> bool:
    """Whether a new connection may go to this peer (``single``: failures are ignored)."""
    peer = state.peer
    if peer.down or (peer.max_conns and state.conns >= peer.max_conns):
        return False
    return single or not failed_out(state, now)


def selected(state: PeerState, now: float) -> None:
    """The balancer chose this peer for a new connection."""
    state.conns += 1
    if now - state.checked > state.peer.fail_timeout:
        state.checked = now


def released(state: PeerState, now: float, *, failed: bool, single: bool = False) -> bool:
    """
    A connection to this peer ended, ``failed`` or not.  Returns True when
    the peer is now failed out, so the caller can log nginx's warning
    "upstream server temporarily disabled".
    """
    state.conns -= 1
    if single:
        return False
    if not failed:
        if state.accessed < state.checked:
            state.fails = 0
        return False
    peer = state.peer
    state.fails += 1
    state.accessed = state.checked = now
    if not peer.max_fails:
        return False
    state.effective_weight = max(0, state.effective_weight - peer.weight // peer.max_fails)
    return state.fails >= peer.max_fails
