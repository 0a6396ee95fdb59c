"""A connection's outbox: frames waiting for its socket, bounded in bytes.

The delivery engine appends pre-framed bytes here instead of writing each one, then writes
everything pending in one call (once per event-loop pass, or when a lagging socket drains).
A client that falls `limit` bytes behind has its outbox refuse further frames; what happens
to it then is the fan-out's slow-client policy (`hubbub.engine.fanout`).
"""

from __future__ import annotations


class Outbox:
    __slots__ = ("_frames", "_size", "limit", "overflowed")

    def __init__(self, limit: int) -> None:
        self._frames: list[bytes] = []
        self._size = 0
        self.limit = limit
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def size(self) -> int:
        """Bytes pending."""
        return self._size

    def push(self, frame: bytes, already_buffered: int = 0) -> bool:
        """Queue `frame`; False (and nothing queued) if it would pass the byte limit.

        `already_buffered` counts bytes the socket has accepted but not yet sent, so that
        the limit bounds everything held for this client, not only what is queued here.
        """
        if self.overflowed or self._size + len(frame) + already_buffered > self.limit:
            self.overflowed = True
            return False
        self._frames.append(frame)
        self._size += len(frame)
        return True

    def take(self) -> bytes:
        """Everything pending, coalesced into one buffer for a single write."""
        frames = self._frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self._frames = []
        self._size = 0
        return data
