"""The writer thread: the only write connection, and group commit.

The loop puts requests on one queue (`Append`, `Trim`, `Stop`) and returns at once. The
writer takes everything queued (up to `max_batch`, and in `batch` durability waiting up to
the commit window for more), writes it in ONE transaction, assigning offsets in queue order,
and hands the whole batch back to the event loop with one `call_soon_threadsafe`
(`LoopSide.hand_over`). Concurrent appends therefore share one commit, one fsync and one
loop wake-up instead of queueing for one each.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hubbub.core.message import Draft, Message, now_ms
from hubbub.core.store import MessageStore, Outcome, RoomState
from hubbub.stores.sqlite.checkpointer import Checkpointer
from hubbub.stores.sqlite.retention import Trim, trim_step
from hubbub.stores.sqlite.sql import MESSAGES_INSERT, ROOMS_INSERT, ROWS_PER_STATEMENT, insert_rows

if TYPE_CHECKING:
    from hubbub.stores.sqlite.handoff import LoopSide

log = logging.getLogger("hubbub.stores.sqlite")  # the name operators see in the logs

BATCH_IDLE_GAP_MS = 0.2
"""In `batch` mode, the writer stops gathering once the queue stayed empty this long: under
load appends arrive far more often than this, and when they do not, nobody is left to wait
for (closed-loop publishers are all waiting for acks)."""


@dataclass(slots=True)
class RoomRow:
    """The writer's counters for a room (why there is a second copy: see `LoopSide`)."""

    epoch: str
    last: int
    first: int

    def state(self) -> RoomState:
        return RoomState(self.epoch, self.last, self.first)


@dataclass(slots=True)
class Append:
    draft: Draft
    data_json: str | None
    epoch: str
    """The room's epoch as the loop knows it (for a first message: see `_unwritten_room`)."""
    first: bool
    """Submitted while the room had no stored message (counted by `LoopSide.place`)."""
    then: Outcome


class Stop:
    pass


Request = Append | Trim | Stop
_Step = TypeVar("_Step", list[Append], Trim)
"""What one writer step takes: a batch of appends, or one retention request."""


class Writer:
    """Owns the write connection and `rows`, the rooms' counters, on its own thread.

    `window_s` is how long a batch waits for more appends after its first (0 in `fsync`
    durability); `max_batch` bounds one transaction, and so how long the appends behind it
    wait. `store` is read for its `on_commit` watcher, which may be set at any time.
    """

    def __init__(self, conn: sqlite3.Connection, rows: dict[str, RoomRow],
                 requests: queue.SimpleQueue[Request], side: LoopSide, *,
                 path: Path, window_s: float, max_batch: int, checkpointer: Checkpointer,
                 store: MessageStore) -> None:
        self._conn = conn
        self._rows = rows
        self._queue = requests
        self._path = path
        self._window = window_s
        self._max_batch = max_batch
        self._checkpointer = checkpointer
        self._store = store
        # Bound once: every commit calls them (the hand-off is the hot path).
        self._hand_over = side.hand_over
        self._stored_batch = side.stored_batch
        self._trimmed = side.trimmed
        self._refuse = side.refuse
        self._thread = threading.Thread(target=self._run, name="hubbub-sqlite-writer",
                                        daemon=True)
        self.commits = 0
        """Transactions committed (appends and room creations)."""
        self.appends = 0
        """Appends committed; `appends / commits` is the mean group-commit size."""
        self.failing = False
        """True from a failed commit until the next one succeeds."""

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Blocks until every request queued before it is done and the connection closed."""
        # The stop request queues behind every pending write, so they all finish first.
        self._queue.put(Stop())
        self._thread.join()

    def _run(self) -> None:
        conn = self._conn
        carry: Request | None = None
        try:
            while True:
                op = carry if carry is not None else self._queue.get()
                carry = None
                if isinstance(op, Stop):
                    break
                if isinstance(op, Trim):
                    self._guard(self._retain, conn, op)
                    continue
                batch: list[Append] = [op]
                carry = self._gather(batch)
                self._guard(self._commit, conn, batch)
        finally:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                log.exception("WAL checkpoint on close failed (the WAL is replayed on open)")
            conn.close()

    def _gather(self, batch: list[Append]) -> Request | None:
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
                if isinstance(op, Trim | Stop):
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

    def _commit(self, conn: sqlite3.Connection, batch: list[Append]) -> None:
        staged: dict[str, RoomRow] = {}
        messages: list[tuple[Any, ...]] = []
        results: list[Message] = []
        for op in batch:
            room = op.draft.room
            row = staged.get(room)
            if row is None:
                current = self._rows.get(room)
                row = RoomRow(op.epoch, 0, 1) if current is None else replace(current)
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
        self._checkpointer.note_commit()
        states = {room: row.state() for room, row in staged.items()}
        self._hand_over(self._stored_batch, states, batch, results)
        self.failing = False
        on_commit = self._store.on_commit
        if on_commit is not None:  # after the hand-over: it must not delay the acks
            on_commit(elapsed, len(batch))

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
                        log.error("room %r vanished from %s", room, self._path)
                    continue
                epoch, last = found
                if current is None or (current.epoch, current.last) != (epoch, last):
                    log.warning("room %r counters re-read from %s after a failed commit",
                                room, self._path)
                    first = current.first if current is not None else 1
                    self._rows[room] = RoomRow(epoch, last, min(first, last + 1))
        except sqlite3.Error:
            log.exception("rollback after a failed commit failed")

    def _retain(self, conn: sqlite3.Connection, op: Trim) -> None:
        try:
            firsts, removed, pending = trim_step(conn, op, self._rows)
        except sqlite3.Error as exc:
            log.error("retention transaction failed: %s", exc)
            self._rollback(conn, ())
            self._fail([op], f"retention failed: {exc}")
            return
        rows = self._rows
        for room, first in firsts.items():
            rows[room].first = first
        states = {room: rows[room].state() for room in firsts}
        self._hand_over(self._trimmed, states, op, (removed, pending))

    def _fail(self, ops: Sequence[Append | Trim], reason: str) -> None:
        """Refuse every request of a failed step, each with the same reason."""
        if ops:
            self._hand_over(self._refuse, list(ops), reason)
