"""The one publisher: fixed-size bench messages at a fixed rate over an aiohttp WebSocket.

Messages are scheduled at `start + i / rate` and each carries its scheduled time. When the
loop wakes late it sends every message that is due at once, so the offered rate holds on
average. When the server stops reading, `send_str` waits for the socket to drain and the
publisher falls behind its schedule; the delay lands in the measured latency (the scheduled
time is what is embedded), and `deadline` bounds how long a point may run over.

The relay also sends the publisher its own messages: a reader task drains and discards
them, otherwise a server that waits on each send (the teaching note's) would block on the
publisher's full socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from array import array
from dataclasses import dataclass

import aiohttp
import numpy as np

from hubbub.loadgen import payload
from hubbub.loadgen.client import time_ns
from hubbub.loadgen.errors import BenchError, Unreachable

log = logging.getLogger("hubbub.loadgen.publisher")


@dataclass
class Published:
    sent: int
    start_ns: int
    end_ns: int
    on_time: bool  # False when the deadline cut the point short
    lag_p99_ms: float  # how late messages left, against their schedule




class Publisher:
    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.echoes = 0

    async def open(self, limit_s: float) -> None:
        """Raises Unreachable naming the URL and the reason when the server is unreachable."""
        self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(limit_s):
                self._ws = await self._session.ws_connect(
                    self.url, timeout=aiohttp.ClientWSTimeout(ws_close=2.0), autoping=True,
                    max_msg_size=0, compress=0,
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self._session.close()
            reason = str(exc) or type(exc).__name__
            raise Unreachable(f"cannot connect to {self.url}: {reason}") from None
        self._reader = asyncio.create_task(self._drain_echoes(self._ws))

    async def _drain_echoes(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for _message in ws:
            self.echoes += 1

    async def publish(self, first_seq: int, rate: float, count: int, size: int,
                      deadline_s: float) -> Published:
        """Send `count` messages at `rate`/s; stops early if `deadline_s` passes."""
        ws = self._ws
        if ws is None:
            raise RuntimeError("publisher is not open")
        interval = 1e9 / rate
        start = time_ns() + 1_000_000
        sent = 0
        on_time = True
        lags = array("q")
        try:
            async with asyncio.timeout(deadline_s):
                while sent < count:
                    now = time_ns()
                    due = min(count, int((now - start) / interval) + 1)
                    while sent < due:
                        if ws.closed:
                            raise BenchError(f"{self.url} closed the publisher's connection")
                        at = start + int(sent * interval)
                        lags.append(time_ns() - at)
                        try:
                            await ws.send_str(payload.make(first_seq + sent, at, size))
                        except (ConnectionError, aiohttp.ClientError) as exc:
                            raise BenchError(f"publishing to {self.url} failed: {exc}") from exc
                        sent += 1
                    if sent < count:
                        wait = start + int(sent * interval) - time_ns()
                        await asyncio.sleep(max(wait, 0) / 1e9)
        except TimeoutError:
            on_time = False
        lag = float(np.percentile(np.frombuffer(lags, dtype=np.int64), 99)) if lags else 0.0
        return Published(sent, start, time_ns(), on_time, round(lag / 1e6, 3))

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 3)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._session is not None:
            await self._session.close()
