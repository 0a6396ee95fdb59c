"""When to reconnect, and how long to wait: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hubbub.core.codes import CloseCode

# No close frame at all (server crashed, network cut): aiohttp reports 1006 or None.
_ABNORMAL = frozenset({None, 1006})
# Standard "come back later" codes a proxy or a restarting server may send.
_RETRY_LATER = frozenset({1012, 1013, 1014})


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
    Jitter"): attempt n waits a uniformly random time in [0, min(max_delay, base * 2**n)].

    Jitter keeps a thousand clients of a restarted server from reconnecting in lockstep.
    `max_attempts` bounds consecutive failed attempts (None: try forever); a successful
    connection resets the count.
    """

    base: float = 0.5
    """Upper bound of the first wait, in seconds."""
    max_delay: float = 30.0
    """Cap on any single wait, so a long outage is noticed within this long of its end."""
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.base <= 0 or self.max_delay <= 0:
            raise ValueError("base and max_delay must be positive")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for no limit)")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base * 2.0 ** min(attempt - 1, 62))
        return (rng or random).uniform(0.0, ceiling)

    def allows(self, attempt: int) -> bool:
        return self.max_attempts is None or attempt <= self.max_attempts


def should_reconnect(close_code: int | None) -> bool:
    """Whether a connection closed by the server with `close_code` is worth retrying.

    Follows the close code table of `docs/protocol.md` (`CloseCode.should_reconnect`);
    codes it does not list are retried only when they mean "try again later".
    """
    if close_code is None or close_code in _ABNORMAL or close_code in _RETRY_LATER:
        return True
    try:
        return CloseCode(close_code).should_reconnect
    except ValueError:
        return False


def describe_close(close_code: int | None) -> str:
    if close_code is None or close_code == 1006:
        return "connection lost without a close frame"
    try:
        name = CloseCode(close_code).name.lower().replace("_", " ")
    except ValueError:
        name = "unknown close code"
    return f"closed with {close_code} ({name})"
