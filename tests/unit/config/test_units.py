import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstunnel.config.units import parse_size, parse_time

UNIT_MS = [("y", 31_536_000_000), ("M", 2_592_000_000), ("w", 604_800_000), ("d", 86_400_000),
           ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("60", 60.0),
        ("0", 0.0),
        ("300s", 300.0),
        ("5m", 300.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("90m", 5400.0),
        ("1m30", 90.0),
        ("1d", 86400.0),
        ("2w", 1_209_600.0),
        ("1M", 2_592_000.0),
        ("1y", 31_536_000.0),
        ("1s500ms", 1.5),
    ],
)
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "s", "abc", "1x", "-1", "1.5s", "30m1h", "1m1m", "5 5", "1S", "1H", "1ms5s", " 5s"],
)
def test_parse_time_rejects(text):
    with pytest.raises(ValueError, match="time value"):
        parse_time(text)


def test_parse_time_rejects_values_nginx_cannot_hold():
    with pytest.raises(ValueError, match="too large"):
        parse_time("100y")


@given(
    st.lists(st.tuples(st.sampled_from(range(len(UNIT_MS))), st.integers(0, 99)), min_size=1, max_size=8),
    st.sampled_from(["", " "]),
)
def test_parse_time_round_trip(parts, sep):
    chosen = sorted(dict(parts).items())
    text = sep.join(f"{value}{UNIT_MS[i][0]}" for i, value in chosen)
    expected_ms = sum(value * UNIT_MS[i][1] for i, value in chosen)
    if expected_ms > (2**31 - 1) * 1000:
        with pytest.raises(ValueError):
            parse_time(text)
    else:
        assert parse_time(text) == expected_ms / 1000


@given(st.integers(0, 10**6))
def test_bare_number_is_seconds(n):
    assert parse_time(str(n)) == n


@pytest.mark.parametrize(
    "text, size",
    [("0", 0), ("1024", 1024), ("8k", 8192), ("8K", 8192), ("1m", 1048576), ("2M", 2097152),
     ("1g", 1073741824), ("1G", 1073741824)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "k", "1kb", "1.5m", "-1", "1t", " 1"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match=r'invalid size value "'):
        parse_size(text)


@given(st.integers(0, 10**9), st.sampled_from([("", 1), ("k", 1024), ("M", 1024**2), ("g", 1024**3)]))
def test_parse_size_round_trip(n, unit):
    suffix, scale = unit
    assert parse_size(f"{n}{suffix}") == n * scale
