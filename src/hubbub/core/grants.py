"""Who a connection is and what it may do in which room: the permission model, no I/O.

A connection token (JWT) is verified by the server (`hubbub.server.security`); its claims
become an `Identity` here: the subject, the nickname it binds, its expiry and its `Grants`,
parsed from the `rooms` claim:

    {"rooms": {"lobby": ["read", "publish", "presence"], "team-*": ["read"]}}

Keys are room names or patterns where `*` stands for any run of characters. An exact name
decides on its own; otherwise the actions of every matching pattern add up; a room no key
matches allows nothing. A token without `rooms` allows everything. The WebSocket hub and the
HTTP API both ask `Session.allow` / `check`, so the same rule holds on both.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hubbub.core.codes import ErrorCode
from hubbub.core.names import NICK_RULE, ROOM_RULE, clean_nick, clean_room
from hubbub.core.protocol import ProtocolError

MAX_GRANTS = 256
"""Most keys a `rooms` claim may have."""

_PATTERN = re.compile(r"[\w.:@*-]{1,64}")


class Action(enum.StrEnum):
    READ = "read"
    """Join the room (its messages, presence events and member list at join) and read its
    history, over WebSocket or HTTP."""
    PUBLISH = "publish"
    """Publish to the room."""
    PRESENCE = "presence"
    """Ask for the room's member list (`members`, `GET /api/rooms/{room}/members`)."""


_ACTIONS = frozenset(action.value for action in Action)


class GrantError(ValueError):
    """Claims that cannot become an identity; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Grants:
    """What a token allows in which room; `ALL` when it says nothing about rooms."""

    exact: Mapping[str, frozenset[Action]] = field(default_factory=dict)
    patterns: tuple[tuple[tuple[str, ...], frozenset[Action]], ...] = ()
    """Each pattern as its parts between the `*`s (`team-*` is `("team-", "")`)."""
    unrestricted: bool = False

    def allows(self, action: Action, room: str) -> bool:
        if self.unrestricted:
            return True
        allowed = self.exact.get(room)
        if allowed is None:
            return any(action in actions and _glob(parts, room)
                       for parts, actions in self.patterns)
        return action in allowed


def _glob(parts: tuple[str, ...], name: str) -> bool:
    """Whether `name` matches the pattern `"*".join(parts)`, `*` being any run of characters.

    Greedy and linear (each part is found leftmost after the previous one), unlike a regex
    of `.*`s, which a pattern with many stars could make backtrack for a long time.
    """
    first, *middle, last = parts
    if len(name) < len(first) + len(last) or not name.startswith(first) \
            or not name.endswith(last):
        return False
    at, end = len(first), len(name) - len(last)
    for part in middle:
        found = name.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


ALL = Grants(unrestricted=True)


def parse_grants(claim: object) -> Grants:
    """The `rooms` claim as `Grants` (`ALL` when absent), or `GrantError`."""
    if claim is None:
        return ALL
    shape = ('rooms must be an object like {"lobby": ["read", "publish"], "team-*": ["read"]}'
             f" with the actions {', '.join(Action)}")
    if not isinstance(claim, dict):
        raise GrantError(shape)
    if len(claim) > MAX_GRANTS:
        raise GrantError(f"rooms may name at most {MAX_GRANTS} rooms or patterns")
    exact: dict[str, frozenset[Action]] = {}
    patterns: list[tuple[tuple[str, ...], frozenset[Action]]] = []
    for key, value in claim.items():
        if not isinstance(value, list) or not all(
                isinstance(item, str) and item in _ACTIONS for item in value):
            raise GrantError(f"rooms[{key!r}]: {shape}")
        actions = frozenset(Action(item) for item in value)
        if "*" in key:
            text = unicodedata.normalize("NFKC", key)
            if _PATTERN.fullmatch(text) is None:
                raise GrantError(f"rooms: {key!r} is not a room pattern ({ROOM_RULE}, or *)")
            patterns.append((tuple(text.split("*")), actions))
        else:
            room = clean_room(key)
            if room is None:
                raise GrantError(f"rooms: {key!r} is not a room name ({ROOM_RULE})")
            exact[room] = exact.get(room, frozenset()) | actions
    return Grants(exact, tuple(patterns))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection (or an HTTP request) is, as its token says."""

    subject: str | None
    nick: str | None
    """The nickname the token binds; None when it names none (a guest name is used)."""
    grants: Grants = ALL
    expires: float | None = None
    """The token's `exp`, seconds since the Unix epoch."""


def identity_from_claims(claims: Mapping[str, object]) -> Identity:
    """An `Identity` from verified JWT claims, or `GrantError`.

    `exp`, `nbf` and `iat` must be numbers (PyJWT itself accepts a numeric string). The
    nickname is the `nick` claim, else `name`, else the subject when that is a valid
    nickname; a claim that is present must be a valid nickname.
    """
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise GrantError(f"{name} must be a number of seconds since the Unix epoch")
    subject = claims.get("sub")
    if subject is not None and not isinstance(subject, str):
        raise GrantError("sub must be a string")
    nick: str | None = None
    for name in ("nick", "name"):
        value = claims.get(name)
        if value is not None:
            nick = clean_nick(value)
            if nick is None:
                raise GrantError(f"the token's {name} is not a valid nickname: {NICK_RULE}")
            break
    else:
        nick = clean_nick(subject) if subject is not None else None
    exp = claims.get("exp")
    expires = float(exp) if isinstance(exp, int | float) else None
    return Identity(subject, nick, parse_grants(claims.get("rooms")), expires)


def forbidden(reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.FORBIDDEN, reason)


class Session:
    """A connection's identity, replaced by `refresh`; `verify` turns a token into one (or
    raises `ProtocolError`); `on_refresh`, if set, is told of each new identity (the
    server moves its expiry timer)."""

    __slots__ = ("identity", "on_refresh", "verify")

    def __init__(self, identity: Identity, verify: Callable[[str], Identity]) -> None:
        self.identity = identity
        self.verify = verify
        self.on_refresh: Callable[[Identity], None] | None = None

    def allow(self, action: Action, room: str) -> None:
        if not self.identity.grants.allows(action, room):
            raise forbidden(f"the connection's token does not allow {action} in {room!r}")

    def refresh(self, token: str) -> Identity:
        new = self.verify(token)
        if new.subject != self.identity.subject:
            raise forbidden("a refreshed token must have the same subject (sub)")
        if new.nick != self.identity.nick:
            raise forbidden("a refreshed token must name the same nickname; reconnect to "
                            "change it")
        self.identity = new
        if self.on_refresh is not None:
            self.on_refresh(new)
        return new


def check(session: Session | None, action: Action, rooms: Iterable[str]) -> None:
    """Raise `ProtocolError(forbidden)` unless `session` may do `action` in every room.
    A connection without a session (no token needed, or the API key) may do anything."""
    if session is not None:
        for room in rooms:
            session.allow(action, room)


def visible(who: Session | Identity | None,
            rooms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of a room list (`{"room": name, ...}`) for rooms the token allows any
    action in: a token limited to some rooms does not learn the names of the others."""
    identity = who.identity if isinstance(who, Session) else who
    if identity is None or identity.grants.unrestricted:
        return rooms
    grants = identity.grants
    return [entry for entry in rooms
            if any(grants.allows(action, entry["room"]) for action in Action)]


def check_nick(session: Session | None) -> None:
    """A connection opened with a token keeps the token's nickname."""
    if session is not None:
        raise forbidden("the nickname comes from the connection's token and cannot be changed")
