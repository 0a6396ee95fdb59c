"""Event-loop lag: a task that sleeps a short interval and measures how late it woke.

Everything hubbub does runs on one event loop, so anything that holds it (a slow
callback, a long garbage collection, a blocking call by mistake) delays every client at
once. The monitor wakes every `interval` seconds; the difference between when it asked to
wake and when it did is the loop's lag, which it reports to `observe` (the
`hubbub_loop_lag_seconds` histogram). A lag past `warn_after` is logged as a warning with
what the monitor can tell about its cause; the loop itself cannot say which callback held
it while it was held, but asyncio's debug mode (`--dev`) logs every callback slower than
100 ms by name.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("hubbub.loop")

INTERVAL = 0.05
"""Seconds between two measurements: 20 wake-ups a second cost nothing measurable."""

WARN_EVERY = 10.0
"""Seconds after a stall warning during which further stalls are only counted, then
reported with the next warning: an overloaded loop must not flood the log."""

Probe = Callable[[], Callable[[], str | None]]
"""Called before each sleep; the function it returns is called only if the loop stalled
during that sleep, and names what happened meanwhile (or returns None)."""


def garbage_collections() -> Callable[[], str | None]:
    """A probe: the garbage collections that ran during the interval."""
    before = [generation["collections"] for generation in gc.get_stats()]

    def explain() -> str | None:
        after = [generation["collections"] for generation in gc.get_stats()]
        pairs = enumerate(zip(before, after, strict=True))
        ran = [(number, new - old) for number, (old, new) in pairs if new != old]
        if not ran:
            return None
        return "garbage collections meanwhile: " + ", ".join(
            f"{count} of generation {number}" for number, count in ran)

    return explain


class LoopLagMonitor:
    """Measures the running loop's lag every `interval` seconds (see the module docstring).

    `warn_after` is in seconds; 0 disables the warning (the lag is still observed).
    """

    def __init__(self, observe: Callable[[float], None], *, warn_after: float,
                 interval: float = INTERVAL,
                 probes: Sequence[Probe] = (garbage_collections,),
                 warn_every: float = WARN_EVERY) -> None:
        if interval <= 0 or warn_after < 0:
            raise ValueError("interval must be > 0 and warn_after >= 0")
        self.observe = observe
        self.warn_after = warn_after
        self.interval = interval
        self.probes = tuple(probes)
        self.warn_every = warn_every
        self.stalls = 0
        """Lags at or past `warn_after` seen so far (warned about or not)."""
        self._quiet_until = 0.0
        self._unreported = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.interval
        while True:
            explainers = [probe() for probe in self.probes] if self.warn_after else []
            expected = time.monotonic() + interval
            await asyncio.sleep(interval)
            lag = max(0.0, time.monotonic() - expected)
            self.observe(lag)
            if self.warn_after and lag >= self.warn_after:
                self._stalled(lag, explainers, loop.get_debug())

    def _stalled(self, lag: float, explainers: list[Callable[[], str | None]],
                 debug: bool) -> None:
        self.stalls += 1
        now = time.monotonic()
        if now < self._quiet_until:
            self._unreported += 1
            return
        self._quiet_until = now + self.warn_every
        causes = [text for explain in explainers if (text := explain()) is not None]
        if debug:
            causes.append("asyncio debug mode is on: its 'Executing ... took' warning "
                          "just before this one names the callback")
        else:
            causes.append("start with --dev to have asyncio log callbacks slower than "
                          "100 ms by name")
        if self._unreported:
            causes.append(f"{self._unreported} more stall(s) past the threshold since the "
                          "previous warning")
            self._unreported = 0
        log.warning("event loop stalled for %.0f ms (warning threshold %.0f ms); %s",
                    lag * 1000, self.warn_after * 1000, "; ".join(causes))
