"""The SQLite schema, as an ordered list of versioned migrations.

The schema version lives in `PRAGMA user_version` (0 for a new, empty file). Migration *n*
takes the database from version *n - 1* to *n*; each runs in one transaction together with
the `user_version` bump, so a crash mid-migration leaves the previous version intact.
Migrations are only ever appended: an existing entry is never edited once released, because
databases in the field have already run it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "rooms and messages",
        (
            # `last_offset` is kept here rather than derived from `messages`, because
            # retention may delete every message of a room and offsets must not restart.
            """
            CREATE TABLE rooms (
                name        TEXT PRIMARY KEY,
                epoch       TEXT NOT NULL,
                last_offset INTEGER NOT NULL DEFAULT 0,
                created_ms  INTEGER NOT NULL
            ) WITHOUT ROWID
            """,
            # Clustered on (room, offset): appends go to the end of a room's range and
            # history pages are one range scan. `data` is JSON text, NULL when absent.
            """
            CREATE TABLE messages (
                room   TEXT NOT NULL,
                offset INTEGER NOT NULL,
                id     TEXT NOT NULL,
                nick   TEXT NOT NULL,
                sender TEXT,
                text   TEXT,
                data   TEXT,
                ts     INTEGER NOT NULL,
                PRIMARY KEY (room, offset)
            ) WITHOUT ROWID
            """,
        ),
    ),
    Migration(
        2,
        "rooms.last_offset follows the messages inserted",
        (
            # So that a commit of messages into rooms that already exist is ONE statement,
            # its own transaction: the writer thread retakes the GIL once per statement,
            # and each retake may wait for the event loop's switch interval
            # (docs/storage.md, "Where the stalls came from").
            """
            CREATE TRIGGER messages_advance_room AFTER INSERT ON messages
            BEGIN
                UPDATE rooms SET last_offset = NEW.offset
                WHERE name = NEW.room AND last_offset < NEW.offset;
            END
            """,
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def _check_order() -> None:
    for position, migration in enumerate(MIGRATIONS, start=1):
        if migration.version != position:
            raise AssertionError(f"migration {migration.version} is at position {position}")


_check_order()


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration newer than the file's version; return the versions applied.

    `conn` must be in autocommit mode (`isolation_level=None`) so that each migration's
    transaction is exactly the BEGIN/COMMIT issued here.
    """
    applied: list[int] = []
    current = schema_version(conn)
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                conn.execute(statement)
            # PRAGMA user_version is written in the same transaction as the schema change.
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied
