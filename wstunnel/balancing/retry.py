"""
``proxy_next_upstream``: what went wrong with an attempt, whether another
peer may be tried, and which status the client gets when none is.

The rules are nginx's (ngx_http_upstream_next, ngx_http_upstream_test_next):

- a failed attempt is one *condition*: ``error`` (connect error, or the
  connection closed before a complete response head), ``timeout``
  (connect, send or response-head timeout), ``invalid_header`` (an answer
  that cannot be parsed, or an unacceptable 101), or ``http_NNN`` (a response
  with that status, only when ``proxy_next_upstream`` lists it);
- the next peer is tried only if the condition is listed, attempts are left
  (every usable peer once, at most ``proxy_next_upstream_tries``), the
  ``proxy_next_upstream_timeout`` has not passed since the first attempt,
  and, once the request went to a peer, the method is idempotent or
  ``non_idempotent`` is listed.  wstunnel streams request bodies instead
  of buffering them, so a request whose body started flowing is never sent
  twice (nginx's rule for ``proxy_request_buffering off``);
- ``error``, ``timeout`` and ``invalid_header`` always count against the
  peer (passive health); ``http_500``/``502``/``503``/``504``/``429`` count
  when they lead to the next peer; ``http_403``/``404`` never do.
"""

from __future__ import annotations

from wstunnel.config.model import NEXT_UPSTREAM_CONDITIONS as CONDITIONS, NextUpstream

__all__ = [
    "NON_IDEMPOTENT_METHODS",
    "Retries",
    "client_status",
    "counts_as_failure",
    "status_condition",
]

NON_IDEMPOTENT_METHODS = frozenset({b"POST", b"LOCK", b"PATCH"})
_STATUS_CONDITIONS = {int(c[5:]): c for c in CONDITIONS if c.startswith("http_")}
_NOT_FAILURES = frozenset({"http_403", "http_404"})


def status_condition(status: int) -> str | None:
    """The ``http_NNN`` condition a response status stands for, if any."""
    return _STATUS_CONDITIONS.get(status)


def client_status(condition: str) -> int:
    """What the client gets when ``condition`` ends the request: 504, NNN or 502."""
    if condition in ("timeout", "http_504"):
        return 504
    if condition.startswith("http_"):
        return int(condition[5:])
    return 502


def counts_as_failure(condition: str) -> bool:
    """Whether ``condition`` counts towards the peer's ``max_fails``."""
    return condition not in _NOT_FAILURES


class Retries:
    """
    One request's retry budget.  Call :meth:`attempt` when an attempt
    starts and :meth:`allows` when it failed.
    """

    __slots__ = ("_policy", "_method", "_started", "left")

    def __init__(self, policy: NextUpstream, peers: int, method: bytes, started: float) -> None:
        self._policy = policy
        self._method = method
        self._started = started
        self.left = min(peers, policy.tries) if policy.tries else peers

    def attempt(self) -> None:
        self.left -= 1

    def allows(self, condition: str, now: float, *, request_sent: bool, body_sent: bool) -> bool:
        """Whether the request may go to another peer after ``condition``."""
        policy = self._policy
        wanted = {condition}
        if request_sent and self._method in NON_IDEMPOTENT_METHODS:
            wanted.add("non_idempotent")
        return (
            self.left > 0
            and wanted <= policy.conditions
            and not body_sent
            and not (policy.timeout and now - self._started >= policy.timeout)
        )
