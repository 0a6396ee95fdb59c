"""History reads: a small thread pool, each thread with its own read-only connection.

WAL lets reads run while the writer commits, and every read transaction sees every commit
that finished before it began, hence every acknowledged append.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hubbub.core.message import Message
from hubbub.core.store import HistoryPage, RoomState, StoreError
from hubbub.stores.sqlite.codec import decode_data

log = logging.getLogger("hubbub.stores.sqlite")  # the name operators see in the logs

_MAX_OFFSET = 2**62
"""Offsets from the wire are clamped to this so that SQLite's 64-bit integers never
overflow; no room reaches it."""


class Readers:
    def __init__(self, path: Path, *, threads: int) -> None:
        self._uri = path.resolve().as_uri() + "?mode=ro"
        self._pool = ThreadPoolExecutor(max_workers=threads,
                                        thread_name_prefix="hubbub-sqlite-read")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    async def read(self, room: str, after: int | None, before: int | None,
                   limit: int) -> HistoryPage | None:
        """`MessageStore.read`, from the file, on one of the pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read, room, after, before, limit)

    def close(self) -> None:
        """Blocks until running reads finish, then closes every connection."""
        self._pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._uri, uri=True, isolation_level=None,
                                   check_same_thread=False)
            with self._conns_lock:
                self._conns.append(conn)
            self._local.conn = conn
        return conn

    def _read(self, room: str, after: int | None, before: int | None,
              limit: int) -> HistoryPage | None:
        conn = self._connection()
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
