"""wire.request: the token helpers every head look-up goes through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wstunnel.wire.request import RequestHead, header_tokens, lower_tokens

_VALUES = st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=4)


@given(_VALUES)
def test_lower_tokens_are_header_tokens_lower_cased(values: list[bytes]) -> None:
    assert lower_tokens(values) == {token.lower() for token in header_tokens(values)}


def test_lower_tokens_of_a_generator_and_of_blanks() -> None:
    assert lower_tokens(v for v in [b"Keep-Alive, Upgrade", b" ,\t, close"]) == {b"keep-alive", b"upgrade", b"close"}
    assert lower_tokens([]) == set() and lower_tokens([b" , "]) == set()


def test_values_after_the_index_is_dropped_are_the_same() -> None:
    head = RequestHead(b"GET", b"/", b"1.1", ((b"Upgrade", b"a"), (b"upgrade", b"b"), (b"Host", b"h")))
    indexed = head.values(b"upgrade")
    head.drop_index()
    assert head.values(b"upgrade") == indexed == [b"a", b"b"]
