"""Message store implementations (`memory`, `sqlite`) of the interface in `core/store.py`."""

from hubbub.stores.sqlite import SQLiteStore

__all__ = ["SQLiteStore"]
