"""Retention: the oldest messages deleted in small transactions between the writer's commits.

`trim` runs on the event loop and asks the writer for one bounded step at a time; the writer
runs `trim_step` in its own thread, in its own transaction, and hands the result back. So an
append queued behind retention waits for at most one small transaction, never a whole pass.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubbub.stores.sqlite.writer import RoomRow

TRIM_CHUNK = 2000
"""Most rows one retention transaction deletes, so that appends queued behind it wait for
at most one small transaction rather than for a whole retention pass."""


@dataclass(slots=True)
class Trim:
    """One retention step asked of the writer; its future gets (removed, rooms left)."""

    rooms: list[str]
    max_count: int | None
    max_age_ms: int | None
    now_ms: int
    future: asyncio.Future[tuple[int, list[str]]]


def wanted(max_count: int | None, max_age_ms: int | None) -> bool:
    """Whether these limits ask for anything; `ValueError` if one is negative."""
    if (max_count is not None and max_count < 0) or (max_age_ms is not None and max_age_ms < 0):
        raise ValueError("max_count and max_age_ms must be >= 0")
    return max_count is not None or max_age_ms is not None


async def trim(put: Callable[[Trim], None], rooms: list[str], *, max_count: int | None,
               max_age_ms: int | None, now_ms: int) -> int:
    """Apply retention to `rooms` through the writer's queue (`put`); return rows removed."""
    loop = asyncio.get_running_loop()
    pending = rooms
    removed = 0
    # One bounded transaction per request; appends queued meanwhile go in between.
    while pending:
        future: asyncio.Future[tuple[int, list[str]]] = loop.create_future()
        put(Trim(pending, max_count, max_age_ms, now_ms, future))
        step, pending = await future
        removed += step
    return removed


def trim_step(conn: sqlite3.Connection, op: Trim,
              rows: Mapping[str, RoomRow]) -> tuple[dict[str, int], int, list[str]]:
    """Delete up to `TRIM_CHUNK` rows of `op.rooms` in one transaction (writer thread).

    Returns each touched room's new first offset, the rows removed and the rooms not yet
    done. Raises `sqlite3.Error` with the transaction left for the writer to roll back.
    """
    pending = list(op.rooms)
    firsts: dict[str, int] = {}
    budget = TRIM_CHUNK
    removed = 0
    conn.execute("BEGIN IMMEDIATE")
    while pending and budget > 0:
        room = pending[0]
        row = rows.get(room)
        if row is None:
            pending.pop(0)
            continue
        first = firsts.get(room, row.first)
        boundary = _trim_boundary(conn, room, first, row.last, op, budget)
        if boundary is None:
            pending.pop(0)
            continue
        cursor = conn.execute(
            "DELETE FROM messages WHERE room = ? AND offset < ?", (room, boundary)
        )
        firsts[room] = boundary
        removed += cursor.rowcount
        budget -= boundary - first
    conn.execute("COMMIT")
    return firsts, removed, pending


def _trim_boundary(conn: sqlite3.Connection, room: str, first: int, last: int, op: Trim,
                   budget: int) -> int | None:
    """The offset below which to delete now (at most `budget` rows), or None if done.

    Same rule as `MemoryStore.trim`: drop the oldest messages beyond `max_count`, and
    the run of oldest messages older than the cut-off (stopping at the first newer one).
    Offsets are contiguous from `first`, so offset arithmetic counts rows.
    """
    end = last + 1
    window = min(end, first + budget)
    target = first
    if op.max_count is not None:
        target = max(target, end - op.max_count)
    if op.max_age_ms is not None:
        found = conn.execute(
            "SELECT offset FROM messages WHERE room = ? AND offset >= ? AND offset < ?"
            " AND ts >= ? ORDER BY offset LIMIT 1",
            (room, first, window, op.now_ms - op.max_age_ms),
        ).fetchone()
        target = max(target, window if found is None else found[0])
    boundary = min(target, window)
    return boundary if boundary > first else None
