"""core.variables' ``$http_*``: read through the head's index where the name allows, the same as a scan."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.core.test_variables import make_vars

_NAMES = st.sampled_from([b"Upgrade", b"upgrade", b"UPGRADE", b"X-A", b"x_a", b"X_A", b"Cookie", b"cookie", b"Host"])
_HEADERS = st.lists(st.tuples(_NAMES, st.binary(max_size=6).map(lambda b: b.replace(b"\r", b""))), max_size=6)


def _scan(headers: list[tuple[bytes, bytes]], key: str) -> str:
    values = [v.decode("latin-1") for n, v in headers if n.lower().replace(b"-", b"_") == key.encode()]
    return ("; " if key == "cookie" else ", ").join(values)


@given(_HEADERS, st.sampled_from(["upgrade", "x_a", "cookie", "host", "missing"]))
def test_a_header_variable_is_every_header_so_named_joined(headers: list[tuple[bytes, bytes]], key: str) -> None:
    assert make_vars(headers).get("http_" + key) == _scan(headers, key)
