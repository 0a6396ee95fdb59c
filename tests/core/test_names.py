"""Nickname and room-name rules against look-alike and invisible names (issue 10, item 10)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.core.names import (
    SERVER_NICK,
    clean_nick,
    clean_room,
    is_invisible,
    is_valid_nick,
    mixes_scripts,
)

CYRILLIC_A = "\u0430"
FILLERS = ["\u115f", "\u1160", "\u3164", "\uffa0"]
INVISIBLE = [*FILLERS, "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\ue000",
             "\U000e0041", "\u034f"]


@pytest.mark.parametrize("nick", [
    CYRILLIC_A + "dmin",                     # a Cyrillic a among Latin letters
    "p\u0430ypal", "\u03bfk",                # a Cyrillic a; a Greek omicron
    *FILLERS, "a" + "\u3164", "\u3164" * 3,
    "ali\u200bce", "ali\u200dce", "bob\ufeff",
    "server", "Server", "SERVER", "\uff53\uff45\uff52\uff56\uff45\uff52",  # fullwidth
    "\u017ferver",                            # long s: NFKC makes it "server"
])
def test_look_alike_invisible_and_reserved_nicks_are_refused(nick: str) -> None:
    assert clean_nick(nick) is None


@pytest.mark.parametrize(("given_name", "expected"), [
    ("alice", "alice"), ("e\u0301mile", "\u00e9mile"), ("\uff41\uff4c\uff49", "ali"),
    ("\u0418\u0432\u0430\u043d Smith", "\u0418\u0432\u0430\u043d Smith"),  # one script a word
    ("\u65e5\u672c", "\u65e5\u672c"),
    ("\u0391\u03b8\u03b7\u03bd\u03ac", "\u0391\u03b8\u03b7\u03bd\u03ac"),
    ("servers", "servers"), ("server-bot", "server-bot"),
])
def test_good_nicks_are_normalised(given_name: str, expected: str) -> None:
    assert clean_nick(given_name) == expected


def test_rooms_follow_the_same_rules() -> None:
    assert clean_room("\uff4c\uff4f\uff42\uff42\uff59") == "lobby"
    assert clean_room("l" + CYRILLIC_A + "bby") is None
    assert clean_room("lob\u3164by") is None
    assert clean_room("server") == "server"  # only the nickname is reserved


def test_every_listed_invisible_is_invisible() -> None:
    assert all(is_invisible(char) for char in INVISIBLE)
    assert not any(is_invisible(char) for char in "aZ9_-.\u00e9\u65e5\u0430")


@given(st.text(max_size=40))
def test_a_clean_nick_is_stable_visible_single_script_and_not_reserved(text: str) -> None:
    nick = clean_nick(text)
    if nick is None:
        return
    assert clean_nick(nick) == nick
    assert unicodedata.normalize("NFKC", nick) == nick
    assert not any(is_invisible(char) for char in nick)
    assert not any(mixes_scripts(word) for word in nick.split(" "))
    assert nick.casefold() != SERVER_NICK
    assert 1 <= len(nick) <= 32


@given(st.text(max_size=80))
def test_a_clean_room_is_stable(text: str) -> None:
    room = clean_room(text)
    if room is not None:
        assert clean_room(room) == room and not any(is_invisible(c) for c in room)


@given(st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1,
               max_size=32))
def test_ascii_letters_and_digits_stay_valid(nick: str) -> None:
    assert is_valid_nick(nick) == (nick.casefold() != SERVER_NICK)
