"""The client's sans-I/O session: frames in, events and resolved requests out, no sockets.

The property tests replay random histories of one client against an in-memory model of the
server's promises (`docs/protocol.md`: a `joined` reply, then the replay after `since`, then
live messages), with connections dropped mid-stream, frames delivered twice, and rooms whose
history is lost (a new epoch, noticed at a rejoin or only from live messages), and check
exactly-once delivery message by message.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hubbub.client
from hubbub.client import (
    ConnectionLost,
    HubbubError,
    Member,
    Message,
    PresenceEvent,
    ProtocolViolation,
    Reconnected,
    RecoveryFailed,
    wire,
)
from hubbub.client.events import Event
from hubbub.client.session import Output, Position, Session

ME = "c1"


def frame(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def message(room: str, offset: int, epoch: str = "e1", sender: str | None = None) -> bytes:
    return frame({"type": "message", "room": room, "offset": offset, "epoch": epoch,
                  "id": f"{room}-{epoch}-{offset}", "from": "x", "sender": sender,
                  "text": f"m{offset}", "ts": 1})


def joined(ref: int | None, *rooms: tuple[str, int, str], recovered: bool = True,
           reason: str | None = None, members: list[dict[str, str]] | None = None) -> bytes:
    return frame({"type": "joined", "ref": ref, "rooms": [
        {"room": room, "offset": offset, "epoch": epoch, "recovered": recovered,
         "reason": reason, "members": members or []}
        for room, offset, epoch in rooms]})


def welcomed(connection_id: str = ME, nick: str = "ada") -> Session[str]:
    session: Session[str] = Session(nick="asked", token="t0")
    session.connected(wire.Welcome(connection_id, nick, {"history_page_max": 100}))
    return session


def join(session: Session[str], *rooms: tuple[str, int, str],
         members: list[dict[str, str]] | None = None) -> Output[str]:
    ref, _ = session.send(wire.join_request(room for room, _, _ in rooms), "join")
    return session.receive(joined(ref, *rooms, members=members))


def test_welcome_sets_identity_and_limits() -> None:
    session = welcomed(nick="guest-1")
    assert (session.connection_id, session.nick, session.limits, session.token) == (
        ME, "guest-1", {"history_page_max": 100}, "t0")
    assert session.rooms == () and session.rejoin_request() is None


def test_join_reply_resolves_its_waiter_and_records_rooms() -> None:
    session = welcomed()
    ref, text = session.send(wire.join_request(["a", "b"]), "the join")
    assert orjson.loads(text) == {"type": "join", "rooms": ["a", "b"], "ref": ref}
    out = session.receive(joined(ref, ("a", 4, "e1"), ("b", 0, "e2"),
                                 members=[{"id": ME, "nick": "ada"}]))
    assert out.events == []
    assert out.resolved is not None
    assert (out.resolved.waiter, out.resolved.result, out.resolved.error) == (
        "the join", ("a", "b"), None)
    assert session.rooms == ("a", "b")
    assert session.position("a") == Position(4, "e1")
    assert session.presence("b") == (Member(ME, "ada"),)
    assert session.rejoin_request() == wire.rejoin_request([("a", 4, "e1"), ("b", 0, "e2")])


def test_messages_at_or_below_the_position_and_of_other_rooms_are_dropped() -> None:
    session = welcomed()
    join(session, ("a", 2, "e1"))
    offsets = []
    for text in (message("a", 2), message("a", 3), message("a", 3), message("a", 1),
                 message("b", 9), message("a", 4)):
        for event in session.receive(text).events:
            assert isinstance(event, Message)
            offsets.append((event.room, event.offset))
    assert offsets == [("a", 3), ("a", 4)]
    assert session.position("a") == Position(4, "e1")
    assert session.position("b") is None


def test_a_new_epoch_resets_the_position() -> None:
    session = welcomed()
    join(session, ("a", 5, "e1"))
    [first] = session.receive(message("a", 1, epoch="e2")).events
    assert isinstance(first, Message) and (first.offset, first.epoch) == (1, "e2")
    assert session.receive(message("a", 1, epoch="e2")).events == []
    assert session.position("a") == Position(1, "e2")


def test_own_messages_are_recognised_across_connections() -> None:
    session = welcomed("c1")
    join(session, ("a", 0, "e1"))
    session.connected(wire.Welcome("c2", "ada", {}))
    events = [*session.receive(message("a", 1, sender="c1")).events,
              *session.receive(message("a", 2, sender="c2")).events,
              *session.receive(message("a", 3, sender="someone")).events]
    assert [e.own for e in events if isinstance(e, Message)] == [True, True, False]


def test_presence_keeps_members_current() -> None:
    session = welcomed()
    join(session, ("a", 0, "e1"), members=[{"id": ME, "nick": "ada"}])

    def presence(event: str, member_id: str, nick: str, room: str = "a") -> list[Event]:
        return session.receive(frame({"type": "presence", "room": room, "event": event,
                                      "member": {"id": member_id, "nick": nick}})).events

    [event] = presence("join", "c2", "bob")
    assert event == PresenceEvent("a", "join", Member("c2", "bob"))
    presence("nick", "c2", "robert")
    assert session.presence("a") == (Member(ME, "ada"), Member("c2", "robert"))
    presence("leave", "c2", "robert")
    assert session.presence("a") == (Member(ME, "ada"),)
    assert presence("join", "c3", "eve", room="elsewhere") == []
    assert session.presence("elsewhere") == ()


def test_nick_reply_renames_this_client_in_every_room() -> None:
    session = welcomed()
    join(session, ("a", 0, "e1"), ("b", 0, "e1"),
         members=[{"id": ME, "nick": "ada"}, {"id": "c2", "nick": "bob"}])
    ref, _ = session.send(wire.nick_request("lovelace"), "nick")
    out = session.receive(frame({"type": "nick_set", "ref": ref, "nick": "lovelace"}))
    assert out.resolved is not None and out.resolved.result == "lovelace"
    assert session.nick == "lovelace"
    for room in ("a", "b"):
        assert session.presence(room) == (Member(ME, "lovelace"), Member("c2", "bob"))


def test_error_reply_fails_only_its_request() -> None:
    session = welcomed()
    first, _ = session.send(wire.join_request(["bad room"]), "first")
    second, _ = session.send(wire.ping_request(), "second")
    out = session.receive(frame({"type": "error", "ref": first, "code": "invalid_room",
                                 "reason": "no", "retry_after": None}))
    assert out.resolved is not None and out.resolved.waiter == "first"
    assert isinstance(out.resolved.error, HubbubError)
    assert out.resolved.error.code == "invalid_room"
    out = session.receive(frame({"type": "pong", "ref": second}))
    assert out.resolved is not None and (out.resolved.waiter, out.resolved.error) == (
        "second", None)


def test_malformed_reply_fails_its_request_but_a_malformed_message_breaks_the_session() -> None:
    session = welcomed()
    join(session, ("a", 0, "e1"))
    ref, _ = session.send(wire.publish_request("a", "hi", None), "publish")
    out = session.receive(frame({"type": "ack", "ref": ref, "room": "a", "offset": "1"}))
    assert out.resolved is not None and isinstance(out.resolved.error, ProtocolViolation)
    with pytest.raises(ProtocolViolation, match="'offset'"):
        session.receive(frame({"type": "message", "room": "a", "offset": True}))
    with pytest.raises(ProtocolViolation, match="not JSON"):
        session.receive(b"{nope")


def test_replies_nobody_waits_for() -> None:
    session = welcomed()
    ref, _ = session.send(wire.publish_request("a", "hi", None), "publish")
    session.forget(ref)  # the driver gave up waiting
    late_ack = frame({"type": "ack", "ref": ref, "room": "a", "id": "i", "offset": 1,
                      "epoch": "e1", "ts": 1})
    assert session.receive(late_ack) == Output()
    assert session.receive(frame({"type": "error", "code": "x", "reason": "y"})) == Output()
    # A late joined or left still happened on the server: the state follows it.
    session.receive(joined(99, ("late", 3, "e1")))
    assert session.position("late") == Position(3, "e1")
    session.receive(frame({"type": "left", "ref": 98, "rooms": ["late"]}))
    assert session.rooms == ()
    session.receive(frame({"type": "nick_set", "ref": 97, "nick": "zed"}))
    assert session.nick == "zed"


def test_fail_all_says_a_publish_may_have_been_stored() -> None:
    session = welcomed()
    session.send(wire.publish_request("a", "hi", None), "publish")
    session.send(wire.ping_request(), "ping")
    failed = session.fail_all(ConnectionLost("gone", close_code=1011))
    by_waiter = {r.waiter: r.error for r in failed}
    assert set(by_waiter) == {"publish", "ping"}
    assert isinstance(by_waiter["publish"], ConnectionLost)
    assert "may or may not have been stored" in str(by_waiter["publish"])
    assert by_waiter["publish"].close_code == 1011
    assert str(by_waiter["ping"]) == "gone"
    assert session.fail_all(ConnectionLost("again")) == []


def test_refresh_members_history_and_room_list_replies() -> None:
    session = welcomed()
    join(session, ("a", 0, "e1"), ("secret", 0, "e1"))
    ref, _ = session.send(wire.refresh_request("t1"), "refresh")
    out = session.receive(frame({"type": "refreshed", "ref": ref, "left": ["secret"]}))
    assert out.resolved is not None and out.resolved.result == ("secret",)
    assert (session.rooms, session.token) == (("a",), "t1")

    ref, _ = session.send(wire.members_request("a"), "members")
    out = session.receive(frame({"type": "members", "ref": ref, "room": "a",
                                 "members": [{"id": "c9", "nick": "zoe"}]}))
    assert out.resolved is not None and out.resolved.result == (Member("c9", "zoe"),)
    assert session.presence("a") == (Member("c9", "zoe"),)

    ref, _ = session.send(wire.history_request("a", limit=1, before=None, after=0), "history")
    entry = orjson.loads(message("a", 1, sender=ME))
    out = session.receive(frame({"type": "history", "ref": ref, "room": "a", "epoch": "e1",
                                 "offset": 1, "messages": [entry], "has_more": False}))
    assert out.resolved is not None
    [old] = out.resolved.result.messages
    assert old.own and session.position("a") == Position(0, "e1")  # history is not the stream

    ref, _ = session.send(wire.rooms_request(), "rooms")
    out = session.receive(frame({"type": "rooms", "ref": ref, "rooms": [
        {"room": "a", "members": 2, "offset": 1}]}))
    assert out.resolved is not None and out.resolved.result[0].members == 2


def test_rejoin_reports_recovered_counts_then_failures() -> None:
    session = welcomed()
    join(session, ("a", 3, "e1"), ("b", 7, "e1"))
    request = session.rejoin_request()
    assert request is not None
    ref, _ = session.send(request, "rejoin", rejoin_attempt=2)
    ok = frame({"type": "joined", "ref": ref, "rooms": [
        {"room": "a", "offset": 5, "epoch": "e1", "recovered": True, "members": []},
        {"room": "b", "offset": 1, "epoch": "e9", "recovered": False,
         "reason": "epoch_changed", "members": []}]})
    out = session.receive(ok)
    assert out.events == [Reconnected(2, {"a": 2}), RecoveryFailed("b", "epoch_changed")]
    assert session.position("a") == Position(3, "e1")  # the replay moves it, message by message
    assert session.position("b") == Position(1, "e9")


def runtime_imports(node: ast.AST) -> list[str]:
    """The modules `node` imports when it runs (type-only imports do no I/O)."""
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and (
            node.test.id == "TYPE_CHECKING"):
        return [module for child in node.orelse for module in runtime_imports(child)]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.module == "hubbub.client":  # `from hubbub.client import wire`
            return [f"hubbub.client.{alias.name}" for alias in node.names]
        return [node.module or ""]
    return [module for child in ast.iter_child_nodes(node) for module in runtime_imports(child)]


def test_the_session_layer_does_no_io() -> None:
    """session.py and the client modules it imports stay free of aiohttp and asyncio."""
    package = Path(hubbub.client.__file__).parent
    todo, seen = ["session"], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        for module in runtime_imports(ast.parse((package / f"{name}.py").read_text())):
            assert module.split(".")[0] not in ("aiohttp", "asyncio"), (name, module)
            sub = module.removeprefix("hubbub.client.")
            if module.startswith("hubbub.client.") and sub not in seen:
                todo.append(sub)
    assert {"session", "wire", "events", "errors"} <= seen


# -- exactly once, as a property -------------------------------------------------------

ROOMS = ("a", "b")

steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.sampled_from(ROOMS)),
        st.tuples(st.just("deliver"), st.integers(1, 6)),
        st.tuples(st.just("duplicate"), st.integers(0, 10_000)),
        st.tuples(st.just("drop"), st.just("")),
        st.tuples(st.just("reconnect"), st.just("")),
        st.tuples(st.just("lose_history"), st.sampled_from(ROOMS)),
        st.tuples(st.just("new_epoch_live"), st.sampled_from(ROOMS)),
    ),
    max_size=80,
)


class Model:
    """The server's rooms and one connection to them, in memory. The server keeps its
    promises; the network may cut a connection (frames in flight are lost) and may hand the
    client a message it already had, which the real server never does."""

    def __init__(self, published_before_join: dict[str, int]) -> None:
        self.epochs = dict.fromkeys(ROOMS, "e0")
        self.latest = dict(published_before_join)
        self.in_flight: deque[bytes] = deque()
        self.delivered: list[bytes] = []  # message frames, for duplicates
        self.connected = True
        self.attempts = 0
        self.ids = (f"c{n}" for n in itertools.count(2))
        self.session: Session[str] = Session(nick="ada")
        self.session.connected(wire.Welcome("c1", "ada", {}))
        self.events: list[Event] = []
        # Where each (room, epoch) stream starts for the client: the offset of its join.
        self.starts: dict[tuple[str, str], int] = {}
        self.reconnects: list[tuple[int, dict[str, int], list[str]]] = []
        ref, _ = self.session.send(wire.join_request(ROOMS), "join")
        self.feed(joined(ref, *((r, self.latest[r], "e0") for r in ROOMS)))
        for room in ROOMS:
            self.starts[(room, "e0")] = self.latest[room]

    def feed(self, text: bytes) -> Output[str]:
        out = self.session.receive(text)
        self.events.extend(out.events)
        return out

    def publish(self, room: str) -> None:
        self.latest[room] += 1
        if self.connected:
            self.in_flight.append(message(room, self.latest[room], self.epochs[room]))

    def deliver(self, count: int) -> None:
        for _ in range(min(count, len(self.in_flight))):
            text = self.in_flight.popleft()
            if orjson.loads(text)["type"] == "message":
                self.delivered.append(text)
            self.feed(text)

    def duplicate(self, pick: int) -> None:
        current = [t for t in self.delivered
                   if orjson.loads(t)["epoch"] == self.epochs[orjson.loads(t)["room"]]]
        if self.connected and current:
            self.feed(current[pick % len(current)])

    def drop(self) -> None:
        self.connected = False
        self.in_flight.clear()
        failed = self.session.fail_all(ConnectionLost("dropped"))
        if failed:  # the connection died before its rejoin was answered: no Reconnected
            assert [r.waiter for r in failed] == ["rejoin"]
            self.reconnects.pop()

    def lose_history(self, room: str) -> None:
        """The server restarts without the room's messages: a new epoch from offset 0."""
        self.drop()
        self._new_epoch(room)

    def new_epoch_live(self, room: str) -> None:
        """The room starts over while the client stays connected: it learns of the new epoch
        from the messages alone, with offsets below the position it had."""
        self.starts[(room, self._new_epoch(room))] = 0

    def _new_epoch(self, room: str) -> str:
        self.epochs[room] = f"e{int(self.epochs[room][1:]) + 1}"
        self.latest[room] = 0
        return self.epochs[room]

    def reconnect(self) -> None:
        if self.connected:
            return
        self.connected = True
        self.attempts += 1
        self.session.connected(wire.Welcome(next(self.ids), "ada", {}))
        request = self.session.rejoin_request()
        assert request is not None
        ref, text = self.session.send(request, "rejoin", rejoin_attempt=self.attempts)
        entries, replay, replayed, failed = [], [], {}, []
        for spec in orjson.loads(text)["rooms"]:
            room, since = spec["room"], spec["since"]
            epoch, latest = self.epochs[room], self.latest[room]
            ok = since["epoch"] == epoch and since["offset"] <= latest
            entries.append({"room": room, "offset": latest, "epoch": epoch, "recovered": ok,
                            "reason": None if ok else "epoch_changed", "members": []})
            if ok:
                replayed[room] = latest - since["offset"]
                replay += [message(room, n, epoch) for n in range(since["offset"] + 1,
                                                                   latest + 1)]
            else:
                failed.append(room)
                self.starts[(room, epoch)] = latest
        self.reconnects.append((self.attempts, replayed, failed))
        self.in_flight.append(frame({"type": "joined", "ref": ref, "rooms": entries}))
        self.in_flight.extend(replay)

    def finish(self) -> None:
        """Reconnect if need be, then one more live message per room, and deliver it all."""
        self.reconnect()
        for room in ROOMS:
            self.publish(room)
        self.deliver(len(self.in_flight))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({room: st.integers(0, 3) for room in ROOMS}), steps)
def test_every_message_once_in_order_across_reconnections(
    before_join: dict[str, int], script: list[tuple[str, str]]
) -> None:
    model = Model(before_join)
    for action, arg in script:
        if action == "publish":
            model.publish(arg)
        elif action == "deliver":
            model.deliver(int(arg))
        elif action == "duplicate":
            model.duplicate(int(arg))
        elif action == "drop":
            model.drop()
        elif action == "reconnect":
            model.reconnect()
        elif action == "lose_history":
            model.lose_history(arg)
        else:
            model.new_epoch_live(arg)
    model.finish()

    for room in ROOMS:
        got = [(e.epoch, e.offset) for e in model.events
               if isinstance(e, Message) and e.room == room]
        epochs = [epoch for epoch, _ in got]
        # Epochs follow each other and never come back: one run of messages per epoch.
        runs = [epoch for epoch, _ in itertools.groupby(epochs)]
        assert len(runs) == len(set(runs)), got
        for epoch in runs:
            offsets = [offset for e, offset in got if e == epoch]
            start = model.starts[(room, epoch)]
            # Exactly once and in order: every message after the epoch's join point, no
            # repeat, no gap (what was lost with the old epoch is announced, not hidden).
            assert offsets == list(range(start + 1, start + 1 + len(offsets))), (epoch, got)
        final = model.epochs[room]
        assert got[-1] == (final, model.latest[room])
        assert model.session.position(room) == Position(model.latest[room], final)

    # Each reconnection is announced once with what is being replayed, before the replay;
    # each room whose history was lost is then named by a RecoveryFailed.
    announced = [e for e in model.events if isinstance(e, Reconnected | RecoveryFailed)]
    expected: list[Event] = []
    for attempt, replayed, failed in model.reconnects:
        expected.append(Reconnected(attempt, replayed))
        expected += [RecoveryFailed(room, "epoch_changed") for room in failed]
    assert announced == expected


positions = st.tuples(st.sampled_from(["e1", "e2"]), st.integers(0, 12))


@given(positions, st.lists(positions, max_size=40))
def test_filter_keeps_exactly_what_is_after_the_position(
    start: tuple[str, int], stream: list[tuple[str, int]]
) -> None:
    """Whatever order messages come in: within an epoch only offsets beyond the last
    accepted one pass, and a message of another epoch starts that epoch afresh."""
    session = welcomed()
    join(session, ("a", start[1], start[0]))
    accepted = [(e.epoch, e.offset) for epoch, offset in stream
                for e in session.receive(message("a", offset, epoch)).events
                if isinstance(e, Message)]
    position = start
    expected = []
    for epoch, offset in stream:
        if epoch != position[0] or offset > position[1]:
            expected.append((epoch, offset))
            position = (epoch, offset)
    assert accepted == expected
    assert session.position("a") == Position(position[1], position[0])


# -- idempotent publish and reset (docs/protocol.md) ------------------------------------


def reset(room: str, offset: int, epoch: str) -> bytes:
    return frame({"type": "reset", "room": room, "epoch": epoch, "offset": offset,
                  "reason": "epoch_changed"})


def test_reset_moves_the_position_to_the_new_epoch_and_tells_the_user() -> None:
    session = welcomed()
    join(session, ("a", 7, "e1"), ("b", 2, "e1"))
    [event] = session.receive(reset("a", 3, "e2")).events
    assert event == hubbub.client.Reset("a", "e2", 3, "epoch_changed")
    assert session.position("a") == Position(3, "e2")
    assert session.position("b") == Position(2, "e1")  # other rooms keep theirs
    # The old epoch's dedupe is gone: the new epoch's messages after the event's offset
    # are accepted even though their offsets are below the old position; those at or
    # below it (the new epoch had them before the event) are not delivered twice.
    texts = [session.receive(message("a", offset, epoch="e2")).events
             for offset in (2, 3, 4, 5)]
    assert [[e.offset for e in events if isinstance(e, Message)] for events in texts] == [
        [], [], [4], [5]]
    assert session.rejoin_request() == wire.rejoin_request([("a", 5, "e2"), ("b", 2, "e1")])


def test_reset_of_a_room_not_joined_is_ignored_and_a_broken_one_breaks_the_session() -> None:
    session = welcomed()
    join(session, ("a", 1, "e1"))
    assert session.receive(reset("other", 0, "e2")) == Output()
    assert session.position("a") == Position(1, "e1")
    with pytest.raises(ProtocolViolation, match="'epoch'"):
        session.receive(frame({"type": "reset", "room": "a", "offset": 0}))


def test_an_ack_says_whether_it_answered_a_duplicate() -> None:
    session = welcomed()
    join(session, ("a", 0, "e1"))
    acks = []
    for duplicate in (None, True, False):
        ref, text = session.send(wire.publish_request("a", "hi", None, "order-1"), "p")
        assert orjson.loads(text) == {"type": "publish", "room": "a", "text": "hi",
                                      "id": "order-1", "ref": ref}
        body: dict[str, Any] = {"type": "ack", "ref": ref, "room": "a", "id": "order-1",
                                "offset": 1, "epoch": "e1", "ts": 5}
        if duplicate is not None:
            body["duplicate"] = duplicate
        out = session.receive(frame(body))
        assert out.resolved is not None
        acks.append(out.resolved.result)
    assert [ack.duplicate for ack in acks] == [False, True, False]
    assert acks[0] == hubbub.client.Ack("a", "order-1", 1, "e1", 5)


@pytest.mark.parametrize("bad", ["", "x" * 65, "a b", "é", "a/b", 7, ["a"]])
def test_a_message_id_the_server_would_refuse_fails_before_sending(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"bad message id .*1 to 64 characters"):
        wire.message_id(bad)
    assert wire.message_id(None) is None
    assert wire.message_id("A-z_09" + "x" * 58) == "A-z_09" + "x" * 58


def test_retry_after_comes_from_the_error_or_from_elsewhere() -> None:
    unavailable = {"type": "error", "code": "unavailable", "reason": "broker down",
                   "retry_after": 1000}
    assert wire.error(unavailable).retry_after == 1000
    assert wire.error({**unavailable, "retry_after": None}, retry_after=3000).retry_after == 3000
    assert wire.error({**unavailable, "retry_after": True}).retry_after is None
    session = welcomed()
    ref, _ = session.send(wire.publish_request("a", "hi", None), "p")
    out = session.receive(frame({**unavailable, "ref": ref}))
    assert out.resolved is not None and isinstance(out.resolved.error, HubbubError)
    assert (out.resolved.error.code, out.resolved.error.retry_after) == ("unavailable", 1000)
