"""SQLiteStore beyond the shared contract: persistence, concurrency, failures, start-up."""

# These tests touch small files and start a child process around the store on purpose;
# blocking the test's own event loop for that is harmless.
# ruff: noqa: ASYNC220, ASYNC240

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from hubbub.core.message import Draft, Message
from hubbub.core.store import RoomState, StoreError, StoreOpenError
from hubbub.stores.sqlite import SQLiteStore
from hubbub.stores.sqlite.migrations import SCHEMA_VERSION
from hubbub.stores.sqlite.retention import TRIM_CHUNK


def draft(room: str = "r", text: str | None = "hi", **kw: object) -> Draft:
    return Draft(room=room, nick="alice", sender="c1", text=text, **kw)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "hubbub.sqlite3"


async def test_file_is_wal_with_schema_version(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.append(draft())
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        row = conn.execute("SELECT room, offset, nick, sender, text, data FROM messages").fetchone()
        assert row == ("r", 1, "alice", "c1", "hi", None)
    finally:
        conn.close()
    await store.close()
    assert (db.parent / "hubbub.sqlite3.lock").exists()


async def test_reopen_keeps_data_epochs_and_offsets(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    sent = [await store.append(draft("r", f"m{i}", data={"i": i})) for i in range(7)]
    await store.room_state("empty", create=True)
    await store.trim(max_count=3, max_age_ms=None, now_ms=0)
    before = await store.rooms()
    await store.close()

    again = SQLiteStore(db, durability="batch")
    await again.open()
    assert before["r"] == RoomState(sent[0].epoch, 7, 5)
    assert before["empty"].offset == 0
    # A room that never had a message was never written: only the room with messages is back.
    assert await again.rooms() == {"r": before["r"]}
    page = await again.read("r", limit=10)
    assert page is not None and page.messages == sent[4:]
    nxt = await again.append(draft("r"))
    assert (nxt.offset, nxt.epoch) == (8, sent[0].epoch)
    await again.close()


async def test_twenty_writers_get_gap_free_offsets_in_call_order(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()

    async def writer(n: int) -> list[tuple[int, str]]:
        out = []
        for i in range(50):
            m = await store.append(draft("busy", f"{n}:{i}"))
            out.append((m.offset, m.text or ""))
        return out

    results = await asyncio.gather(*(writer(n) for n in range(20)))
    every = sorted(offset for r in results for offset, _ in r)
    assert every == list(range(1, 1001))
    for n, r in enumerate(results):
        assert [o for o, _ in r] == sorted(o for o, _ in r)
        assert [t for _, t in r] == [f"{n}:{i}" for i in range(50)]
    # What was acknowledged is what is stored, offset by offset.
    stored: dict[int, str] = {}
    after = 0
    while True:
        page = await store.read("busy", after=after, limit=100)
        assert page is not None
        stored.update((m.offset, m.text or "") for m in page.messages)
        if not page.has_more:
            break
        after = page.messages[-1].offset
    assert stored == {o: t for r in results for o, t in r}
    await store.close()


async def test_failed_commit_raises_and_leaves_no_gap(db: Path) -> None:
    store = SQLiteStore(db, busy_timeout_ms=50)
    await store.open()
    assert (await store.append(draft(text="before"))).offset == 1
    # Another process (here: another connection, as the sqlite3 shell would) holds the
    # write lock, so the store's commits fail after the busy timeout.
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        outcomes = await asyncio.gather(
            *(store.append(draft(text=f"lost {i}")) for i in range(5)),
            store.append(draft("brand-new", "lost too")),
            return_exceptions=True,
        )
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes
        # Starting a room writes nothing, so it works even now.
        assert (await store.room_state("joined", create=True)).offset == 0  # type: ignore[union-attr]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # The room whose only message failed is as unwritten as before: forgettable.
    assert (await store.room_state("brand-new")).offset == 0  # type: ignore[union-attr]
    store.discard("brand-new")
    assert await store.room_state("brand-new") is None
    assert await store.room_state("r") == (await store.read("r", limit=1)).state  # type: ignore[union-attr]
    nxt = await store.append(draft(text="after"))
    assert nxt.offset == 2
    page = await store.read("r", limit=10)
    assert page is not None and [m.text for m in page.messages] == ["before", "after"]
    await store.close()


async def test_close_finishes_pending_writes(db: Path) -> None:
    store = SQLiteStore(db, durability="batch", commit_window_ms=5)
    await store.open()
    tasks = [asyncio.create_task(store.append(draft(text=str(i)))) for i in range(300)]
    await asyncio.sleep(0)  # let every task enqueue its append
    await store.close()
    offsets = [t.result().offset for t in tasks]
    assert sorted(offsets) == list(range(1, 301))
    with pytest.raises(StoreError):
        await store.append(draft())
    again = SQLiteStore(db)
    await again.open()
    assert (await again.room_state("r")) == RoomState(tasks[0].result().epoch, 300, 1)
    await again.close()


async def test_trim_in_chunks_keeps_appends_flowing(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    total = TRIM_CHUNK * 2 + 17
    await asyncio.gather(*(store.append(draft(text=str(i), ts=1)) for i in range(total)))
    trim = asyncio.create_task(store.trim(max_count=None, max_age_ms=10, now_ms=100))
    # Appends issued while retention runs are stored with fresh offsets and not trimmed.
    late = [await store.append(draft(text="late", ts=99)) for _ in range(5)]
    assert await trim == total
    assert [m.offset for m in late] == list(range(total + 1, total + 6))
    page = await store.read("r", limit=100)
    assert page is not None and page.messages == late
    await store.close()


async def test_hostile_values(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    big = "x" * 1_000_000
    m = await store.append(draft(text=big, data={"'; DROP TABLE messages; --": [1] * 1000}))
    page = await store.read("r", limit=1)
    assert page is not None and page.messages == [m]
    with pytest.raises(StoreError):
        await store.append(draft(data={"x": object()}))
    huge = {"big": [2**64, -(2**70), 12345678901234567890123]}
    kept = await store.append(draft(data=huge))
    page = await store.read("r", after=m.offset, limit=1)
    assert page is not None and page.messages == [kept] and kept.data == huge
    for after, before in [(2**70, None), (None, -(2**70)), (-(2**70), 2**70)]:
        page = await store.read("r", after=after, before=before, limit=5)
        assert page is not None
    page = await store.read("r", after=-(2**70), before=2**70, limit=5)
    assert page is not None and page.messages == [m, kept]
    with pytest.raises(ValueError):
        await store.read("r", limit=-1)
    with pytest.raises(ValueError):
        await store.trim(max_count=-1, max_age_ms=None, now_ms=0)
    assert (await store.append(draft())).offset == 3
    await store.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"durability": "never"}, {"commit_window_ms": -1}, {"commit_window_ms": float("nan")},
     {"max_batch": 0}, {"busy_timeout_ms": -5}, {"read_threads": 0}],
)
def test_bad_settings_rejected(db: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SQLiteStore(db, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ start-up failures


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


async def open_fails(db: Path) -> str:
    store = SQLiteStore(db)
    with pytest.raises(StoreOpenError) as info:
        await store.open()
    message = str(info.value)
    assert "\n" not in message and message
    return message


async def test_open_creates_missing_directories(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "c" / "hubbub.sqlite3"
    store = SQLiteStore(db)
    await store.open()
    await store.close()
    assert db.is_file()


async def test_open_fails_when_directory_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"keep me")
    message = await open_fails(blocker / "data" / "hubbub.sqlite3")
    assert "cannot create data directory" in message
    assert blocker.read_bytes() == b"keep me"


async def test_open_fails_when_directory_is_unwritable() -> None:
    # /sys refuses new files even to root, which chmod on a temp dir would not.
    message = await open_fails(Path("/sys/hubbub.sqlite3"))
    assert "not writable" in message and "/sys" in message


async def test_open_fails_on_random_bytes(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(os.urandom(64 * 1024))
    before = snapshot(db.parent)
    message = await open_fails(db)
    assert "corrupt" in message and str(db) in message
    after = snapshot(db.parent)
    assert after[db.name] == before[db.name]
    assert set(after) <= {db.name, db.name + ".lock"}


async def test_open_fails_on_a_foreign_sqlite_database(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    assert "not a hubbub one" in await open_fails(db)
    assert db.read_bytes() == before


async def test_open_fails_on_newer_schema(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.append(draft())
    await store.close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = snapshot(db.parent)
    message = await open_fails(db)
    assert f"schema version {SCHEMA_VERSION + 1}" in message and "upgrade hubbub" in message
    assert snapshot(db.parent)[db.name] == before[db.name]


async def test_second_store_on_same_directory_refused(db: Path) -> None:
    first = SQLiteStore(db)
    await first.open()
    sent = await first.append(draft())
    lock = db.with_name(db.name + ".lock")
    holder = lock.read_bytes()
    message = await open_fails(db)
    assert "in use by another hubbub server" in message and f"pid {os.getpid()}" in message
    # The holder keeps writing (and checkpointing) its file, so its bytes may change; what
    # must not change is the lock and what the holder stored and can still store.
    assert lock.read_bytes() == holder
    page = await first.read("r", limit=10)
    assert page is not None and page.messages == [sent]
    assert (await first.append(draft())).offset == 2
    await first.close()
    # Closing releases the lock.
    second = SQLiteStore(db)
    await second.open()
    assert (await second.append(draft())).offset == 3
    await second.close()


HOLDER = """
import asyncio, sys
from pathlib import Path
from hubbub.stores.sqlite import SQLiteStore
from hubbub.core.message import Draft, Message
async def main():
    store = SQLiteStore(Path(sys.argv[1]))
    await store.open()
    m = await store.append(Draft("r", "holder", None, text="from the other process"))
    print(m.offset, m.epoch, flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


async def test_lock_held_by_other_process_and_freed_by_its_death(db: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(db)],
                          stdout=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            offset, epoch = line.decode().split()
            message = await open_fails(db)
            assert f"pid {proc.pid}" in message
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # The kernel drops a flock with its holder, even on SIGKILL; the acked append survived.
    store = SQLiteStore(db)
    await store.open()
    assert await store.room_state("r") == RoomState(epoch, int(offset), 1)
    await store.close()


async def test_open_failure_releases_everything(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    await open_fails(db)
    db.unlink()
    # The lock taken during the failed attempt was released.
    store = SQLiteStore(db)
    await store.open()
    await store.close()


async def test_one_big_batch_across_many_rooms(db: Path) -> None:
    store = SQLiteStore(db, durability="batch", commit_window_ms=50)
    await store.open()
    drafts = [draft(f"room-{i % 37}", f"t{i}") for i in range(777)]
    sent = await asyncio.gather(*(store.append(d) for d in drafts))
    assert store.commits < 777  # they were grouped
    for room in {d.room for d in drafts}:
        mine = [m for m in sent if m.room == room]
        assert [m.offset for m in mine] == list(range(1, len(mine) + 1))
        page = await store.read(room, limit=100)
        assert page is not None and page.messages == mine
    await store.close()


async def test_rooms_an_earlier_version_wrote_on_join_are_forgotten_on_open(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    kept = await store.append(draft("talked"))
    await store.close()
    with sqlite3.connect(db) as conn:  # what joining wrote before rooms started on the loop
        conn.execute("INSERT INTO rooms (name, epoch, last_offset, created_ms)"
                     " VALUES ('silent', 'e', 0, 0)")
    again = SQLiteStore(db)
    await again.open()
    assert set(await again.rooms()) == {"talked"}
    assert (await again.append(draft("talked"))).epoch == kept.epoch
    await again.close()


class _Steps:
    """Numbers the event loop's passes: a callback that re-schedules itself runs once in
    every pass, so two things that saw the same number happened in the same pass."""

    def __init__(self) -> None:
        self.now = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.now += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def test_one_commit_reports_its_whole_batch_in_one_loop_step_in_order(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    seen: list[tuple[str, int, Any]] = []  # (what, loop step, detail)
    steps = _Steps()
    store.listen(lambda batch: seen.append(("stored", steps.now, [m.offset for m in batch])))
    done = asyncio.get_running_loop().create_future()
    submitted = [draft(room=f"r{i % 3}", text=str(i)) for i in range(300)]

    def outcome(i: int, result: Message | StoreError) -> None:
        seen.append(("outcome", steps.now, (i, result)))
        if i == len(submitted) - 1:
            done.set_result(None)

    commits = store.commits
    for i, d in enumerate(submitted):  # all in one step: the writer gathers what is queued
        store.submit(d, partial(outcome, i))
    await done
    steps.stop()
    outcomes = [detail for what, _, detail in seen if what == "outcome"]
    # Every append answered once, in submission order, with contiguous offsets per room.
    assert [i for i, _ in outcomes] == list(range(300))
    for room in ("r0", "r1", "r2"):
        offsets = [m.offset for _, m in outcomes if m.room == room]
        assert offsets == list(range(1, 101))
    # One loop step per commit, the listener first in it, then every outcome of the batch.
    made = store.commits - commits
    assert 1 <= made < 300
    step_of_outcomes = {step for what, step, _ in seen if what == "outcome"}
    assert len(step_of_outcomes) == made
    for step in step_of_outcomes:
        in_step = [what for what, s, _ in seen if s == step]
        assert in_step[0] == "stored" and set(in_step[1:]) == {"outcome"}
    await store.close()


async def test_a_failed_commit_refuses_every_append_of_its_batch_in_order(db: Path) -> None:
    store = SQLiteStore(db, busy_timeout_ms=50)
    await store.open()
    assert (await store.append(draft(text="before"))).offset == 1
    delivered: list[int] = []
    store.listen(lambda batch: delivered.extend(m.offset for m in batch))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    outcomes: list[tuple[int, Message | StoreError]] = []
    done = asyncio.get_running_loop().create_future()

    def outcome(i: int, result: Message | StoreError) -> None:
        outcomes.append((i, result))
        if i == 49:
            done.set_result(None)

    try:
        for i in range(50):
            store.submit(draft(text=f"lost {i}"), partial(outcome, i))
        await done
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert [i for i, _ in outcomes] == list(range(50))
    assert all(isinstance(r, StoreError) for _, r in outcomes)
    assert delivered == []  # nobody was handed a refused message
    after = await store.append(draft(text="after"))
    assert after.offset == 2 and delivered == [2]  # no offset was used by the failed batch
    await store.close()


async def test_submit_to_a_closed_store_is_refused_through_its_outcome(db: Path) -> None:
    store = SQLiteStore(db)
    outcomes: list[Message | StoreError] = []
    store.submit(draft(), outcomes.append)  # never opened
    assert len(outcomes) == 1 and isinstance(outcomes[0], StoreError)


async def test_a_version_1_file_is_migrated_and_its_rooms_advance_through_the_trigger(
        db: Path) -> None:
    from hubbub.stores.sqlite.migrations import MIGRATIONS

    db.parent.mkdir(parents=True)
    old = sqlite3.connect(db, isolation_level=None)
    for statement in MIGRATIONS[0].statements:  # what hubbub wrote before version 2
        old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO rooms VALUES ('r', 'e1', 2, 0)")
    old.executemany("INSERT INTO messages VALUES ('r', ?, ?, 'n', NULL, ?, NULL, 0)",
                    [(1, "a", "one"), (2, "b", "two")])
    old.close()
    store = SQLiteStore(db)
    await store.open()
    assert (await store.append(draft(text="three"))).offset == 3
    assert (await store.append(draft("new-room", "first"))).offset == 1
    await store.close()
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert dict(check.execute("SELECT name, last_offset FROM rooms")) == {"r": 3, "new-room": 1}
    check.close()
