"""The event-loop lag monitor, in-process on a real event loop that a callback blocks."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from hubbub.server.looplag import LoopLagMonitor

INTERVAL = 0.02
THRESHOLD = 0.1
BLOCK = 0.3
"""How long a test callback holds the loop: the monitor's timer fires at least
BLOCK - INTERVAL late, well past THRESHOLD."""


@asynccontextmanager
async def monitoring(monitor: LoopLagMonitor) -> AsyncIterator[None]:
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(INTERVAL)  # the monitor is asleep, waiting for its timer
    try:
        yield
    finally:
        task.cancel()


async def block_loop(lags: list[float], block: Callable[[], None]) -> None:
    """Run `block` as a callback, then return once the monitor has measured after it."""
    measured: list[int] = []

    def blocking() -> None:
        block()
        measured.append(len(lags))

    asyncio.get_running_loop().call_soon(blocking)
    for _ in range(200):
        await asyncio.sleep(INTERVAL)
        if measured and len(lags) > measured[0]:
            return
    raise AssertionError("the monitor measured nothing after the block")


def stall_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "hubbub.loop" and record.levelno == logging.WARNING]


async def test_a_blocked_loop_is_measured_and_warned_about_with_its_causes(
        caplog: pytest.LogCaptureFixture) -> None:
    lags: list[float] = []
    monitor = LoopLagMonitor(lags.append, warn_after=THRESHOLD, interval=INTERVAL,
                             warn_every=0)

    def block() -> None:
        gc.collect()  # a full collection: a cause the monitor can name
        time.sleep(BLOCK)

    async with monitoring(monitor):
        await block_loop(lags, block)
    assert max(lags) >= THRESHOLD
    assert monitor.stalls >= 1
    warnings = stall_warnings(caplog)
    assert warnings
    named = [text for text in warnings if "generation 2" in text]
    assert named, warnings
    assert "event loop stalled for" in named[0]
    assert "warning threshold 100 ms" in named[0]
    assert "--dev" in named[0]  # how to have asyncio name the callback
    # Where the loop's thread was, seen by the watchdog thread while the loop was held.
    # (Its innermost frame may be a finaliser the collection ran inside `block`.)
    assert any("the loop was in " in text and "block (server/test_looplag.py:" in text
               for text in warnings), warnings


async def test_in_debug_mode_the_warning_points_at_asyncios_slow_callback_log(
        caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    monitor = LoopLagMonitor(lags.append, warn_after=THRESHOLD, interval=INTERVAL,
                             warn_every=0)
    loop.set_debug(True)
    try:
        async with monitoring(monitor):
            await block_loop(lags, lambda: time.sleep(BLOCK))
    finally:
        loop.set_debug(False)
    assert any("asyncio debug mode is on" in text for text in stall_warnings(caplog))


async def test_a_threshold_of_0_measures_but_never_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    lags: list[float] = []
    monitor = LoopLagMonitor(lags.append, warn_after=0, interval=INTERVAL)
    async with monitoring(monitor):
        await block_loop(lags, lambda: time.sleep(BLOCK))
    assert max(lags) >= THRESHOLD
    assert stall_warnings(caplog) == []
    assert monitor.stalls == 0


async def test_stalls_close_together_are_warned_about_once(
        caplog: pytest.LogCaptureFixture) -> None:
    lags: list[float] = []
    monitor = LoopLagMonitor(lags.append, warn_after=THRESHOLD, interval=INTERVAL,
                             warn_every=3600)
    async with monitoring(monitor):
        await block_loop(lags, lambda: time.sleep(BLOCK))
        await block_loop(lags, lambda: time.sleep(BLOCK))
    assert monitor.stalls >= 2
    assert len(stall_warnings(caplog)) == 1
