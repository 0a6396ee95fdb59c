"""Message stores that keep history outside the process (the in-memory one is in `core`)."""

from hubbub.stores.sqlite import SQLiteStore, default_path

__all__ = ["SQLiteStore", "default_path"]
