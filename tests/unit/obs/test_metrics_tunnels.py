"""Tunnels counted in fields and turned into series by the snapshot: the same series as counting each bucket."""

from __future__ import annotations

from wstunnel.obs.metrics import DURATION_BUCKETS, Stats, series


def test_the_duration_histogram_is_cumulative_and_its_bounds_inclusive() -> None:
    stats = Stats(list, dict)
    durations = (0.5, 1.0, 30.0, 86400.0, 90000.0)
    for seconds in durations:
        stats.tunnel_opened()
        stats.tunnel_closed("idle_timeout", seconds, 1, 2)
    values = stats.snapshot()
    for bound in DURATION_BUCKETS:
        label = str(int(bound))
        expected = sum(1 for s in durations if s <= bound)
        assert values[series("wstunnel_tunnel_duration_seconds_bucket", le=label)] == expected
    assert values[series("wstunnel_tunnel_duration_seconds_bucket", le="+Inf")] == 5
    assert values["wstunnel_tunnel_duration_seconds_count"] == 5
    assert values["wstunnel_tunnel_duration_seconds_sum"] == sum(durations)
    assert values[series("wstunnel_tunnels_closed_total", reason="idle_timeout")] == 5
    assert values[series("wstunnel_upgrades_total", outcome="tunnel")] == 5


def test_an_outcome_that_never_happened_has_no_series() -> None:
    values = Stats(list, dict).snapshot()
    assert series("wstunnel_upgrades_total", outcome="tunnel") not in values
    assert not any(key.startswith("wstunnel_tunnels_closed_total") for key in values)
    assert values[series("wstunnel_tunnel_duration_seconds_bucket", le="+Inf")] == 0
