"""
nginx's leaky bucket and connection counters, sans-IO, at explicit times
(integer milliseconds, milli-requests, as nginx counts them).
"""

from __future__ import annotations

import contextlib

from wstunnel.core.ratelimit import WINDOW, ConnTable, ReqTable, key_hash


def conn_table(slots: int) -> ConnTable:
    return ConnTable(memoryview(bytearray(slots * 16)).cast("q"), contextlib.nullcontext())


def req_table(slots: int, rate: int) -> ReqTable:
    return ReqTable(memoryview(bytearray(slots * 24)).cast("q"), rate, contextlib.nullcontext())


def test_a_new_key_starts_with_an_empty_bucket_then_each_request_adds_one() -> None:
    bucket = req_table(64, 1000)  # 1r/s
    tag = key_hash("a")
    assert bucket.excess(tag, 0) == 0
    assert bucket.charge(tag, 0) == 0
    assert bucket.excess(tag, 0) == 1000, "an immediate second request is one over"
    assert bucket.charge(tag, 0) == 1000
    assert bucket.charge(tag, 0) == 2000


def test_the_bucket_drains_at_the_rate() -> None:
    bucket = req_table(64, 2000)  # 2r/s
    tag = key_hash("a")
    bucket.charge(tag, 0)
    bucket.charge(tag, 0)  # excess 1000
    assert bucket.excess(tag, 250) == 1500, "500 drained in 250 ms, one added"
    assert bucket.excess(tag, 1000) == 0, "all drained: a request now is no excess"
    assert bucket.excess(tag, 10_000) == 0


def test_one_request_a_minute_is_16_milli_requests_a_second() -> None:
    bucket = req_table(64, 1000 // 60)
    tag = key_hash("a")
    bucket.charge(tag, 0)
    assert bucket.excess(tag, 59_000) == 56, "1000 - 16 * 59 still in the bucket: over a burst of 0"
    assert bucket.excess(tag, 62_500) == 0, "16 * 62.5 = 1000 drained"


def test_a_clock_that_goes_back_counts_as_no_time() -> None:
    bucket = req_table(64, 1000)
    tag = key_hash("a")
    bucket.charge(tag, 10_000)
    assert bucket.excess(tag, 9_000) == 1000


def test_an_uncounted_check_changes_nothing() -> None:
    bucket = req_table(64, 1000)
    tag = key_hash("a")
    for _ in range(5):
        assert bucket.excess(tag, 0) == 0


def test_a_full_window_of_buckets_gives_up_its_least_recently_used() -> None:
    bucket = req_table(WINDOW, 16)  # every key lands in the one window
    tags = [key_hash(str(n)) for n in range(WINDOW + 1)]
    for at, tag in enumerate(tags[:WINDOW]):
        bucket.charge(tag, at)
        bucket.charge(tag, at)  # excess 1000: not drained for a minute
    assert bucket.charge(tags[-1], 100) == 0, "a bucket zone never refuses a key"
    assert bucket.excess(tags[0], 100) == 0, "the oldest state was the one given up"
    assert bucket.excess(tags[1], 100) > 0


def test_conn_counts_up_to_the_limit_and_back() -> None:
    counts = conn_table(64)
    a, b = key_hash("a"), key_hash("b")
    assert counts.acquire(a, 2) is True
    assert counts.acquire(a, 2) is True
    assert counts.acquire(a, 2) is False
    assert counts.acquire(b, 2) is True
    assert counts.count(a) == 2
    counts.release(a)
    assert counts.count(a) == 1
    assert counts.acquire(a, 2) is True


def test_a_conn_zone_whose_window_is_in_use_is_full_until_a_count_ends() -> None:
    counts = conn_table(WINDOW)
    tags = [key_hash(str(n)) for n in range(WINDOW + 1)]
    assert all(counts.acquire(tag, 1) for tag in tags[:WINDOW])
    assert counts.acquire(tags[-1], 1) is None
    counts.release(tags[3])
    assert counts.acquire(tags[-1], 1) is True, "a slot whose count is 0 is free again"
    assert counts.count(tags[3]) == 0


def test_key_hash_is_the_same_in_every_process_and_never_the_empty_tag() -> None:
    assert key_hash("\x7f\x00\x00\x02") == key_hash("\x7f\x00\x00\x02") != key_hash("\x7f\x00\x00\x05")
    assert key_hash("a") == 3405396810240292928, "blake2b, not Python's per-process hash"
