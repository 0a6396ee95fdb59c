"""The `MessageStore` contract (see `hubbub.core.store`), run against every store."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.core.message import Draft, Message
from hubbub.core.store import MessageStore, RoomState, StoreError


def draft(room: str = "r", text: str | None = "hi", **kw: object) -> Draft:
    return Draft(room=room, nick=str(kw.pop("nick", "alice")), sender="c1", text=text,
                 **kw)  # type: ignore[arg-type]


async def fill(
    store: MessageStore, n: int, room: str = "r", ts: int | None = None
) -> list[Message]:
    out = []
    for i in range(n):
        d = draft(room, f"m{i + 1}") if ts is None else draft(room, f"m{i + 1}", ts=ts)
        out.append(await store.append(d))
    return out


def offsets(page: object) -> list[int]:
    return [m.offset for m in page.messages]  # type: ignore[attr-defined]


async def test_offsets_start_at_one_and_are_contiguous(store: MessageStore) -> None:
    msgs = await fill(store, 5)
    assert [m.offset for m in msgs] == [1, 2, 3, 4, 5]
    assert len({m.epoch for m in msgs}) == 1
    other = await store.append(draft("other"))
    assert other.offset == 1
    assert other.epoch != msgs[0].epoch or other.room != msgs[0].room
    assert await store.room_state("r") == RoomState(msgs[0].epoch, 5, 1)


async def test_append_returns_what_read_returns(store: MessageStore) -> None:
    sent = [
        await store.append(Draft("r", "alice", "c1", text="héllo ✓ \x00 end")),
        await store.append(Draft("r", "deploy", None, data={"build": 812, "ok": True,
                                                           "nested": [1, None, "x"]})),
        await store.append(Draft("r", "bob", "c2", text="both", data=["a", 2.5])),
        await store.append(Draft("r", "eve", "c3", text="", data=0)),
        await store.append(Draft("r", "eve", "c3", text=None, data="just a string")),
    ]
    page = await store.read("r", limit=10)
    assert page is not None
    assert page.messages == sent
    assert page.has_more is False


async def test_unknown_room(store: MessageStore) -> None:
    assert await store.room_state("nope") is None
    assert await store.read("nope", limit=10) is None
    assert "nope" not in await store.rooms()


async def test_room_state_create(store: MessageStore) -> None:
    created = await store.room_state("new", create=True)
    assert created is not None
    assert (created.offset, created.first_offset) == (0, 1)
    assert await store.room_state("new") == created
    assert await store.room_state("new", create=True) == created
    page = await store.read("new", limit=5)
    assert page is not None and page.messages == [] and page.has_more is False
    assert page.state == created
    first = await store.append(draft("new"))
    assert (first.offset, first.epoch) == (1, created.epoch)
    assert (await store.rooms())["new"] == RoomState(created.epoch, 1, 1)


async def test_read_latest(store: MessageStore) -> None:
    await fill(store, 10)
    page = await store.read("r", limit=3)
    assert page is not None
    assert offsets(page) == [8, 9, 10] and page.has_more is True
    page = await store.read("r", limit=10)
    assert page is not None and offsets(page) == list(range(1, 11)) and page.has_more is False
    page = await store.read("r", limit=50)
    assert page is not None and offsets(page) == list(range(1, 11)) and page.has_more is False
    assert page.state.offset == 10 and page.state.first_offset == 1


async def test_read_before(store: MessageStore) -> None:
    await fill(store, 10)
    page = await store.read("r", before=5, limit=2)
    assert page is not None and offsets(page) == [3, 4] and page.has_more is True
    page = await store.read("r", before=5, limit=4)
    assert page is not None and offsets(page) == [1, 2, 3, 4] and page.has_more is False
    page = await store.read("r", before=1, limit=4)
    assert page is not None and offsets(page) == [] and page.has_more is False
    page = await store.read("r", before=100, limit=2)
    assert page is not None and offsets(page) == [9, 10] and page.has_more is True


async def test_read_after(store: MessageStore) -> None:
    await fill(store, 10)
    page = await store.read("r", after=5, limit=2)
    assert page is not None and offsets(page) == [6, 7] and page.has_more is True
    page = await store.read("r", after=5, limit=5)
    assert page is not None and offsets(page) == [6, 7, 8, 9, 10] and page.has_more is False
    page = await store.read("r", after=10, limit=5)
    assert page is not None and offsets(page) == [] and page.has_more is False
    page = await store.read("r", after=0, limit=3)
    assert page is not None and offsets(page) == [1, 2, 3] and page.has_more is True
    page = await store.read("r", after=-7, limit=1)
    assert page is not None and offsets(page) == [1] and page.has_more is True


async def test_read_between(store: MessageStore) -> None:
    await fill(store, 10)
    page = await store.read("r", after=2, before=9, limit=3)
    assert page is not None and offsets(page) == [3, 4, 5] and page.has_more is True
    page = await store.read("r", after=2, before=6, limit=3)
    assert page is not None and offsets(page) == [3, 4, 5] and page.has_more is False
    page = await store.read("r", after=5, before=5, limit=3)
    assert page is not None and offsets(page) == [] and page.has_more is False
    page = await store.read("r", after=8, before=3, limit=3)
    assert page is not None and offsets(page) == [] and page.has_more is False


async def test_read_limit_zero_only_reports_has_more(store: MessageStore) -> None:
    await fill(store, 3)
    page = await store.read("r", limit=0)
    assert page is not None and page.messages == [] and page.has_more is True
    page = await store.read("r", after=3, limit=0)
    assert page is not None and page.messages == [] and page.has_more is False


async def test_trim_by_count(store: MessageStore) -> None:
    msgs = await fill(store, 10)
    await fill(store, 2, room="small")
    removed = await store.trim(max_count=4, max_age_ms=None, now_ms=0)
    assert removed == 6
    state = await store.room_state("r")
    assert state == RoomState(msgs[0].epoch, 10, 7)
    page = await store.read("r", limit=100)
    assert page is not None and offsets(page) == [7, 8, 9, 10] and page.has_more is False
    page = await store.read("r", before=8, limit=100)
    assert page is not None and offsets(page) == [7] and page.has_more is False
    small = await store.read("small", limit=10)
    assert small is not None and offsets(small) == [1, 2]
    # Trimming never rewinds offsets, and appends continue after the last one.
    after = await store.append(draft("r"))
    assert (after.offset, after.epoch) == (11, msgs[0].epoch)
    assert await store.trim(max_count=4, max_age_ms=None, now_ms=0) == 1


async def test_trim_everything_keeps_offset_and_epoch(store: MessageStore) -> None:
    msgs = await fill(store, 4)
    assert await store.trim(max_count=0, max_age_ms=None, now_ms=0) == 4
    assert await store.room_state("r") == RoomState(msgs[0].epoch, 4, 5)
    page = await store.read("r", limit=10)
    assert page is not None and page.messages == [] and page.has_more is False
    nxt = await store.append(draft("r"))
    assert (nxt.offset, nxt.epoch) == (5, msgs[0].epoch)
    assert await store.room_state("r") == RoomState(msgs[0].epoch, 5, 5)


async def test_trim_by_age_stops_at_first_recent_message(store: MessageStore) -> None:
    for ts in (1000, 2000, 3000, 1500, 5000):
        await store.append(draft("r", f"t{ts}", ts=ts))
    # Cut-off 2500: 1000 and 2000 go; 1500 stays because it is behind 3000 in offset order.
    removed = await store.trim(max_count=None, max_age_ms=500, now_ms=3000)
    assert removed == 2
    page = await store.read("r", limit=10)
    assert page is not None and [m.ts for m in page.messages] == [3000, 1500, 5000]
    assert page.state.first_offset == 3
    assert await store.trim(max_count=None, max_age_ms=None, now_ms=10**12) == 0
    assert await store.trim(max_count=2, max_age_ms=10**9, now_ms=3000) == 1


async def test_trim_count_and_age_take_the_stricter(store: MessageStore) -> None:
    await fill(store, 6, ts=100)
    await fill(store, 4, ts=900)
    assert await store.trim(max_count=8, max_age_ms=100, now_ms=1000) == 6
    page = await store.read("r", limit=10)
    assert page is not None and offsets(page) == [7, 8, 9, 10]


async def test_epochs_stable_and_distinct(store: MessageStore) -> None:
    a = await store.append(draft("a"))
    b = await store.append(draft("b"))
    await store.trim(max_count=0, max_age_ms=None, now_ms=0)
    state_a = await store.room_state("a")
    assert state_a is not None and state_a.epoch == a.epoch
    assert a.epoch != b.epoch  # 32 random bits each; equal only by a 1-in-4-billion accident
    rooms = await store.rooms()
    assert set(rooms) == {"a", "b"}
    assert rooms["b"].epoch == b.epoch


async def test_concurrent_appends_are_ordered_per_caller(store: MessageStore) -> None:
    async def writer(n: int) -> list[int]:
        return [(await store.append(draft("c", f"{n}-{i}"))).offset for i in range(20)]

    results = await asyncio.gather(*(writer(n) for n in range(10)))
    every = sorted(o for r in results for o in r)
    assert every == list(range(1, 201))
    for r in results:
        assert r == sorted(r)


@pytest.mark.parametrize("room", ["é", "a" * 64, "x:y@z.w-_", "日本語"])
async def test_unusual_room_names(store: MessageStore, room: str) -> None:
    m = await store.append(draft(room))
    page = await store.read(room, limit=1)
    assert page is not None and page.messages == [m]


async def test_a_failing_outcome_callback_keeps_the_others_and_the_message(
        store: MessageStore) -> None:
    got: list[int] = []
    done = asyncio.get_running_loop().create_future()

    def broken(outcome: object) -> None:
        raise RuntimeError("a caller's bug")

    def last(outcome: Message | StoreError) -> None:
        assert isinstance(outcome, Message)
        got.append(outcome.offset)
        done.set_result(None)

    def first(outcome: Message | StoreError) -> None:
        assert isinstance(outcome, Message)
        got.append(outcome.offset)

    store.submit(draft("cb", "one"), first)
    store.submit(draft("cb", "two"), broken)
    store.submit(draft("cb", "three"), last)
    await done
    assert got == [1, 3]
    page = await store.read("cb", limit=10)
    assert page is not None and [m.text for m in page.messages] == ["one", "two", "three"]
