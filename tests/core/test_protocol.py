from __future__ import annotations

import pytest

from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.limits import Limits

LIMITS = Limits()


def parse(frame: str) -> p.Request:
    return p.parse_request(frame, LIMITS)


def refused(frame: str) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        parse(frame)
    return info.value


def test_join_accepts_names_and_objects() -> None:
    request = parse(
        '{"type":"join","ref":"j","rooms":["a",{"room":"b","since":{"offset":3,"epoch":"e"}},'
        '{"room":"c","history":5}]}'
    )
    assert request == p.Join(
        (
            p.JoinSpec("a"),
            p.JoinSpec("b", since=p.Position(3, "e")),
            p.JoinSpec("c", history=5),
        ),
        "j",
    )


def test_publish_text_and_data() -> None:
    assert parse('{"type":"publish","room":"r","text":"hi","data":{"k":[1]},"ref":7}') == (
        p.Publish("r", "hi", {"k": [1]}, 7)
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", ErrorCode.BAD_JSON),
        ("[1,2]", ErrorCode.BAD_JSON),
        ('"join"', ErrorCode.BAD_JSON),
        ("{}", ErrorCode.UNKNOWN_TYPE),
        ('{"type":"shout"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":7}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"join"}', ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":[]}', ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":"a"}', ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":[5]}', ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":["a","a"]}', ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":[""]}', ErrorCode.INVALID_ROOM),
        ('{"type":"join","rooms":["a b"]}', ErrorCode.INVALID_ROOM),
        ('{"type":"join","rooms":["a\\u0000b"]}', ErrorCode.INVALID_ROOM),
        ('{"type":"join","rooms":["' + "x" * 65 + '"]}', ErrorCode.INVALID_ROOM),
        ('{"type":"join","rooms":[{"room":"a","since":{"offset":-1,"epoch":"e"}}]}',
         ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":[{"room":"a","since":{"offset":1.5,"epoch":"e"}}]}',
         ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":[{"room":"a","since":{"offset":1}}]}', ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":[{"room":"a","history":0}]}', ErrorCode.BAD_REQUEST),
        ('{"type":"join","rooms":[{"room":"a","history":1,"since":{"offset":1,"epoch":"e"}}]}',
         ErrorCode.BAD_REQUEST),
        ('{"type":"publish","room":"a"}', ErrorCode.BAD_REQUEST),
        ('{"type":"publish","room":"a","text":5}', ErrorCode.BAD_REQUEST),
        ('{"type":"publish","room":"a","text":"' + "x" * 8193 + '"}', ErrorCode.MESSAGE_TOO_LARGE),
        ('{"type":"nick","nick":""}', ErrorCode.INVALID_NICK),
        ('{"type":"nick","nick":" lead"}', ErrorCode.INVALID_NICK),
        ('{"type":"nick","nick":"a\\tb"}', ErrorCode.INVALID_NICK),
        ('{"type":"nick","nick":"' + "n" * 33 + '"}', ErrorCode.INVALID_NICK),
        ('{"type":"nick","nick":null}', ErrorCode.BAD_REQUEST),
        ('{"type":"history","room":"a","limit":0}', ErrorCode.BAD_REQUEST),
        ('{"type":"history","room":"a","limit":"5"}', ErrorCode.BAD_REQUEST),
        ('{"type":"history","room":"a","limit":101}', ErrorCode.BAD_REQUEST),
        ('{"type":"history","room":"a","before":-1}', ErrorCode.BAD_REQUEST),
        ('{"type":"history","room":"a","after":true}', ErrorCode.BAD_REQUEST),
        ('{"type":"ping","ref":{}}', ErrorCode.BAD_REQUEST),
        ('{"type":"ping","ref":true}', ErrorCode.BAD_REQUEST),
        ('{"type":"ping","ref":"' + "r" * 65 + '"}', ErrorCode.BAD_REQUEST),
    ],
)
def test_bad_requests_are_refused_with_a_code(frame: str, code: ErrorCode) -> None:
    assert refused(frame).code is code


def test_error_carries_the_requests_ref() -> None:
    assert refused('{"type":"join","rooms":[""],"ref":"mine"}').ref == "mine"


def test_unicode_room_and_nick_names_are_allowed() -> None:
    assert parse('{"type":"join","rooms":["café-日本"]}') == p.Join((p.JoinSpec("café-日本"),))
    assert parse('{"type":"nick","nick":"Zoë O\'Neil"}') == p.Nick("Zoë O'Neil")
