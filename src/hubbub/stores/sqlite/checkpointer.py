"""WAL checkpoints on their own thread, so that commits never wait for one.

In WAL mode every commit appends pages to `-wal`; a checkpoint copies them back into the
database file and fsyncs it. SQLite's automatic checkpoint runs inside the commit that
crosses the threshold, so that commit (and every append in its batch, and every append
queued behind it) waits for the copy and an fsync. Here a separate connection runs
`PASSIVE` checkpoints, which never block the writer or readers, after every
`every_commits` commits or `interval_s` seconds, whichever comes first. The writer keeps a
much higher automatic threshold as a safety net in case this thread falls behind.

Checkpoints do not change what is durable: a commit is durable once its WAL frames are
(fsynced in `fsync` mode); a crash during a checkpoint is recovered from the WAL on open.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, path: Path, *, every_commits: int = 100, interval_s: float = 1.0,
                 busy_timeout_s: float = 5.0) -> None:
        self._path = path
        self._every = every_commits
        self._interval = interval_s
        self._busy_timeout = busy_timeout_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._commits = 0  # writer thread only
        self._thread = threading.Thread(target=self._run, name="hubbub-sqlite-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def note_commit(self) -> None:
        """Called by the writer after each commit; cheap when no checkpoint is due."""
        self._commits += 1
        if self._commits >= self._every:
            self._commits = 0
            self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                   timeout=self._busy_timeout)
        except sqlite3.Error:
            log.exception("cannot open a checkpoint connection; the writer checkpoints itself")
            return
        try:
            while not self._stopping.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    log.exception("WAL checkpoint failed; retrying later")
        finally:
            conn.close()
