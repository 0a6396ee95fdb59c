"""Which broker and message store the settings ask for, and where their data lives."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from hubbub.brokers.local import LocalBroker
from hubbub.core.broker import Broker
from hubbub.core.store import MessageStore
from hubbub.server.settings import Settings
from hubbub.stores.memory import MemoryStore

DATABASE_NAME = "hubbub.sqlite3"


def database_path(settings: Settings) -> Path:
    return settings.data_dir / DATABASE_NAME


def make_broker(settings: Settings) -> Broker:
    """The broker, not yet opened (the application opens it on start-up): Redis when the
    settings name one (then Redis holds the history, and `store` is not used), else the
    local broker over the store."""
    if settings.redis is not None:
        from hubbub.brokers.redis import RedisBroker

        return RedisBroker(settings.redis, prefix=settings.redis_prefix,
                           timeout=settings.redis_timeout, presence_ttl=settings.presence_ttl)
    return LocalBroker(make_store(settings))


def make_store(settings: Settings) -> MessageStore:
    """The store, not yet opened (the application opens it on start-up)."""
    if settings.store == "memory":
        return MemoryStore()
    from hubbub.stores.sqlite import SQLiteStore

    durability: Literal["fsync", "batch"] = "batch" if settings.durability == "batch" else "fsync"
    return SQLiteStore(database_path(settings), durability=durability,
                       commit_window_ms=settings.commit_window_ms)
