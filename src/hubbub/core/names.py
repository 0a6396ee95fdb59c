"""Rules for room names and nicknames."""

from __future__ import annotations

import re
import secrets

MAX_ROOM_CHARS = 64
MAX_NICK_CHARS = 32

# \w is Unicode-aware for str patterns: letters and digits of any script, and "_".
_ROOM = re.compile(r"[\w.:@-]{1,64}")
_NICK_WORD = r"[\w.'-]+"
_NICK = re.compile(rf"{_NICK_WORD}(?: {_NICK_WORD})*")

ROOM_RULE = "room names are 1-64 letters, digits, or _ - . : @"
NICK_RULE = (
    "nicknames are 1-32 letters, digits, or _ - . ' with single spaces between words"
)


def is_valid_room(name: object) -> bool:
    return isinstance(name, str) and _ROOM.fullmatch(name) is not None


def is_valid_nick(nick: object) -> bool:
    return (
        isinstance(nick, str)
        and len(nick) <= MAX_NICK_CHARS
        and _NICK.fullmatch(nick) is not None
    )


def guest_name() -> str:
    return f"guest-{secrets.token_hex(2)}"
