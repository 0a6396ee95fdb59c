"""Presence across nodes: who is in a room, whichever node they are on.

Each live member is an entry of the room's `members` sorted set, scored by when it expires,
and its `{"id", "nick"}` is in the room's `info` hash. The node refreshes its own members'
entries every third of the TTL; a node that dies stops refreshing, and once its entries
expire, the first node that sweeps the room removes them and announces a `leave` for each
(`scripts.SWEEP`: one script, so exactly one `leave` per member).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
from redis.exceptions import NoScriptError

from hubbub.core.broker import Presence
from hubbub.core.events import Event
from hubbub.core.store import StoreError

if TYPE_CHECKING:
    from hubbub.brokers.redis.broker import RedisBroker

log = logging.getLogger("hubbub.broker")


def _ms() -> int:
    return time.time_ns() // 1_000_000


class RedisPresence(Presence):
    def __init__(self, broker: RedisBroker, ttl: float) -> None:
        self._broker = broker
        self.ttl = ttl
        # This node's live members: room -> member id -> its JSON.
        self._mine: dict[str, dict[str, bytes]] = {}

    def _expiry(self) -> int:
        return _ms() + int(self.ttl * 1000)

    async def add(self, room: str, member: Event) -> None:
        data = orjson.dumps(member)
        self._mine.setdefault(room, {})[member["id"]] = data
        await self._write(room, member["id"], data)

    async def rename(self, room: str, member: Event) -> None:
        if member["id"] in self._mine.get(room, {}):
            await self.add(room, member)

    async def _write(self, room: str, member_id: str, data: bytes) -> None:
        keys = self._broker.keys(room)
        pipe = self._broker.client.pipeline(transaction=False)
        pipe.zadd(keys.members, {member_id: self._expiry()})
        pipe.hset(keys.info, member_id, data)
        await self._broker.call(pipe.execute())

    async def remove(self, room: str, member_id: str) -> None:
        mine = self._mine.get(room)
        if mine is not None:
            mine.pop(member_id, None)
            if not mine:
                del self._mine[room]
        keys = self._broker.keys(room)
        pipe = self._broker.client.pipeline(transaction=False)
        pipe.zrem(keys.members, member_id)
        pipe.hdel(keys.info, member_id)
        await self._broker.call(pipe.execute())

    async def members(self, room: str) -> list[Event]:
        keys = self._broker.keys(room)
        ids = await self._broker.call(
            self._broker.client.zrangebyscore(keys.members, _ms(), "+inf"))
        if not ids:
            return []
        found = await self._broker.call(self._broker.client.hmget(keys.info, ids))
        return [orjson.loads(data) for data in found if data is not None]

    async def counts(self, rooms: Sequence[str]) -> dict[str, int]:
        if not rooms:
            return {}
        now = _ms()
        pipe = self._broker.client.pipeline(transaction=False)
        for room in rooms:
            pipe.zcount(self._broker.keys(room).members, now, "+inf")
        counts = await self._broker.call(pipe.execute())
        return {room: int(count) for room, count in zip(rooms, counts, strict=True) if count}

    async def leave_all(self) -> None:
        """On shutdown: take this node's members out at once rather than by expiry (the
        hub has told its rooms already, closing its sockets)."""
        mine, self._mine = self._mine, {}
        if not mine:
            return
        pipe = self._broker.client.pipeline(transaction=False)
        for room, members in mine.items():
            keys = self._broker.keys(room)
            pipe.zrem(keys.members, *members)
            pipe.hdel(keys.info, *members)
        try:
            await self._broker.call(pipe.execute())
        except StoreError as exc:
            log.warning("presence entries left to expire: %s", exc)

    async def run(self) -> None:
        """Refresh this node's entries and sweep its rooms' expired ones, every third of
        the TTL, for as long as the broker is open."""
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._refresh_and_sweep()
            except StoreError as exc:
                log.warning("presence refresh failed: %s", exc)
            except Exception:
                log.exception("presence refresh failed")

    async def _refresh_and_sweep(self) -> None:
        broker = self._broker
        pipe = broker.client.pipeline(transaction=False)
        expiry = self._expiry()
        for room, members in self._mine.items():
            keys = broker.keys(room)
            pipe.zadd(keys.members, dict.fromkeys(members, expiry))
            pipe.hset(keys.info, mapping=members)
        now = _ms()
        sweep = broker.script("SWEEP").sha
        for room in broker.subscribed():
            keys = broker.keys(room)
            pipe.evalsha(sweep, 3, keys.members, keys.info, keys.channel, now)
        results = await broker.call(pipe.execute(raise_on_error=False))
        if any(isinstance(result, NoScriptError) for result in results):
            await broker.load_scripts()  # Redis restarted: the next pass sweeps
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, NoScriptError):
                raise StoreError(f"Redis: {result}")
