"""The SQLite message store; `SQLiteStore` is its public name (see `store.py`)."""

from hubbub.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
