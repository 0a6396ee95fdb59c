"""`SQLiteStore`: durable per-room history in one SQLite file, written in group commits.

One file, `<data-dir>/hubbub.sqlite3`, in WAL mode, guarded by an exclusive `flock` on
`hubbub.sqlite3.lock` so that a second server on the same data directory refuses to start
(two writers would hand out the same offsets from their in-memory counters). The store
composes one part per concern, each stating what it keeps:

- `opening.py`: refuse files that are not ours, take the lock, migrate, load the rooms;
- `writer.py`: the writer thread, the only write connection, group commit;
- `handoff.py`: the loop's side, the rooms' state there and the hand-off of each commit;
- `retention.py`: `trim` in small transactions between commits;
- `reads.py`: history reads on a thread pool of read-only connections;
- `checkpointer.py`: WAL checkpoints on their own thread, so no commit waits for one.

Durability: `fsync` sets `PRAGMA synchronous=FULL` (each commit is fsynced before it is
acknowledged: survives power loss); `batch` sets `synchronous=NORMAL` (the WAL is fsynced
only at checkpoints: an acknowledged append survives a crash of the process, e.g. SIGKILL,
because its WAL frame was written to the OS, but the last commits may be lost if the machine
loses power) and waits up to `commit_window_ms` to gather bigger batches.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from pathlib import Path

from hubbub.core.message import Draft
from hubbub.core.store import HistoryPage, MessageStore, Outcome, RoomState, StoreError
from hubbub.stores.sqlite import retention
from hubbub.stores.sqlite.checkpointer import Checkpointer
from hubbub.stores.sqlite.codec import encode_data
from hubbub.stores.sqlite.handoff import LoopSide
from hubbub.stores.sqlite.lockfile import LockFile
from hubbub.stores.sqlite.migrations import SCHEMA_VERSION
from hubbub.stores.sqlite.opening import Durability, open_file
from hubbub.stores.sqlite.reads import Readers
from hubbub.stores.sqlite.writer import Request, Writer

log = logging.getLogger("hubbub.stores.sqlite")  # the name operators see in the logs


class SQLiteStore(MessageStore):
    """History in a SQLite file; see the module docstring for its parts and guarantees.

    `commit_window_ms` only applies in `batch` mode: it is how long the writer waits for more
    appends after the first one of a batch, trading that much ack latency for fewer commits.
    `max_batch` bounds one transaction, and so how long the appends behind it wait.
    `busy_timeout_ms` is how long a commit waits for a lock held by someone else (only a
    foreign process, e.g. the `sqlite3` shell, can hold one) before the batch fails.
    """

    def __init__(
        self,
        path: Path,
        *,
        durability: Durability = "fsync",
        commit_window_ms: float = 2.0,
        max_batch: int = 1000,
        busy_timeout_ms: int = 5000,
        read_threads: int = 2,
    ) -> None:
        if durability not in ("fsync", "batch"):
            raise ValueError(f"durability must be 'fsync' or 'batch', not {durability!r}")
        if not commit_window_ms >= 0:
            raise ValueError("commit_window_ms must be >= 0")
        if max_batch < 1 or read_threads < 1 or busy_timeout_ms < 0:
            raise ValueError("max_batch and read_threads must be >= 1, busy_timeout_ms >= 0")
        self.path = Path(path)
        self.durability: Durability = durability
        self._window = commit_window_ms / 1000 if durability == "batch" else 0.0
        self._max_batch = max_batch
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._read_threads = read_threads

        self._lock = LockFile(self.path.with_name(self.path.name + ".lock"))
        self._requests: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self._side = LoopSide(self._requests.put, self._stored)
        self._writer: Writer | None = None
        self._readers: Readers | None = None
        self._checkpointer: Checkpointer | None = None
        self._open = False
        self._closing = False

    @property
    def commits(self) -> int:
        """Transactions committed by the writer (appends and room creations)."""
        return 0 if self._writer is None else self._writer.commits

    @property
    def appends(self) -> int:
        """Appends committed; `appends / commits` is the mean group-commit size."""
        return 0 if self._writer is None else self._writer.appends

    # ---------------------------------------------------------------- open / close

    async def open(self) -> None:
        if self._open:
            return
        conn, rows = await asyncio.to_thread(
            open_file, self.path, self._lock, durability=self.durability,
            busy_timeout_s=self._busy_timeout_s,
        )
        # One loop: the writer hands every result to it (`LoopSide.hand_over`).
        self._side.start(asyncio.get_running_loop(),
                         {name: row.state() for name, row in rows.items()})
        self._readers = Readers(self.path, threads=self._read_threads)
        self._checkpointer = Checkpointer(self.path, busy_timeout_s=self._busy_timeout_s)
        self._checkpointer.start()
        self._writer = Writer(conn, rows, self._requests, self._side, path=self.path,
                              window_s=self._window, max_batch=self._max_batch,
                              checkpointer=self._checkpointer, store=self)
        self._writer.start()
        self._open = True
        log.info(
            "SQLite store %s open: %d rooms, schema %d, durability %s",
            self.path, len(rows), SCHEMA_VERSION, self.durability,
        )

    async def close(self) -> None:
        if not self._open or self._closing:
            return
        self._closing = True
        assert self._writer is not None and self._readers is not None
        assert self._checkpointer is not None
        await asyncio.to_thread(self._writer.stop)
        await asyncio.to_thread(self._checkpointer.stop)
        await asyncio.to_thread(self._readers.close)
        self._lock.release()
        self._open = False
        log.info("SQLite store %s closed after %d appends in %d commits", self.path,
                 self.appends, self.commits)

    def _check_usable(self) -> None:
        if not self._open or self._closing:
            raise StoreError("the message store is not open")

    def usable(self) -> bool:
        writer = self._writer
        return (self._open and not self._closing and writer is not None
                and not writer.failing and writer.alive())

    # ---------------------------------------------------------------- MessageStore

    def submit(self, draft: Draft, then: Outcome) -> None:
        try:
            self._check_usable()
            data_json = None if draft.data is None else encode_data(draft.data)
        except StoreError as exc:
            self._report(then, exc)
            return
        self._side.place(draft, data_json, then)

    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        return self._side.room_state(room, create=create)

    def discard(self, room: str) -> None:
        self._side.discard(room)

    async def room_count(self) -> int:
        return len(self._side.states)

    async def rooms(self) -> dict[str, RoomState]:
        return dict(self._side.states)

    async def read(
        self,
        room: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int,
    ) -> HistoryPage | None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self._check_usable()
        unwritten = self._side.states.get(room)
        if unwritten is not None and unwritten.offset == 0:
            return HistoryPage(unwritten, [], False)  # joined, never written: not in the file
        assert self._readers is not None
        return await self._readers.read(room, after, before, limit)

    async def trim(self, *, max_count: int | None, max_age_ms: int | None, now_ms: int) -> int:
        if not retention.wanted(max_count, max_age_ms):
            return 0
        self._check_usable()
        return await retention.trim(self._requests.put, list(self._side.states),
                                    max_count=max_count, max_age_ms=max_age_ms, now_ms=now_ms)


__all__ = ["SQLiteStore"]
