"""Property: for any sequence of operations SQLiteStore answers exactly as MemoryStore does."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.core.message import Draft
from hubbub.core.store import HistoryPage, MessageStore
from hubbub.stores.memory import MemoryStore
from hubbub.stores.sqlite import SQLiteStore

rooms = st.sampled_from(["a", "b", "ü"])
small_offsets = st.none() | st.integers(min_value=-2, max_value=14)

appends = st.tuples(st.just("append"), rooms, st.integers(0, 50),
                    st.none() | st.text(max_size=5), st.none() | st.integers())
reads = st.tuples(st.just("read"), rooms, small_offsets, small_offsets, st.integers(0, 6))
trims = st.tuples(st.just("trim"), st.none() | st.integers(0, 6),
                  st.none() | st.integers(0, 40), st.integers(0, 60))
creates = st.tuples(st.just("create"), rooms)
operations = st.lists(st.one_of(appends, appends, appends, reads, reads, trims, creates),
                      max_size=40)


def comparable(page: HistoryPage | None) -> Any:
    if page is None:
        return None
    # Epochs are random per store; only whether they are constant matters (checked below).
    return ((page.state.offset, page.state.first_offset), page.has_more,
            [replace(m, epoch="") for m in page.messages])


async def apply(ops: list[tuple[Any, ...]], db: Path) -> None:
    memory: MessageStore = MemoryStore()
    sqlite = SQLiteStore(db, durability="batch", commit_window_ms=0)
    await sqlite.open()
    epochs: dict[str, set[str]] = {}
    try:
        for op in ops:
            kind = op[0]
            if kind == "append":
                _, room, ts, text, data = op
                d = Draft(room, "n", "s", text=text, data=data, ts=ts)
                want, got = await memory.append(d), await sqlite.append(d)
                assert replace(want, epoch="") == replace(got, epoch="")
                epochs.setdefault(room, set()).add(got.epoch)
            elif kind == "read":
                _, room, after, before, limit = op
                want_page = await memory.read(room, after=after, before=before, limit=limit)
                got_page = await sqlite.read(room, after=after, before=before, limit=limit)
                assert comparable(want_page) == comparable(got_page), op
            elif kind == "trim":
                _, max_count, max_age, now = op
                assert await memory.trim(max_count=max_count, max_age_ms=max_age,
                                         now_ms=now) == await sqlite.trim(
                    max_count=max_count, max_age_ms=max_age, now_ms=now)
            else:
                _, room = op
                want_state = await memory.room_state(room, create=True)
                got_state = await sqlite.room_state(room, create=True)
                assert want_state is not None and got_state is not None
                assert (want_state.offset, want_state.first_offset) == (
                    got_state.offset, got_state.first_offset)
                epochs.setdefault(room, set()).add(got_state.epoch)
        want_rooms, got_rooms = await memory.rooms(), await sqlite.rooms()
        assert {k: (v.offset, v.first_offset) for k, v in want_rooms.items()} == {
            k: (v.offset, v.first_offset) for k, v in got_rooms.items()}
        for room, seen in epochs.items():
            assert seen == {got_rooms[room].epoch}
    finally:
        await sqlite.close()
    # Everything written also survives a reopen (rooms without a message never were).
    written = {name: state for name, state in got_rooms.items() if state.offset}
    again = SQLiteStore(db)
    await again.open()
    try:
        assert await again.rooms() == written
        for room in written:
            assert comparable(await again.read(room, limit=100)) == comparable(
                await memory.read(room, limit=100))
    finally:
        await again.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_sqlite_matches_memory(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(apply(ops, Path(tmp) / "hubbub.sqlite3"))
