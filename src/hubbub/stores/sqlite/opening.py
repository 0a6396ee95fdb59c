"""Opening the database file: refuse what is not ours, then make it ready for the writer.

Nothing is written until the file is known to be a hubbub database of a version this code
understands, in a directory this process may write, and not in use by another server.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Literal

from hubbub.core.store import StoreOpenError
from hubbub.stores.sqlite.lockfile import LockFile, LockHeld
from hubbub.stores.sqlite.migrations import SCHEMA_VERSION, migrate, schema_version
from hubbub.stores.sqlite.sql import STATEMENT_CACHE
from hubbub.stores.sqlite.writer import RoomRow

log = logging.getLogger("hubbub.stores.sqlite")  # the name operators see in the logs

Durability = Literal["fsync", "batch"]

WRITER_AUTOCHECKPOINT_PAGES = 20_000
"""The writer's own automatic checkpoint threshold (80 MB of WAL at 4 KiB pages): only a
safety net, normally the checkpoint thread keeps the WAL far smaller."""


def open_file(path: Path, lock: LockFile, *, durability: Durability,
              busy_timeout_s: float) -> tuple[sqlite3.Connection, dict[str, RoomRow]]:
    """Take `lock`, open `path` as the writer's connection and load every room's counters.

    Raises `StoreOpenError` with a one-line reason; on any failure the lock is released
    and the connection closed.
    """
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreOpenError(
            f"cannot create data directory {directory}: {exc.strerror or exc}"
        ) from exc
    if not directory.is_dir():
        raise StoreOpenError(f"data directory {directory} is not a directory")
    _check_writable(path)
    try:
        lock.acquire()
    except LockHeld:
        raise StoreOpenError(
            f"{path} is in use by another hubbub server (pid {lock.holder()});"
            " stop it or choose another data directory"
        ) from None
    except OSError as exc:
        raise StoreOpenError(
            f"data directory {directory} is not writable: {exc.strerror or exc}"
        ) from exc
    conn: sqlite3.Connection | None = None
    try:
        conn = _connect_writer(path, durability, busy_timeout_s)
        return conn, _load_rooms(conn)
    except BaseException:
        if conn is not None:
            conn.close()
        lock.release()
        raise


def _check_writable(path: Path) -> None:
    """Name the file that cannot be written, rather than blaming the directory: the
    database, its WAL and shared-memory files and the lock file must all be writable."""
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


def _connect_writer(path: Path, durability: Durability,
                    busy_timeout_s: float) -> sqlite3.Connection:
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise StoreOpenError(f"{path} is not a regular file")
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False,
            timeout=busy_timeout_s, cached_statements=STATEMENT_CACHE,
        )
    except sqlite3.Error as exc:
        raise StoreOpenError(f"cannot open {path}: {exc}") from exc
    try:
        _check_file(path, conn)
        # Only now may anything be written: the file is ours and of a version we know.
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreOpenError(f"{path}: the file system does not support WAL mode")
        sync = "FULL" if durability == "fsync" else "NORMAL"
        conn.execute(f"PRAGMA synchronous={sync}")
        # Checkpoints normally run on their own thread (see checkpointer.py); this
        # threshold only matters if that thread falls behind.
        conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES:d}")
        applied = migrate(conn)
        if applied:
            log.info("migrated %s to schema version %d", path, applied[-1])
        # Rooms that never had a message (earlier versions wrote one on every join): now
        # such rooms live on the loop only (`handoff._unwritten_room`).
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


def _check_file(path: Path, conn: sqlite3.Connection) -> None:
    """Refuse, without writing a byte, files that are not hubbub databases we understand."""
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


def _load_rooms(conn: sqlite3.Connection) -> dict[str, RoomRow]:
    rows: dict[str, RoomRow] = {}
    for name, epoch, last in conn.execute("SELECT name, epoch, last_offset FROM rooms"):
        # One index seek per room rather than a GROUP BY over every message.
        (first,) = conn.execute(
            "SELECT min(offset) FROM messages WHERE room = ?", (name,)
        ).fetchone()
        rows[name] = RoomRow(epoch, last, last + 1 if first is None else first)
    return rows
