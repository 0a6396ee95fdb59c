"""Rate-limited, one-line logging of what clients do wrong.

Anyone can make a server log: a header over 8 KiB, a reset in the middle of a ping. Each
such event is ordinary client misbehaviour, worth one line, never a traceback, and never
so many lines that the log itself becomes the attack.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

from hubbub.core.ratelimit import TokenBucket

LINES_PER_SECOND = 1.0
LINES_BURST = 20
MAX_DETAIL = 200


class LogLimiter:
    """Per kind of event: `LINES_BURST` lines at once, then `LINES_PER_SECOND`. Lines held
    back are counted, and the count goes out with the next line of that kind."""

    def __init__(self, rate: float = LINES_PER_SECOND, burst: int = LINES_BURST) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._held: dict[str, int] = {}

    def allow(self, kind: str) -> str | None:
        """None if this line is to be dropped, else a suffix to append (`""`, or the count
        of lines of this kind dropped since the last one)."""
        now = time.monotonic()
        bucket = self._buckets.get(kind)
        if bucket is None:
            bucket = self._buckets[kind] = TokenBucket(self._rate, self._burst, now)
        if bucket.take(now):
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        held = self._held.pop(kind, 0)
        return f" ({held} more like it not logged)" if held else ""


_LIMITER = LogLimiter()


def client_line(logger: logging.Logger, level: int, kind: str, msg: str, *args: object) -> None:
    """Log one line about a client's misbehaviour, rate-limited per `kind`."""
    if not logger.isEnabledFor(level):
        return
    suffix = _LIMITER.allow(kind)
    if suffix is not None:
        logger.log(level, msg + "%s", *args, suffix)


def one_line(exc: BaseException) -> str:
    """An exception as one short line (aiohttp's parser errors span several)."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    text = " ".join(str(text).split()) or type(exc).__name__
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."


class ClientErrorFilter(logging.Filter):
    """For `aiohttp.server`: a malformed request (oversized headers, a bad request line)
    becomes one WARNING line and a client that reset its connection one INFO line, both
    rate-limited, instead of ERROR with a traceback. Anything else passes unchanged."""

    def __init__(self, limiter: LogLimiter | None = None) -> None:
        super().__init__()
        self.limiter = limiter or LogLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            kind, level, what = "bad-request", logging.WARNING, "bad request"
        elif isinstance(exc, ConnectionError):
            kind, level, what = "reset", logging.INFO, "connection reset"
        else:
            return True
        if not logging.getLogger().isEnabledFor(level):
            return False
        suffix = self.limiter.allow(kind)
        if suffix is None:
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "%s from %s: %s%s"
        record.args = (what, peer, one_line(exc), suffix)
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.exc_info = record.exc_text = None
        return True


def install() -> None:
    """Put the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())
