"""The bench message format: round trips, prefixes, and text that must not parse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.loadgen import payload


@given(seq=st.integers(0, 10**10 - 1), sent=st.integers(0, 10**19 - 1),
       size=st.integers(payload.MIN_SIZE, 4096))
def test_round_trip_has_the_exact_size(seq: int, sent: int, size: int) -> None:
    text = payload.make(seq, sent, size)
    assert len(text.encode()) == size
    assert payload.parse(text.encode()) == (seq, sent)


@pytest.mark.parametrize("prefix", ["", "0: ", "guest-3f2a: ", "bob: ", "bench: ", "名前: "])
def test_parse_skips_a_relay_prefix(prefix: str) -> None:
    text = prefix + payload.make(42, 123456789, 64)
    assert payload.parse(text.encode()) == (42, 123456789)


@pytest.mark.parametrize("text", [
    b"", b"hello", b"error: rate limited", b"bench ", b"bench 12 34 ",
    b"bench 00000000x1 0000000000000000001 ",
    b"bench 0000000001 000000000000000000- ",
    payload.make(1, 2, 64).encode()[:30],
    b"\xff\xfe bench",
])
def test_parse_rejects_other_text(text: bytes) -> None:
    assert payload.parse(text) is None
