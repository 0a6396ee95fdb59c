"""Stores under test: every contract test runs against each implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubbub.core.store import MessageStore
from hubbub.stores.memory import MemoryStore
from hubbub.stores.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite-fsync", "sqlite-batch"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MessageStore]:
    kind: str = request.param
    made: MessageStore
    if kind == "memory":
        made = MemoryStore()
    else:
        # A short window keeps the batch-mode tests quick; the behaviour is the same.
        made = SQLiteStore(tmp_path / "data" / "hubbub.sqlite3",
                           durability="fsync" if kind == "sqlite-fsync" else "batch",
                           commit_window_ms=0.5)
    await made.open()
    yield made
    await made.close()
