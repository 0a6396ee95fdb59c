"""Whatever a client sends, parsing either yields a request or a `ProtocolError`."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.core import protocol as p
from hubbub.core.limits import Limits

LIMITS = Limits()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
request_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*p._PARSERS, "nope"])},
    optional={
        "ref": json_values,
        "room": st.text(max_size=70) | json_values,
        "rooms": st.lists(st.text(max_size=70) | json_values, max_size=4) | json_values,
        "text": st.text() | json_values,
        "data": json_values,
        "nick": st.text(max_size=40) | json_values,
        "limit": st.integers() | json_values,
        "before": st.integers() | json_values,
        "after": st.integers() | json_values,
    },
)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parser(frame: bytes) -> None:
    with contextlib.suppress(p.ProtocolError):
        p.parse_request(frame, LIMITS)


@settings(max_examples=400)
@given(request_like)
def test_request_shaped_objects_parse_or_are_refused(obj: dict[str, object]) -> None:
    try:
        request = p.parse_request(json.dumps(obj), LIMITS)
    except p.ProtocolError as exc:
        assert exc.reason
        return
    # Whatever got through has the documented types.
    if isinstance(request, p.Publish):
        assert request.text is None or isinstance(request.text, str)
        assert request.text is not None or request.data is not None
    if isinstance(request, p.History):
        assert 1 <= request.limit <= LIMITS.history_page_max


@given(st.text(min_size=1, max_size=2000))
def test_any_text_up_to_the_limit_is_publishable(text: str) -> None:
    frame = json.dumps({"type": "publish", "room": "r", "text": text})
    try:
        request = p.parse_request(frame, LIMITS)
    except p.ProtocolError as exc:
        assert len(text.encode("utf-8", "surrogatepass")) > LIMITS.max_text_bytes, exc
    else:
        assert isinstance(request, p.Publish)
        assert request.text == text
