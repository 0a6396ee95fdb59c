"""Per-connection limits, their defaults, and why each exists."""

from __future__ import annotations

from dataclasses import dataclass

MAX_DATA_DEPTH = 32
"""Deepest nesting of arrays and objects accepted in a message's `data`. Far below what the
JSON encoder can write back out (orjson stops at 254 levels), so that whatever is accepted
can always be stored, replayed and served; no real payload comes near it."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 64 * 1024
    """Largest WebSocket frame accepted; bigger ones close the connection with 1009.
    Bounds the memory one client can make the server buffer for a single frame."""

    max_text_bytes: int = 8 * 1024
    """Largest `text` (UTF-8 bytes) of one message; bigger ones get `message_too_large`.
    Keeps history rows and every recipient's outbox small."""

    max_rooms: int = 100
    """Rooms one connection may be in at once; bounds per-connection bookkeeping."""

    history_page_max: int = 100
    """Largest history page served at once; bounds one request's cost."""

    rate_per_second: float = 50.0
    """Sustained requests per second per connection (0 turns the limit off)."""

    rate_burst: int = 100
    """Requests a connection may send in a burst above the sustained rate."""
