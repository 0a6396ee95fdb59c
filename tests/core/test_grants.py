"""The permission model of connection tokens, without sockets (`hubbub.core.grants`)."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.core.codes import ErrorCode
from hubbub.core.grants import (
    ALL,
    Action,
    GrantError,
    Identity,
    Session,
    check,
    check_nick,
    identity_from_claims,
    parse_grants,
)
from hubbub.core.protocol import ProtocolError

READ, PUBLISH, PRESENCE = Action.READ, Action.PUBLISH, Action.PRESENCE


def test_exact_names_patterns_and_precedence() -> None:
    grants = parse_grants({"lobby": ["read", "publish"], "team-*": ["read"],
                           "*-ops": ["presence"], "team-secret": []})
    assert grants.allows(READ, "lobby") and grants.allows(PUBLISH, "lobby")
    assert not grants.allows(PRESENCE, "lobby")
    assert grants.allows(READ, "team-a") and not grants.allows(PUBLISH, "team-a")
    # Matching patterns add up; an exact name decides alone.
    assert grants.allows(READ, "team-ops") and grants.allows(PRESENCE, "team-ops")
    assert not grants.allows(READ, "team-secret")
    assert not grants.allows(READ, "other")
    assert not grants.allows(READ, "xteam-a")  # patterns match the whole name


def test_no_rooms_claim_allows_everything() -> None:
    assert parse_grants(None) is ALL
    assert all(ALL.allows(action, "any") for action in Action)
    assert parse_grants({}).allows(READ, "lobby") is False


def test_pattern_metacharacters_are_literal() -> None:
    grants = parse_grants({"a.b*": ["read"]})
    assert grants.allows(READ, "a.bc") and not grants.allows(READ, "axbc")


@pytest.mark.parametrize("claim", [
    ["lobby"], "lobby", {"lobby": "read"}, {"lobby": ["write"]}, {"lobby": [1]},
    {"a/b": ["read"]}, {"": ["read"]}, {"a b*": ["read"]}, {f"r{i}": [] for i in range(257)},
])
def test_malformed_claims(claim: object) -> None:
    with pytest.raises(GrantError):
        parse_grants(claim)


def test_names_in_the_claim_are_normalised_like_room_names() -> None:
    assert parse_grants({"\uff4c\uff4f\uff42\uff42\uff59": ["read"]}).allows(READ, "lobby")


@pytest.mark.parametrize("claims", [
    {"exp": "1700000000"}, {"exp": True}, {"iat": "0"}, {"nbf": [1]}, {"sub": 5},
    {"nick": "server"}, {"nick": "a\u200bb"}, {"name": 3}, {"rooms": {"x": ["fly"]}},
])
def test_identity_refuses_malformed_claims(claims: dict[str, object]) -> None:
    with pytest.raises(GrantError):
        identity_from_claims(claims)


def test_identity_nick_from_nick_name_or_subject() -> None:
    assert identity_from_claims({"sub": "s", "nick": "a", "name": "b"}).nick == "a"
    assert identity_from_claims({"sub": "s", "name": "b"}).nick == "b"
    assert identity_from_claims({"sub": "s"}).nick == "s"
    assert identity_from_claims({"sub": "not valid!"}).nick is None
    assert identity_from_claims({"exp": 5}).expires == 5.0


def test_session_checks_and_refresh() -> None:
    tokens = {
        "narrow": Identity("u1", "al", parse_grants({"lobby": ["read"]}), 10.0),
        "other": Identity("u2", "al"),
        "renamed": Identity("u1", "bo"),
    }
    seen: list[Identity] = []
    session = Session(Identity("u1", "al"), tokens.__getitem__)
    session.on_refresh = seen.append
    check(session, PUBLISH, ["lobby", "x"])
    assert session.refresh("narrow") is tokens["narrow"] and seen == [tokens["narrow"]]
    check(session, READ, ["lobby"])
    for action, room in [(PUBLISH, "lobby"), (READ, "x")]:
        with pytest.raises(ProtocolError) as refused:
            check(session, action, [room])
        assert refused.value.code is ErrorCode.FORBIDDEN
    for name in ("other", "renamed"):
        with pytest.raises(ProtocolError):
            session.refresh(name)
    assert session.identity is tokens["narrow"]
    with pytest.raises(ProtocolError):
        check_nick(session)
    check(None, PUBLISH, ["anything"])
    check_nick(None)


@given(st.dictionaries(st.sampled_from(["lobby", "a-*", "*", "a-b", "*-b"]),
                       st.lists(st.sampled_from(list(Action))), max_size=5),
       st.sampled_from(["lobby", "a-b", "a-c", "c-b", "zz"]), st.sampled_from(list(Action)))
def test_an_exact_entry_decides_else_patterns_add_up(
        claim: dict[str, list[Action]], room: str, action: Action) -> None:
    grants = parse_grants({key: [a.value for a in value] for key, value in claim.items()})
    if room in claim:
        expected = action in claim[room]
    else:
        expected = any(action in actions for key, actions in claim.items()
                       if "*" in key and fnmatch.fnmatchcase(room, key))
    assert grants.allows(action, room) == expected


@given(st.text(alphabet="ab*", min_size=1, max_size=8), st.text(alphabet="ab", max_size=10))
def test_patterns_match_like_shell_globs(pattern: str, room: str) -> None:
    grants = parse_grants({pattern + "*x": ["read"]})  # a "*" makes it a pattern
    assert grants.allows(READ, room + "x") == fnmatch.fnmatchcase(room + "x", pattern + "*x")


def test_many_stars_stay_fast_to_match() -> None:
    grants = parse_grants({"*a" * 32: ["read"]})
    assert not grants.allows(READ, "a" * 63 + "b")
    assert grants.allows(READ, "a" * 64)
