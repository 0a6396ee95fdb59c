"""Event-loop lag: a task that sleeps a short interval and measures how late it woke.

Everything hubbub does runs on one event loop, so anything that holds it (a slow
callback, a long garbage collection, a blocking call by mistake) delays every client at
once. The monitor wakes every `interval` seconds; the difference between when it asked to
wake and when it did is the loop's lag, which it reports to `observe` (the
`hubbub_loop_lag_seconds` histogram). A lag past `warn_after` is logged as a warning with
what the monitor can tell about its cause:

- where the loop's thread was while it was held: the loop cannot say so itself, so a
  watchdog thread looks at the loop thread's stack once the monitor is `warn_after` late;
- the garbage collections, and any other probe's findings, during the interval;
- asyncio's debug mode (`--dev`), which logs every callback slower than 100 ms by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

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


STACK_DEPTH = 3
"""Innermost frames of the loop thread's stack named in a stall warning."""


class _Watchdog:
    """A thread that notes where the loop thread is once the monitor is overdue.

    It wakes every half threshold and costs nothing else; the stack is only read while
    the loop is stalled, at most once per stall.
    """

    def __init__(self, loop_thread: int, last_tick: Callable[[], float], threshold: float,
                 interval: float) -> None:
        self.loop_thread = loop_thread
        self.last_tick = last_tick
        self.threshold = threshold
        self.interval = interval
        self.sample: str | None = None
        self._sampled_tick = -1.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hubbub-loop-watchdog",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def take(self) -> str | None:
        sample, self.sample = self.sample, None
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.threshold / 2):
            tick = self.last_tick()
            if tick == self._sampled_tick or time.monotonic() - tick < self.threshold:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            if frame is not None:
                self._sampled_tick = tick
                self.sample = describe_stack(frame)
            del frame


def describe_stack(frame: FrameType) -> str:
    """`function (dir/file.py:line)`, innermost first, for a few frames."""
    summary = traceback.extract_stack(frame)[-STACK_DEPTH:]
    return " < ".join(
        f"{entry.name} ({os.sep.join(entry.filename.split(os.sep)[-2:])}:{entry.lineno})"
        for entry in reversed(summary))


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
        self._expected = 0.0  # when the monitor should wake next
        self._watchdog: _Watchdog | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.interval
        with self._watching():
            while True:
                explainers = [probe() for probe in self.probes] if self.warn_after else []
                expected = self._expected = time.monotonic() + interval
                await asyncio.sleep(interval)
                lag = max(0.0, time.monotonic() - expected)
                self.observe(lag)
                if self.warn_after and lag >= self.warn_after:
                    self._stalled(lag, explainers, loop.get_debug())

    @contextlib.contextmanager
    def _watching(self) -> Iterator[None]:
        if not self.warn_after:
            yield
            return
        watchdog = self._watchdog = _Watchdog(threading.get_ident(), self._due,
                                              self.warn_after, self.interval)
        watchdog.start()
        try:
            yield
        finally:
            watchdog.stop()
            self._watchdog = None

    def _due(self) -> float:
        return self._expected

    def _stalled(self, lag: float, explainers: list[Callable[[], str | None]],
                 debug: bool) -> None:
        self.stalls += 1
        sample = self._watchdog.take() if self._watchdog is not None else None
        now = time.monotonic()
        if now < self._quiet_until:
            self._unreported += 1
            return
        self._quiet_until = now + self.warn_every
        causes = [] if sample is None else [f"the loop was in {sample}"]
        causes += [text for explain in explainers if (text := explain()) is not None]
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
