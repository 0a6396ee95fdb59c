"""`SQLiteStore`: durable per-room history in one SQLite file, written in group commits.

Layout and threads:

- One file, `<data-dir>/hubbub.sqlite3`, in WAL mode, guarded by an exclusive `flock` on
  `hubbub.sqlite3.lock` so that a second server on the same data directory refuses to start
  (two writers would hand out the same offsets from their in-memory counters).
- One writer thread owns the only write connection. `submit()` puts a request on a queue
  and returns; the writer takes everything queued (up to `max_batch`, and in `batch` mode
  waiting up to `commit_window_ms` for more), writes it in ONE transaction, assigning
  offsets in queue order, and hands the whole batch back to the event loop with one
  `call_soon_threadsafe`, where one callback reports every append's outcome in queue order.
  Concurrent appends therefore share one commit, one fsync (group commit) and one loop
  wake-up instead of queueing for one each.
- Reads (`read`) run on a small thread pool, each thread with its own read-only
  connection; WAL lets them run while the writer commits, and every read transaction sees
  every commit that finished before it began, hence every acknowledged append.
- WAL checkpoints run on their own thread (`checkpointer.py`), so no commit waits for one.
- `room_state` and `rooms` answer from a copy of each room's state on the event loop that
  is updated from committed transactions in the same callback that hands their messages to
  the listener, just before their appends are acknowledged, so they need no I/O and never
  report an offset that was not stored and delivered.

Durability: `fsync` sets `PRAGMA synchronous=FULL` (each commit is fsynced before it is
acknowledged: survives power loss); `batch` sets `synchronous=NORMAL` (the WAL is fsynced
only at checkpoints: an acknowledged append survives a crash of the process, e.g. SIGKILL,
because its WAL frame was written to the OS, but the last commits may be lost if the machine
loses power) and waits up to `commit_window_ms` to gather bigger batches.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from hubbub.core.message import Draft, Message, now_ms
from hubbub.core.store import (
    HistoryPage,
    MessageStore,
    Outcome,
    RoomState,
    StoreError,
    StoreOpenError,
    new_epoch,
)
from hubbub.stores.sqlite.checkpointer import Checkpointer
from hubbub.stores.sqlite.codec import decode_data, encode_data
from hubbub.stores.sqlite.lockfile import LockFile, LockHeld
from hubbub.stores.sqlite.migrations import SCHEMA_VERSION, migrate, schema_version
from hubbub.stores.sqlite.sql import (
    MESSAGES_INSERT,
    ROOMS_INSERT,
    ROWS_PER_STATEMENT,
    STATEMENT_CACHE,
    insert_rows,
)

log = logging.getLogger("hubbub.stores.sqlite")  # the name operators see in the logs

Durability = Literal["fsync", "batch"]

TRIM_CHUNK = 2000
"""Most rows one retention transaction deletes, so that appends queued behind it wait for
at most one small transaction rather than for a whole retention pass."""

BATCH_IDLE_GAP_MS = 0.2
"""In `batch` mode, the writer stops gathering once the queue stayed empty this long: under
load appends arrive far more often than this, and when they do not, nobody is left to wait
for (closed-loop publishers are all waiting for acks)."""

WRITER_AUTOCHECKPOINT_PAGES = 20_000
"""The writer's own automatic checkpoint threshold (80 MB of WAL at 4 KiB pages): only a
safety net, normally the checkpoint thread keeps the WAL far smaller."""

_MAX_OFFSET = 2**62
"""Offsets from the wire are clamped to this so that SQLite's 64-bit integers never
overflow; no room reaches it."""


@dataclass(slots=True)
class _Row:
    """The writer's view of a room; only the writer thread touches these."""

    epoch: str
    last: int
    first: int

    def state(self) -> RoomState:
        return RoomState(self.epoch, self.last, self.first)


@dataclass(slots=True)
class _Append:
    draft: Draft
    data_json: str | None
    epoch: str
    """The room's epoch as the loop knows it: a room's first message takes the epoch its
    members were told when they joined it (see `SQLiteStore.room_state`)."""
    first: bool
    """Submitted while the room had no stored message (counted in `_first_appends`)."""
    then: Outcome


@dataclass(slots=True)
class _Trim:
    rooms: list[str]
    max_count: int | None
    max_age_ms: int | None
    now_ms: int
    future: asyncio.Future[tuple[int, list[str]]]


class _Stop:
    pass


_Op = _Append | _Trim | _Stop
_Step = TypeVar("_Step", list[_Append], _Trim)
"""What one writer step takes: a batch of appends, or one retention request."""


class SQLiteStore(MessageStore):
    """History in a SQLite file; see the module docstring for threads and guarantees.

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
        self._busy_timeout_ms = busy_timeout_ms
        self._read_threads = read_threads

        self._lock = LockFile(self.path.with_name(self.path.name + ".lock"))
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rows: dict[str, _Row] = {}  # writer thread only
        self._states: dict[str, RoomState] = {}  # event loop only
        self._first_appends: dict[str, int] = {}  # event loop only: pending, per unwritten room
        self._readers: ThreadPoolExecutor | None = None
        self._checkpointer: Checkpointer | None = None
        self._local = threading.local()
        self._rconns: list[sqlite3.Connection] = []
        self._rconns_lock = threading.Lock()
        self._open = False
        self._closing = False
        self.commits = 0
        """Transactions committed by the writer (appends and room creations)."""
        self.appends = 0
        """Appends committed; `appends / commits` is the mean group-commit size."""
        self.failing = False
        """True from a failed commit until the next one succeeds."""

    # ---------------------------------------------------------------- open / close

    async def open(self) -> None:
        if self._open:
            return
        await asyncio.to_thread(self._open_sync)
        # One loop: the writer hands every result to it (`_hand_over`).
        self._loop = asyncio.get_running_loop()
        self._states = {name: row.state() for name, row in self._rows.items()}
        self._readers = ThreadPoolExecutor(
            max_workers=self._read_threads, thread_name_prefix="hubbub-sqlite-read"
        )
        self._checkpointer = Checkpointer(self.path,
                                          busy_timeout_s=self._busy_timeout_ms / 1000)
        self._checkpointer.start()
        self._writer = threading.Thread(
            target=self._run_writer, name="hubbub-sqlite-writer", daemon=True
        )
        self._writer.start()
        self._open = True
        log.info(
            "SQLite store %s open: %d rooms, schema %d, durability %s",
            self.path, len(self._rows), SCHEMA_VERSION, self.durability,
        )

    def _open_sync(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreOpenError(
                f"cannot create data directory {directory}: {exc.strerror or exc}"
            ) from exc
        if not directory.is_dir():
            raise StoreOpenError(f"data directory {directory} is not a directory")
        self._check_writable()
        try:
            self._lock.acquire()
        except LockHeld:
            raise StoreOpenError(
                f"{self.path} is in use by another hubbub server (pid {self._lock.holder()});"
                " stop it or choose another data directory"
            ) from None
        except OSError as exc:
            raise StoreOpenError(
                f"data directory {directory} is not writable: {exc.strerror or exc}"
            ) from exc
        try:
            self._wconn = self._connect_writer()
            self._rows = self._load_rooms(self._wconn)
        except BaseException:
            if self._wconn is not None:
                self._wconn.close()
                self._wconn = None
            self._lock.release()
            raise

    def _check_writable(self) -> None:
        """Name the file that cannot be written, rather than blaming the directory: the
        database, its WAL and shared-memory files and the lock file must all be writable."""
        path = self.path
        for name in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock"))):
            try:
                fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise StoreOpenError(
                        f"{name} is read-only ({exc.strerror}); make it writable by the user"
                        " hubbub runs as"
                    ) from exc
                raise StoreOpenError(f"cannot open {name}: {exc.strerror or exc}") from exc
            os.close(fd)

    def _connect_writer(self) -> sqlite3.Connection:
        path = self.path
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            raise StoreOpenError(f"{path} is not a regular file")
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000, cached_statements=STATEMENT_CACHE,
            )
        except sqlite3.Error as exc:
            raise StoreOpenError(f"cannot open {path}: {exc}") from exc
        try:
            self._check_file(conn)
            # Only now may anything be written: the file is ours and of a version we know.
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreOpenError(f"{path}: the file system does not support WAL mode")
            sync = "FULL" if self.durability == "fsync" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            # Checkpoints normally run on their own thread (see checkpointer.py); this
            # threshold only matters if that thread falls behind.
            conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES:d}")
            applied = migrate(conn)
            if applied:
                log.info("migrated %s to schema version %d", path, applied[-1])
            # Rooms that never had a message (earlier versions wrote one on every join):
            # now they only ever live on the loop, until their first message.
            unused = conn.execute("DELETE FROM rooms WHERE last_offset = 0").rowcount
            if unused:
                log.info("forgot %d rooms of %s that never had a message", unused, path)
        except StoreOpenError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreOpenError(f"cannot open {path}: {exc}") from exc
        return conn

    def _check_file(self, conn: sqlite3.Connection) -> None:
        """Refuse, without writing a byte, files that are not hubbub databases we understand."""
        path = self.path
        try:
            version = schema_version(conn)
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreOpenError(
                f"{path} is corrupt or not a SQLite database ({exc}); move it aside to start"
                " with empty history"
            ) from exc
        if version > SCHEMA_VERSION:
            raise StoreOpenError(
                f"{path} has schema version {version}, newer than this hubbub understands"
                f" ({SCHEMA_VERSION}); upgrade hubbub"
            )
        if version == 0 and tables:
            raise StoreOpenError(
                f"{path} is a SQLite database but not a hubbub one (it has tables and no"
                " schema version); move it aside"
            )

    @staticmethod
    def _load_rooms(conn: sqlite3.Connection) -> dict[str, _Row]:
        rows: dict[str, _Row] = {}
        for name, epoch, last in conn.execute("SELECT name, epoch, last_offset FROM rooms"):
            # One index seek per room rather than a GROUP BY over every message.
            (first,) = conn.execute(
                "SELECT min(offset) FROM messages WHERE room = ?", (name,)
            ).fetchone()
            rows[name] = _Row(epoch, last, last + 1 if first is None else first)
        return rows

    async def close(self) -> None:
        if not self._open or self._closing:
            return
        self._closing = True
        assert self._writer is not None and self._readers is not None
        # The stop request queues behind every pending write, so they all finish first.
        self._queue.put(_Stop())
        await asyncio.to_thread(self._writer.join)
        assert self._checkpointer is not None
        await asyncio.to_thread(self._checkpointer.stop)
        readers = self._readers
        await asyncio.to_thread(readers.shutdown, True)
        with self._rconns_lock:
            for conn in self._rconns:
                conn.close()
            self._rconns.clear()
        self._lock.release()
        self._open = False
        log.info("SQLite store %s closed after %d appends in %d commits", self.path,
                 self.appends, self.commits)

    # ---------------------------------------------------------------- writes

    def _check_usable(self) -> None:
        if not self._open or self._closing:
            raise StoreError("the message store is not open")

    def usable(self) -> bool:
        writer = self._writer
        return (self._open and not self._closing and not self.failing
                and writer is not None and writer.is_alive())

    def submit(self, draft: Draft, then: Outcome) -> None:
        try:
            self._check_usable()
            data_json = None if draft.data is None else encode_data(draft.data)
        except StoreError as exc:
            self._report(then, exc)
            return
        room = draft.room
        state = self._states.get(room)
        first = state is None or state.offset == 0
        if first:
            # The room's first messages: until one is stored, `discard` must keep it.
            if state is None:
                state = self._states[room] = _unwritten_room()
            self._first_appends[room] = self._first_appends.get(room, 0) + 1
        assert state is not None
        self._queue.put(_Append(draft, data_json, state.epoch, first, then))

    def _settled(self, op: _Append, outcome: Message | StoreError) -> None:
        """Report one append's outcome; on the loop, in the step that resolves its batch."""
        if op.first:
            left = self._first_appends[op.draft.room] - 1
            if left:
                self._first_appends[op.draft.room] = left
            else:
                del self._first_appends[op.draft.room]
        self._report(op.then, outcome)

    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        state = self._states.get(room)
        if state is None and create:
            # Only on the loop: the file gets the room with its first message.
            state = self._states[room] = _unwritten_room()
        return state

    def discard(self, room: str) -> None:
        if room not in self._first_appends:
            state = self._states.get(room)
            if state is not None and state.offset == 0:
                del self._states[room]

    async def room_count(self) -> int:
        return len(self._states)

    async def trim(self, *, max_count: int | None, max_age_ms: int | None, now_ms: int) -> int:
        if (max_count is not None and max_count < 0) or (max_age_ms is not None and max_age_ms < 0):
            raise ValueError("max_count and max_age_ms must be >= 0")
        if max_count is None and max_age_ms is None:
            return 0
        self._check_usable()
        loop = asyncio.get_running_loop()
        pending = list(self._states)
        removed = 0
        # One bounded transaction per request; appends queued meanwhile go in between.
        while pending:
            future: asyncio.Future[tuple[int, list[str]]] = loop.create_future()
            self._queue.put(_Trim(pending, max_count, max_age_ms, now_ms, future))
            step, pending = await future
            removed += step
        return removed

    # ---------------------------------------------------------------- writer thread

    def _run_writer(self) -> None:
        conn = self._wconn
        assert conn is not None
        carry: _Op | None = None
        try:
            while True:
                op = carry if carry is not None else self._queue.get()
                carry = None
                if isinstance(op, _Stop):
                    break
                if isinstance(op, _Trim):
                    self._guard(self._trim_step, conn, op)
                    continue
                batch: list[_Append] = [op]
                carry = self._gather(batch)
                self._guard(self._commit, conn, batch)
        finally:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.exception("WAL checkpoint on close failed (the WAL is replayed on open)")
            conn.close()

    def _gather(self, batch: list[_Append]) -> _Op | None:
        """Add queued appends to `batch`; return a non-batchable request met on the way.

        In `batch` mode it keeps gathering until the commit window closes, but stops early
        once no append arrived during a `BATCH_IDLE_GAP_MS` pause: when every publisher is
        waiting for its ack nothing more can come, and waiting would only add latency. It
        pauses with `time.sleep` rather than a blocking `get`, because a thread blocked in
        `get` is woken by every single `put`: a context switch and a GIL hand-over per
        append instead of per pause.
        """
        deadline = time.monotonic() + self._window
        paused = False
        while True:
            grew = False
            while len(batch) < self._max_batch:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(op, _Trim | _Stop):
                    return op
                batch.append(op)
                grew = True
            if len(batch) >= self._max_batch or (paused and not grew):
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(remaining, BATCH_IDLE_GAP_MS / 1000))
            paused = True

    def _guard(self, step: Callable[[sqlite3.Connection, _Step], None],
               conn: sqlite3.Connection, arg: _Step) -> None:
        # A bug in a step must fail its requests, not kill the only writer thread.
        try:
            step(conn, arg)
        except Exception:
            log.exception("SQLite writer step failed")
            # A transaction left open would make every later BEGIN fail.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback after a failed writer step failed")
            self._fail(arg if isinstance(arg, list) else [arg],
                       "internal error in the message store")

    def _commit(self, conn: sqlite3.Connection, batch: list[_Append]) -> None:
        staged: dict[str, _Row] = {}
        messages: list[tuple[Any, ...]] = []
        results: list[Message] = []
        for op in batch:
            room = op.draft.room
            row = staged.get(room)
            if row is None:
                current = self._rows.get(room)
                row = _Row(op.epoch, 0, 1) if current is None else replace(current)
                staged[room] = row
            row.last += 1
            d = op.draft
            messages.append((room, row.last, d.id, d.nick, d.sender, d.text, op.data_json, d.ts))
            results.append(Message.from_draft(d, offset=row.last, epoch=row.epoch))
        created = now_ms()
        new_rooms = [(room, row.epoch, 0, created) for room, row in staged.items()
                     if room not in self._rows]
        started = time.perf_counter()
        try:
            if not new_rooms and len(messages) <= ROWS_PER_STATEMENT:
                # The usual commit: one INSERT, its own transaction; the schema's trigger
                # advances each room's `last_offset` inside it.
                insert_rows(conn, MESSAGES_INSERT, messages)
            else:
                conn.execute("BEGIN IMMEDIATE")
                insert_rows(conn, ROOMS_INSERT, new_rooms)
                insert_rows(conn, MESSAGES_INSERT, messages)
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - started
        except sqlite3.Error as exc:
            self.failing = True
            log.error("commit of %d writes failed: %s", len(batch), exc)
            self._rollback(conn, staged)
            self._fail(batch, f"the message store could not commit: {exc}")
            return
        self._rows.update(staged)
        self.commits += 1
        self.appends += len(messages)
        if self._checkpointer is not None:
            self._checkpointer.note_commit()
        states = {room: row.state() for room, row in staged.items()}
        self._hand_over(self._stored_batch, states, batch, results)
        self.failing = False
        if self.on_commit is not None:  # after `_hand_over`: it must not delay the acks
            self.on_commit(elapsed, len(batch))

    def _rollback(self, conn: sqlite3.Connection, touched: Iterable[str]) -> None:
        """Undo a failed transaction and re-read the touched rooms' counters from the file.

        Re-reading keeps the counters equal to what is stored even if a failed COMMIT did
        in fact reach the file (possible after some I/O errors); offsets are then never
        handed out twice.
        """
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for room in touched:
                found = conn.execute(
                    "SELECT epoch, last_offset FROM rooms WHERE name = ?", (room,)
                ).fetchone()
                current = self._rows.get(room)
                if found is None:
                    if current is not None:
                        log.error("room %r vanished from %s", room, self.path)
                    continue
                epoch, last = found
                if current is None or (current.epoch, current.last) != (epoch, last):
                    log.warning("room %r counters re-read from %s after a failed commit",
                                room, self.path)
                    first = current.first if current is not None else 1
                    self._rows[room] = _Row(epoch, last, min(first, last + 1))
        except sqlite3.Error:
            log.exception("rollback after a failed commit failed")

    def _trim_step(self, conn: sqlite3.Connection, op: _Trim) -> None:
        pending = list(op.rooms)
        staged: dict[str, _Row] = {}
        budget = TRIM_CHUNK
        removed = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            while pending and budget > 0:
                room = pending[0]
                row = staged.get(room) or self._rows.get(room)
                boundary = None if row is None else self._trim_boundary(conn, room, row, op, budget)
                if row is None or boundary is None:
                    pending.pop(0)
                    continue
                cursor = conn.execute(
                    "DELETE FROM messages WHERE room = ? AND offset < ?", (room, boundary)
                )
                staged[room] = _Row(row.epoch, row.last, boundary)
                removed += cursor.rowcount
                budget -= boundary - row.first
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("retention transaction failed: %s", exc)
            self._rollback(conn, ())
            self._fail([op], f"retention failed: {exc}")
            return
        self._rows.update(staged)
        states = {room: row.state() for room, row in staged.items()}
        self._hand_over(self._trimmed, states, op, (removed, pending))

    @staticmethod
    def _trim_boundary(conn: sqlite3.Connection, room: str, row: _Row, op: _Trim,
                       budget: int) -> int | None:
        """The offset below which to delete now (at most `budget` rows), or None if done.

        Same rule as `MemoryStore.trim`: drop the oldest messages beyond `max_count`, and
        the run of oldest messages older than the cut-off (stopping at the first newer one).
        Offsets are contiguous from `row.first`, so offset arithmetic counts rows.
        """
        end = row.last + 1
        window = min(end, row.first + budget)
        target = row.first
        if op.max_count is not None:
            target = max(target, end - op.max_count)
        if op.max_age_ms is not None:
            found = conn.execute(
                "SELECT offset FROM messages WHERE room = ? AND offset >= ? AND offset < ?"
                " AND ts >= ? ORDER BY offset LIMIT 1",
                (room, row.first, window, op.now_ms - op.max_age_ms),
            ).fetchone()
            target = max(target, window if found is None else found[0])
        boundary = min(target, window)
        return boundary if boundary > row.first else None

    def _hand_over(self, step: Callable[..., None], *args: Any) -> None:
        """Run `step(*args)` on the store's event loop, in one callback: a whole batch's
        outcome is one loop wake-up, whatever its size."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(step, *args)
        except RuntimeError:
            log.error("event loop closed before store results could be reported")

    def _stored_batch(self, states: dict[str, RoomState], batch: list[_Append],
                      messages: list[Message]) -> None:
        # One step, in the order the store contract asks for: the batch's rooms advance,
        # its messages reach the listener, then each append's outcome is reported.
        self._states.update(states)
        self._stored(messages)
        for op, message in zip(batch, messages, strict=True):
            self._settled(op, message)

    def _trimmed(self, states: dict[str, RoomState], op: _Trim,
                 result: tuple[int, list[str]]) -> None:
        self._states.update(states)
        if not op.future.done():
            op.future.set_result(result)

    def _fail(self, ops: Sequence[_Op], reason: str) -> None:
        """Refuse every request of a failed step, each with the same reason."""
        requests = [op for op in ops if not isinstance(op, _Stop)]
        if requests:
            self._hand_over(self._refuse, requests, reason)

    def _refuse(self, ops: list[_Append | _Trim], reason: str) -> None:
        for op in ops:
            if isinstance(op, _Append):
                self._settled(op, StoreError(reason))
            elif not op.future.done():
                op.future.set_exception(StoreError(reason))

    # ---------------------------------------------------------------- reads

    async def rooms(self) -> dict[str, RoomState]:
        return dict(self._states)

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
        unwritten = self._states.get(room)
        if unwritten is not None and unwritten.offset == 0:
            return HistoryPage(unwritten, [], False)  # joined, never written: not in the file
        assert self._readers is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._readers, self._read_sync, room, after, before, limit
        )

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                   check_same_thread=False)
            with self._rconns_lock:
                self._rconns.append(conn)
            self._local.conn = conn
        return conn

    def _read_sync(self, room: str, after: int | None, before: int | None,
                   limit: int) -> HistoryPage | None:
        conn = self._reader()
        lo = -1 if after is None else max(min(after, _MAX_OFFSET), -_MAX_OFFSET)
        hi = _MAX_OFFSET if before is None else max(min(before, _MAX_OFFSET), -_MAX_OFFSET)
        try:
            # One read transaction: the page and the state come from the same snapshot.
            conn.execute("BEGIN")
            try:
                found = conn.execute(
                    "SELECT epoch, last_offset FROM rooms WHERE name = ?", (room,)
                ).fetchone()
                if found is None:
                    return None
                epoch, last = found
                (first,) = conn.execute(
                    "SELECT min(offset) FROM messages WHERE room = ?", (room,)
                ).fetchone()
                order = "ASC" if after is not None else "DESC"
                # One row more than asked says whether more exist in that direction.
                rows = conn.execute(
                    "SELECT offset, id, nick, sender, text, data, ts FROM messages"
                    f" WHERE room = ? AND offset > ? AND offset < ? ORDER BY offset {order}"
                    " LIMIT ?",
                    (room, lo, hi, limit + 1),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("history read of room %r failed", room)
            raise StoreError(f"the message store could not read history: {exc}") from exc
        has_more = len(rows) > limit
        rows = rows[:limit]
        if after is None:
            rows.reverse()
        state = RoomState(epoch, last, last + 1 if first is None else first)
        messages = [
            Message(room, offset, epoch, id_, nick, sender, text,
                    None if data is None else decode_data(data), ts)
            for offset, id_, nick, sender, text, data, ts in rows
        ]
        return HistoryPage(state, messages, has_more)


def _unwritten_room() -> RoomState:
    """A room joined before it has a message: its epoch is fixed now, on the loop, and
    written with its first message; until then it is nowhere in the file."""
    return RoomState(new_epoch(), 0, 1)


__all__ = ["SQLiteStore"]
