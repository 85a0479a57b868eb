"""proxy_next_upstream as values: conditions, the client's status, the retry budget."""

from __future__ import annotations

import pytest

from wstunnel.balancing.retry import Retries, client_status, counts_as_failure, status_condition
from wstunnel.config.model import NextUpstream

DEFAULT = NextUpstream()


@pytest.mark.parametrize(
    ("status", "condition"),
    [(500, "http_500"), (502, "http_502"), (503, "http_503"), (504, "http_504"), (403, "http_403"),
     (404, "http_404"), (429, "http_429"), (200, None), (501, None), (101, None)],
)
def test_status_condition(status: int, condition: str | None) -> None:
    assert status_condition(status) == condition


@pytest.mark.parametrize(
    ("condition", "status"),
    [("timeout", 504), ("http_504", 504), ("error", 502), ("invalid_header", 502), ("http_503", 503),
     ("http_404", 404), ("http_429", 429)],
)
def test_client_status(condition: str, status: int) -> None:
    assert client_status(condition) == status


@pytest.mark.parametrize("condition", ["error", "timeout", "invalid_header", "http_500", "http_502", "http_429"])
def test_failures_count_against_the_peer(condition: str) -> None:
    assert counts_as_failure(condition)


@pytest.mark.parametrize("condition", ["http_403", "http_404"])
def test_403_and_404_never_count_against_the_peer(condition: str) -> None:
    assert not counts_as_failure(condition)


def test_every_peer_is_tried_once_by_default() -> None:
    retries = Retries(DEFAULT, 3, b"GET", 0.0)
    allowed = []
    for _ in range(3):
        retries.attempt()
        allowed.append(retries.allows("error", 0.0, request_sent=False, body_sent=False))
    assert allowed == [True, True, False]


def test_tries_caps_the_peers() -> None:
    retries = Retries(NextUpstream(tries=2), 5, b"GET", 0.0)
    retries.attempt()
    assert retries.allows("error", 0.0, request_sent=False, body_sent=False)
    retries.attempt()
    assert not retries.allows("error", 0.0, request_sent=False, body_sent=False)


def test_tries_above_the_peer_count_changes_nothing() -> None:
    assert Retries(NextUpstream(tries=10), 2, b"GET", 0.0).left == 2


def test_only_listed_conditions_retry() -> None:
    retries = Retries(DEFAULT, 3, b"GET", 0.0)
    retries.attempt()
    assert retries.allows("timeout", 0.0, request_sent=True, body_sent=False)
    assert not retries.allows("invalid_header", 0.0, request_sent=True, body_sent=False)
    assert not retries.allows("http_502", 0.0, request_sent=True, body_sent=False)
    assert not Retries(NextUpstream(conditions=frozenset()), 3, b"GET", 0.0).allows(
        "error", 0.0, request_sent=False, body_sent=False
    )


@pytest.mark.parametrize("method", [b"POST", b"PATCH", b"LOCK"])
def test_a_non_idempotent_request_is_resent_only_when_listed(method: bytes) -> None:
    plain = Retries(DEFAULT, 3, method, 0.0)
    assert plain.allows("error", 0.0, request_sent=False, body_sent=False), "never sent: nothing to repeat"
    assert not plain.allows("error", 0.0, request_sent=True, body_sent=False)
    listed = Retries(NextUpstream(conditions=frozenset({"error", "non_idempotent"})), 3, method, 0.0)
    assert listed.allows("error", 0.0, request_sent=True, body_sent=False)


def test_a_body_that_started_flowing_is_never_sent_twice() -> None:
    retries = Retries(NextUpstream(conditions=frozenset({"error", "non_idempotent"})), 3, b"PUT", 0.0)
    assert not retries.allows("error", 0.0, request_sent=True, body_sent=True)


def test_the_timeout_runs_from_the_first_attempt() -> None:
    retries = Retries(NextUpstream(timeout=5.0), 3, b"GET", 100.0)
    assert retries.allows("error", 104.9, request_sent=False, body_sent=False)
    assert not retries.allows("error", 105.0, request_sent=False, body_sent=False)
