"""The node's pub/sub connection, supervised: it can never stop delivering silently.

The listener owns one Redis pub/sub connection and the set of channels the node wants.
Every channel's subscription is confirmed by Redis before `subscribe` returns (redis-py's
own `subscribe()` returns once the command is sent). When the connection fails, or stays
silent while a probe through Redis does not come back, the listener starts a new one,
subscribes everything again, logs the restart and counts it; the broker is then told to
resynchronise every room (`on_resync`), since messages may have passed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub.core.broker import BrokerUnavailable
from hubbub.engine.tasks import spawn

log = logging.getLogger("hubbub.broker")

PROBE_IDLE_S = 1.0
"""After this long without a message, the listener sends a probe through Redis to itself."""

RESTART_BACKOFF_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
"""Waits between attempts to reconnect (the last repeats): prompt after a blip, and gentle
on a Redis that is down."""


class ListenerStalled(Exception):
    """The pub/sub connection stopped hearing, even its own probe."""


class Listener:
    def __init__(self, client: aioredis.Redis, probe: Callable[[], Any], probe_channel: str,
                 timeout: float, on_message: Callable[[str, bytes], None],
                 on_resync: Callable[[], None]) -> None:
        self._client = client
        self._probe = probe
        self._probe_channel = probe_channel
        self._timeout = timeout
        self._on_message = on_message
        self._on_resync = on_resync
        self._wanted: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.restarts = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Return once the first connection's subscriptions are confirmed."""
        await self._connected.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="hubbub-redis-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def subscribe(self, channel: str) -> None:
        """Return once Redis confirmed the subscription; `BrokerUnavailable` if it did not
        within the timeout (the channel stays wanted: a restart subscribes it)."""
        self._wanted.add(channel)
        confirmed = self._confirmations.get(channel)
        if confirmed is None:
            confirmed = self._confirmations[channel] = (
                asyncio.get_running_loop().create_future())
            if self.connected:
                try:
                    await self._pubsub.subscribe(channel)
                except (RedisError, OSError) as exc:
                    self._wanted.discard(channel)
                    self._confirmations.pop(channel, None)
                    raise BrokerUnavailable(f"cannot subscribe: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), self._timeout)
        except TimeoutError:
            self._wanted.discard(channel)
            if self._confirmations.get(channel) is confirmed:
                del self._confirmations[channel]
            raise BrokerUnavailable("Redis did not confirm a subscription in time") from None

    def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._confirmations.pop(channel, None)
        if self.connected:
            spawn(self._quietly(self._pubsub.unsubscribe(channel)), "hubbub-redis-unsubscribe")

    @staticmethod
    async def _quietly(step: Any) -> None:
        try:
            await step
        except (RedisError, OSError) as exc:
            log.debug("unsubscribe failed (the next restart drops it): %s", exc)

    async def _supervise(self) -> None:
        attempt = 0
        first = True
        while True:
            try:
                await self._listen(first)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ListenerStalled) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                log.exception("the Redis listener failed")
                failure = f"{type(exc).__name__}: {exc}"
            else:
                failure = "connection closed"
            was_connected = self.connected
            self._connected.clear()
            await self._close()
            if was_connected or first:
                attempt = 0
            first = False
            self.restarts += 1
            wait = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
            attempt += 1
            log.warning("Redis pub/sub listener restarting (#%d) in %.2f s: %s",
                        self.restarts, wait, failure)
            await asyncio.sleep(wait)

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
        # Confirmations of the old connection will never come: the next one's will.
        for channel, confirmed in list(self._confirmations.items()):
            if confirmed.done():
                self._confirmations[channel] = asyncio.get_running_loop().create_future()

    async def _listen(self, first: bool) -> None:
        pubsub = self._pubsub = self._client.pubsub()
        channels = [self._probe_channel, *self._wanted]
        for channel in self._wanted:
            if channel not in self._confirmations:
                self._confirmations[channel] = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(pubsub.subscribe(*channels), self._timeout)
        waiting = set(channels)
        resynced = False
        probe_sent: float | None = None
        while True:
            message = await pubsub.get_message(timeout=PROBE_IDLE_S)
            now = time.monotonic()
            if message is None:
                if probe_sent is None:
                    probe_sent = now
                    await asyncio.wait_for(self._probe(), self._timeout)
                elif now - probe_sent > self._timeout:
                    raise ListenerStalled(f"no probe back within {self._timeout:g} s")
                continue
            probe_sent = None  # it hears: whatever was probed, the connection lives
            kind = message["type"]
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            if kind == "message":
                if channel != self._probe_channel:
                    self._on_message(channel, message["data"])
            elif kind == "unsubscribe" and channel in self._wanted:
                # An unsubscription that crossed a new subscription of the same channel (a
                # room left and joined again within a round trip): whichever Redis ran
                # last, a restart subscribes it again and the resync fills what it missed.
                raise ListenerStalled(f"{channel} was unsubscribed while wanted")
            elif kind == "subscribe":
                waiting.discard(channel)
                confirmed = self._confirmations.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                if channel == self._probe_channel:
                    self._connected.set()
                if not waiting and not resynced:
                    resynced = True
                    if not first:
                        self._on_resync()
