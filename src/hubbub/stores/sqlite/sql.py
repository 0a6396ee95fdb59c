"""Multi-row INSERT statements for the writer: the rows of one commit in as few statements
as the GIL and SQLite's parameter bound allow."""

from __future__ import annotations

import functools
import sqlite3
from typing import Any

ROOMS_INSERT = "INSERT INTO rooms (name, epoch, last_offset, created_ms) VALUES "
MESSAGES_INSERT = "INSERT INTO messages (room, offset, id, nick, sender, text, data, ts) VALUES "

ROWS_PER_STATEMENT = 64
"""Rows in one multi-row INSERT. Python's sqlite3 drops the GIL around every
`sqlite3_step`, once per row with `executemany`; each time the event loop thread takes it
and the writer then waits for it back (a context switch, or up to the 5 ms switch
interval). One statement per up to 64 rows makes that once per chunk. Larger statements
were slower (binding their parameters holds the GIL: 512-row commits took 17 ms instead of
6), and 64 rows x 8 columns stays below the 999 bound parameters of old SQLite builds."""

STATEMENT_CACHE = 2 * ROWS_PER_STATEMENT + 16
"""Prepared statements the writer keeps: one per chunk size of each INSERT, and a few more."""


@functools.lru_cache(maxsize=STATEMENT_CACHE)
def _multi_row_sql(head: str, width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return head + ", ".join([one] * rows)


def insert_rows(conn: sqlite3.Connection, head: str, rows: list[tuple[Any, ...]]) -> None:
    # Chunks of exactly the rows left (up to the bound): a commit of up to 64 rows is one
    # statement. At most 64 distinct statements per table, which the writer's statement
    # cache holds.
    for index in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[index : index + ROWS_PER_STATEMENT]
        sql = _multi_row_sql(head, len(chunk[0]), len(chunk))
        conn.execute(sql, [value for row in chunk for value in row])
