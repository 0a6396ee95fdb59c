"""Integers in frames: exact within 64 bits, refused beyond (issue 10, item 11)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.limits import Limits


def publish(data: object) -> str:
    return json.dumps({"type": "publish", "room": "r", "data": data, "ref": 1})


@given(st.integers(min_value=p.INT_MIN, max_value=p.INT_MAX))
def test_integers_within_64_bits_parse_exactly(number: int) -> None:
    request = p.parse_request(publish([number, {"k": number}]), Limits())
    assert isinstance(request, p.Publish) and request.data == [number, {"k": number}]
    assert isinstance(request.data[0], int)


@given(st.integers(min_value=p.INT_MAX + 1) | st.integers(max_value=p.INT_MIN - 1))
def test_larger_integers_are_refused_with_the_ref(number: int) -> None:
    for frame in (publish({"deep": [[number]]}), publish(number).encode()):
        with pytest.raises(p.ProtocolError) as refused:
            p.parse_request(frame, Limits())
        assert refused.value.code is ErrorCode.BAD_REQUEST and refused.value.ref == 1


def test_long_digit_runs_in_strings_and_floats_are_not_integers() -> None:
    frame = publish({"s": "1" * 30, "f": 1.8446744073709552e19, "g": 12345678901234567890.5})
    request = p.parse_request(frame, Limits())
    assert isinstance(request, p.Publish) and request.data["s"] == "1" * 30
