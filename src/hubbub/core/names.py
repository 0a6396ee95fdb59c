"""Rules for room names and nicknames: the one place that decides what a name may be.

A name is first normalised to Unicode NFKC (so fullwidth `\uff4c\uff4f\uff42\uff42\uff59` is
`lobby` and a decomposed `e\u0301` is one character), then refused if it holds an invisible or
default-ignorable character, or mixes Latin, Cyrillic and Greek letters within one word
(`\u0430dmin` with a Cyrillic `\u0430`); a nickname is also refused if it is the name the
server itself publishes under (`server`, in any case). Names wholly in one script that look
like a name in another (all-Cyrillic `\u0430\u0441\u0435` for `ace`) are not detected.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from functools import lru_cache

MAX_ROOM_CHARS = 64
MAX_NICK_CHARS = 32

SERVER_NICK = "server"
"""The `from` of messages the server publishes itself (HTTP API without `from`)."""

RESERVED_NICKS = frozenset({SERVER_NICK})
"""Nicknames nobody may take, compared case-insensitively (`str.casefold`)."""

# \w is Unicode-aware for str patterns: letters and digits of any script, and "_".
_ROOM = re.compile(rf"[\w.:@-]{{1,{MAX_ROOM_CHARS}}}")
_NICK_WORD = r"[\w.'-]+"
_NICK = re.compile(rf"{_NICK_WORD}(?: {_NICK_WORD})*")

ROOM_RULE = (
    f"room names are 1-{MAX_ROOM_CHARS} letters, digits, or _ - . : @, without invisible"
    " characters "
    "or Latin, Cyrillic and Greek letters mixed"
)
NICK_RULE = (
    "nicknames are 1-32 letters, digits, or _ - . ' with single spaces between words, "
    "without invisible characters or Latin, Cyrillic and Greek letters mixed in a word; "
    f"{SERVER_NICK!r} is reserved"
)

# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt), which Python's
# unicodedata does not expose: characters that render as nothing. The Hangul fillers
# (U+115F, U+1160, U+3164, U+FFA0) are letters to `\w`, so they need this list.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_CONFUSABLE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def is_invisible(char: str) -> bool:
    """A default-ignorable code point, or a control, format, private-use, surrogate or
    unassigned one."""
    code = ord(char)
    if any(low <= code <= high for low, high in _DEFAULT_IGNORABLE):
        return True
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES


@lru_cache(maxsize=4096)
def _script(char: str) -> str | None:
    """LATIN, CYRILLIC or GREEK for a letter of one of those scripts, else None."""
    if char.isascii():
        return "LATIN" if char.isalpha() else None
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    for script in _CONFUSABLE_SCRIPTS:
        if name.startswith(script + " "):
            return script
    return None


def mixes_scripts(word: str) -> bool:
    """True when `word` has letters from more than one of Latin, Cyrillic and Greek."""
    seen = None
    for char in word:
        script = _script(char)
        if script is None:
            continue
        if seen is None:
            seen = script
        elif script != seen:
            return True
    return False


def _clean(value: object, max_chars: int) -> str | None:
    """The NFKC form of `value` if it can be a name at all (length, invisibles, scripts)."""
    if not isinstance(value, str) or len(value) > 4 * max_chars:
        return None
    if value.isascii():
        # The common case, on every publish: ASCII is its own NFKC form, holds no
        # default-ignorable character and only Latin letters; controls fail the patterns.
        return value if 0 < len(value) <= max_chars else None
    name = unicodedata.normalize("NFKC", value)
    if not 0 < len(name) <= max_chars or any(is_invisible(char) for char in name):
        return None
    if any(mixes_scripts(word) for word in name.split(" ")):
        return None
    return name


def clean_room(name: object) -> str | None:
    """The room name to use for `name` (its NFKC form), or None if it breaks the rules."""
    room = _clean(name, MAX_ROOM_CHARS)
    if room is None or _ROOM.fullmatch(room) is None:
        return None
    return room


def clean_nick(nick: object) -> str | None:
    """The nickname to use for `nick` (its NFKC form), or None if it breaks the rules."""
    name = _clean(nick, MAX_NICK_CHARS)
    if name is None or _NICK.fullmatch(name) is None or is_reserved_nick(name):
        return None
    return name


def is_reserved_nick(nick: str) -> bool:
    return unicodedata.normalize("NFKC", nick).casefold() in RESERVED_NICKS


def is_valid_room(name: object) -> bool:
    return clean_room(name) is not None


def is_valid_nick(nick: object) -> bool:
    return clean_nick(nick) is not None


def guest_name() -> str:
    return f"guest-{secrets.token_hex(2)}"
