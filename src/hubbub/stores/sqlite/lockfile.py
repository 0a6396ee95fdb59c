"""An exclusive, advisory lock on a data directory, so that two servers never share it.

SQLite's own locking lets two processes write the same file one transaction at a time,
which would let two servers assign the same offsets from their in-memory counters. A
`flock` on a side file is released by the kernel when the holder dies (even by SIGKILL),
so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockHeld(Exception):
    """Another process holds the lock."""


class LockFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting; `LockHeld` if another process has it.

        Raises `OSError` if the file cannot be created or opened.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(str(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder's PID helps an operator find the other server; it is informative only.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def holder(self) -> str:
        """The PID written by the current holder, or '?' if unreadable."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
