"""The hub without a network: joins, recovery, presence, publishing, under every strategy."""

from __future__ import annotations

import asyncio
import random
from typing import Any, cast

import orjson
import pytest

from hubbub.brokers.local import LocalBroker
from hubbub.core import protocol as p
from hubbub.core.codec import Wire
from hubbub.core.limits import Limits
from hubbub.core.store import HistoryPage, RoomState
from hubbub.engine.fanout import Socket, make_fanout
from hubbub.engine.hub import Connection, Hub
from hubbub.stores.memory import MemoryStore
from support.memsocket import MemorySocket

STRATEGIES = ["auto", "sequential", "concurrent", "queued"]


class SlowStore(MemoryStore):
    """Yields to the loop inside every read, as a real store's thread hop does."""

    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        await asyncio.sleep(0)
        return await super().room_state(room, create=create)

    async def read(self, room: str, *, after: int | None = None, before: int | None = None,
                   limit: int) -> HistoryPage | None:
        for _ in range(random.randint(0, 3)):
            await asyncio.sleep(0)
        return await super().read(room, after=after, before=before, limit=limit)


def make_hub(strategy: str = "auto", store: MemoryStore | None = None) -> Hub:
    limits = Limits(rate_per_second=0, history_page_max=7)
    return Hub(LocalBroker(store or MemoryStore()), make_fanout(strategy, 1 << 22), limits)


def connect(hub: Hub, nick: str = "n",
            wire: Wire = Wire.JSON) -> tuple[Connection, MemorySocket]:
    sock = MemorySocket()
    conn = hub.connect(hub.fanout.outlet(cast(Socket, sock)), nick=nick, wire=wire)
    return conn, sock


async def settle() -> None:
    # Writer tasks (queued strategy) take a loop pass per frame; let them all finish.
    for _ in range(500):
        await asyncio.sleep(0)


async def request(conn: Connection, **fields: Any) -> None:
    await conn.handle_text(orjson.dumps(fields).decode())


def of_type(sock: MemorySocket, kind: str) -> list[dict[str, Any]]:
    return [e for e in sock.events() if e["type"] == kind]


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_join_since_is_gap_free_while_others_publish(strategy: str) -> None:
    hub = make_hub(strategy, SlowStore())
    publisher, _ = connect(hub, "pub")
    await request(publisher, type="join", rooms=["r"])
    for n in range(30):
        await request(publisher, type="publish", room="r", text=f"early {n}")
    epoch = (await hub.broker.room_state("r")).epoch  # type: ignore[union-attr]

    async def publish_more() -> None:
        for n in range(60):
            await request(publisher, type="publish", room="r", text=f"late {n}")
            await asyncio.sleep(0)

    subscribers = [connect(hub, f"s{i}") for i in range(5)]
    publishing = asyncio.create_task(publish_more())
    for i, (conn, _) in enumerate(subscribers):
        await asyncio.sleep(0)
        await request(conn, type="join", rooms=[{"room": "r", "since": {"offset": i * 5,
                                                                        "epoch": epoch}}])
    await publishing
    await settle()
    for i, (_, sock) in enumerate(subscribers):
        offsets = [e["offset"] for e in of_type(sock, "message")]
        assert offsets == list(range(i * 5 + 1, 91)), f"subscriber {i}"
        assert of_type(sock, "joined")[0]["rooms"][0]["recovered"] is True


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_plain_join_sees_history_boundary_then_live_without_overlap(strategy: str) -> None:
    hub = make_hub(strategy, SlowStore())
    publisher, _ = connect(hub)
    await request(publisher, type="join", rooms=["r"])

    async def publish() -> None:
        for n in range(40):
            await request(publisher, type="publish", room="r", text=str(n))

    task = asyncio.create_task(publish())
    await asyncio.sleep(0)
    late, sock = connect(hub)
    await request(late, type="join", rooms=["r"])
    await task
    await settle()
    joined_offset = of_type(sock, "joined")[0]["rooms"][0]["offset"]
    live = [e["offset"] for e in of_type(sock, "message")]
    assert live == list(range(joined_offset + 1, 41))


async def test_recovery_refusals_say_why() -> None:
    hub = make_hub()
    conn, sock = connect(hub)
    await request(conn, type="join", rooms=["r"])
    for n in range(3):
        await request(conn, type="publish", room="r", text=str(n))
    await settle()
    other, other_sock = connect(hub)
    await request(other, type="join", ref=1, rooms=[
        {"room": "r", "since": {"offset": 1, "epoch": "not-it"}}])
    await request(other, type="leave", rooms=["r"])
    await request(other, type="join", ref=2, rooms=[
        {"room": "r", "since": {"offset": 99, "epoch": of_type(sock, "ack")[0]["epoch"]}}])
    await settle()
    entries = [e["rooms"][0] for e in of_type(other_sock, "joined")]
    assert [(e["recovered"], e.get("reason")) for e in entries] == [
        (False, "epoch_changed"), (False, "offset_ahead")]
    assert of_type(other_sock, "message") == []


async def test_truncated_history_is_not_passed_off_as_recovery() -> None:
    hub = make_hub()
    conn, sock = connect(hub)
    await request(conn, type="join", rooms=["r"])
    for n in range(10):
        await request(conn, type="publish", room="r", text=str(n))
    await hub.broker.trim(max_count=3, max_age_ms=None, now_ms=0)
    await settle()
    epoch = of_type(sock, "ack")[0]["epoch"]
    other, other_sock = connect(hub)
    await request(other, type="join", rooms=[{"room": "r", "since": {"offset": 2, "epoch": epoch}}])
    await settle()
    assert of_type(other_sock, "joined")[0]["rooms"][0]["reason"] == "history_truncated"


async def test_history_option_replays_the_latest_messages() -> None:
    hub = make_hub()
    conn, _ = connect(hub)
    await request(conn, type="join", rooms=["r"])
    for n in range(10):
        await request(conn, type="publish", room="r", text=str(n))
    other, sock = connect(hub)
    await request(other, type="join", rooms=[{"room": "r", "history": 4}])
    await settle()
    assert [e["text"] for e in of_type(sock, "message")] == ["6", "7", "8", "9"]


async def test_presence_goes_to_others_not_to_self() -> None:
    hub = make_hub()
    alice, alice_sock = connect(hub, "alice")
    bob, bob_sock = connect(hub, "bob")
    await request(alice, type="join", rooms=["r"])
    await request(bob, type="join", rooms=["r"])
    await request(bob, type="nick", nick="robert", ref="n")
    await request(bob, type="leave", rooms=["r"])
    await settle()
    events = [(e["event"], e["member"]["nick"]) for e in of_type(alice_sock, "presence")]
    assert events == [("join", "bob"), ("nick", "robert"), ("leave", "robert")]
    assert of_type(bob_sock, "presence") == []
    assert of_type(bob_sock, "nick_set") == [{"type": "nick_set", "ref": "n", "nick": "robert"}]


async def test_plain_and_json_members_share_a_room() -> None:
    hub = make_hub()
    plain, plain_sock = connect(hub, "ann", Wire.PLAIN)
    await hub.join(plain, p.Join((p.JoinSpec("lobby"),)))
    json_conn, json_sock = connect(hub, "joe")
    await request(json_conn, type="join", rooms=["lobby"])
    await plain.handle_text("hi?")
    await request(json_conn, type="publish", room="lobby", text="No.")
    await hub.publish("lobby", data={"n": 1}, nick="ops")
    await settle()
    assert plain_sock.received() == ["ann: hi?", "joe: No.", 'ops: {"n":1}']
    assert [e["from"] for e in of_type(json_sock, "message")] == ["ann", "joe", "ops"]


async def test_a_failing_store_gives_unavailable_and_nothing_is_delivered() -> None:
    class BrokenStore(MemoryStore):
        def submit(self, draft: Any, then: Any) -> None:
            from hubbub.core.store import StoreError

            then(StoreError("disk full"))

    hub = make_hub(store=BrokenStore())
    conn, sock = connect(hub)
    await request(conn, type="join", rooms=["r"])
    await request(conn, type="publish", room="r", text="lost?", ref="p")
    await settle()
    assert [e["code"] for e in of_type(sock, "error")] == ["unavailable"]
    assert of_type(sock, "message") == []


async def test_a_bug_in_a_handler_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BuggyStore(MemoryStore):
        async def rooms(self) -> Any:
            raise ZeroDivisionError("oops")

    hub = make_hub(store=BuggyStore())
    conn, sock = connect(hub)
    await request(conn, type="rooms", ref=1)
    await settle()
    assert [e["code"] for e in of_type(sock, "error")] == ["internal"]
    record = next(r for r in caplog.records if r.name == "hubbub.hub")
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


async def test_refusals_are_logged_but_a_flood_is_not(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="hubbub.hub")
    hub = make_hub()
    conn, sock = connect(hub, "mallory")
    for _ in range(250):
        await conn.handle_text("not json")
    await settle()
    assert len(of_type(sock, "error")) == 250
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 10 + 2  # the first ten, then #100 and #200
    assert "mallory" in lines[0] and "bad_json" in lines[0]


class CountingStore(MemoryStore):
    """Counts history reads; fails every read from the `fail_from`-th on, if set."""

    def __init__(self, fail_from: int | None = None) -> None:
        super().__init__()
        self.reads = 0
        self.fail_from = fail_from

    async def read(self, room: str, *, after: int | None = None, before: int | None = None,
                   limit: int) -> HistoryPage | None:
        self.reads += 1
        if self.fail_from is not None and self.reads >= self.fail_from:
            from hubbub.core.store import StoreError

            raise StoreError("disk gone")
        return await super().read(room, after=after, before=before, limit=limit)


async def _room_with(hub: Hub, count: int) -> str:
    for n in range(count):
        await hub.publish("r", text=str(n))
    state = await hub.broker.room_state("r")
    assert state is not None
    return state.epoch


async def test_a_replay_that_fails_leaves_no_half_joined_member() -> None:
    store = CountingStore(fail_from=2)  # the second page fails
    hub = make_hub(store=store)
    epoch = await _room_with(hub, 20)
    conn, sock = connect(hub)
    await request(conn, type="join", rooms=[{"room": "r", "since": {"offset": 0, "epoch": epoch}}])
    await settle()
    assert of_type(sock, "joined")[0]["rooms"][0]["recovered"] is True
    assert [e["offset"] for e in of_type(sock, "message")] == list(range(1, 8))  # one page
    assert sock.close_codes == [1011]  # so that the client reconnects and recovers
    assert conn.joined == () and hub.registry.get("r") is None
    await hub.publish("r", text="after")  # nothing is buffered for it any more
    assert hub.registry.get("r") is None


async def test_a_replay_waits_for_each_page_to_leave_before_reading_the_next() -> None:
    store = CountingStore()
    hub = make_hub(store=store)
    epoch = await _room_with(hub, 40)
    conn, sock = connect(hub)
    sock.held = 1 << 20  # the client reads nothing: its transport is full
    # The join does not return before the replay is done: its connection's reads wait.
    joining = asyncio.create_task(request(conn, type="join", rooms=[
        {"room": "r", "since": {"offset": 0, "epoch": epoch}}]))
    await settle()
    assert store.reads == 1  # one page held for it, no more
    for _ in range(10):
        sock.release()  # it reads what it has
        await settle()
        sock.held = 1 << 20
    assert store.reads == 6  # 40 messages, 7 per page
    sock.release()
    await joining
    await hub.publish("r", text="live")
    await settle()
    assert [e["offset"] for e in of_type(sock, "message")] == list(range(1, 42))


async def test_a_member_that_falls_too_far_behind_while_joining_is_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hubbub.engine.hub.RECOVERY_MAX", 30)
    hub = make_hub()
    epoch = await _room_with(hub, 20)
    conn, sock = connect(hub)
    sock.held = 1 << 20  # stuck in its replay
    joining = asyncio.create_task(request(conn, type="join", rooms=[
        {"room": "r", "since": {"offset": 0, "epoch": epoch}}]))
    await settle()
    for n in range(31):
        await hub.publish("r", text=f"live {n}")
    assert sock.slow_closed == 1
    sock.release()  # its close unblocks the replay, which then stops
    await joining
    assert conn.joined == () and hub.registry.get("r") is None


async def test_in_process_publishes_of_data_that_cannot_go_out_store_nothing() -> None:
    hub = make_hub()
    deep: list[Any] = []
    for _ in range(40):
        deep = [deep]
    for data in (object(), {"when": object()}, deep):
        with pytest.raises(p.ProtocolError):
            await hub.publish("r", data=data)
    assert await hub.broker.room_state("r") is None
    assert (await hub.publish("r", data={"a": [[[]]]})).offset == 1
