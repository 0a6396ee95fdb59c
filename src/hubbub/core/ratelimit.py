"""A token bucket: the per-connection request rate limit."""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `rate == 0` never limits.

    Time is passed in (seconds, monotonic) so the bucket is deterministic under test.
    """

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._tokens = self._burst
        self._stamp = now

    def take(self, now: float) -> float:
        """Spend one token; return 0.0 if allowed, else the seconds until one is available."""
        if self._rate <= 0:
            return 0.0
        elapsed = max(now - self._stamp, 0.0)
        self._stamp = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled to its burst (it can be forgotten)."""
        if self._rate <= 0:
            return True
        return self._tokens + max(now - self._stamp, 0.0) * self._rate >= self._burst
