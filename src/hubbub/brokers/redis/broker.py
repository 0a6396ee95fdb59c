"""`RedisBroker`: this node's side of rooms shared through Redis (see the package docstring
for what Redis holds).

Publishing: `publish` queues the message synchronously (its place in the node's order is
fixed then), and one sender task writes whatever queued during one round trip as one
pipeline of publish scripts on one connection, so offsets follow submission order and a
busy node gathers many publishes per round trip. An ack goes out only after the script
returned. When Redis does not answer within the timeout, everything waiting is refused
with `BrokerUnavailable` and, until a probe succeeds again, new publishes are refused at
once: what a node holds for Redis stays bounded by `MAX_QUEUED`.

Delivery: per subscribed room the node keeps the last offset it handed to the hub
(`_Room.offset`). A message from the channel at that offset plus one is delivered; one at
or below is a duplicate and dropped; one further on (a gap: the channel lost messages, or
the listener restarted) or of another epoch puts the room in sync: its state is read again,
the missing messages are read from the Stream once for the room, and whatever arrived
meanwhile follows. An epoch change (Redis lost the room's data) is told to the hub as a
reset before any message of the new epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from hubbub.brokers.redis import scripts
from hubbub.brokers.redis.codec import decode, encode_body, message_of, presence_note
from hubbub.brokers.redis.keys import RoomKeys, node_channel, room_keys, rooms_key
from hubbub.brokers.redis.listener import Listener
from hubbub.brokers.redis.presence import RedisPresence
from hubbub.core.broker import DEDUPE_WINDOW_S, Broker, BrokerUnavailable, Presence
from hubbub.core.events import Event
from hubbub.core.message import Draft, Message
from hubbub.core.store import (
    HistoryPage,
    Outcome,
    RoomState,
    StoreError,
    StoreOpenError,
    new_epoch,
    report,
)
from hubbub.core.urls import masked_url
from hubbub.engine.tasks import spawn

log = logging.getLogger("hubbub.broker")

T = TypeVar("T")

MAX_QUEUED = 10_000
"""Publishes one node holds for Redis at once; past it they are refused (`unavailable`).
With the per-connection bound (`hubbub.engine.hub.MAX_IN_FLIGHT`) this keeps a node's
memory bounded while Redis is slow or paused."""

MAX_CONNECTIONS = 32
"""Command connections one node opens to Redis at most (plus one for publishing and one
for pub/sub)."""

MAX_BATCH = 1_000
"""Most publishes in one pipeline: one round trip's worth, small enough to time out alone."""

MAX_RUN_BYTES = 256 * 1024
"""Most bytes of message bodies in one script call, and so in one channel payload."""

UNSUBSCRIBE_DELAY_S = 2.0
"""How long a node stays subscribed to a room after its last member left: a member that
reconnects right away (a page reload) finds it still subscribed."""

READ_PAGE = 1_000
"""Messages read from a Stream at once while filling a gap."""

BUFFER_MAX = 10_000
"""Messages a room collects while it syncs; past it they are dropped and read from the
Stream instead (the sync runs again)."""


class Sync(enum.Enum):
    SYNCING = "syncing"
    """Reading its state (and any gap) from Redis: messages from the channel wait."""
    LIVE = "live"


@dataclass(slots=True, eq=False)
class _Room:
    name: str
    keys: RoomKeys
    status: Sync = Sync.SYNCING
    epoch: str | None = None
    offset: int = 0
    """The last offset handed to the hub (see the module docstring)."""
    wanted: bool = True
    """Some member on this node wants it (False while an unsubscription waits)."""
    buffer: list[Message] = field(default_factory=list)
    ready: asyncio.Future[None] | None = None
    """Done once the first sync finished (its exception if it failed)."""
    syncing: asyncio.Task[None] | None = None
    leaving: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Publish:
    draft: Draft
    then: Outcome
    keys: RoomKeys
    body: bytes


@dataclass(slots=True)
class _Note:
    """A presence change to announce on a room's channel."""

    channel: str
    payload: bytes


class RedisBroker(Broker):
    def __init__(self, url: str, *, prefix: str = "hubbub", timeout: float = 2.0,
                 presence_ttl: float = 30.0) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.node_id = secrets.token_hex(6)
        self._rooms: dict[str, _Room] = {}
        self._by_channel: dict[str, _Room] = {}
        self._queue: list[_Publish | _Note] = []
        self._wake: asyncio.Event | None = None
        self._idle = asyncio.Event()  # set while nothing waits to be sent
        self._down = False
        self._open = False
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aioredis.Redis | None = None
        self._sender: aioredis.Redis | None = None
        self._listener: Listener | None = None
        self._presence = RedisPresence(self, presence_ttl)
        self._scripts: dict[str, Any] = {}

    # --- life ----------------------------------------------------------------------------

    def _connect(self, *, listening: bool = False) -> aioredis.Redis:
        # hubbub owns reconnection (the sender's probe, the listener's supervisor): redis-py
        # must fail fast instead of retrying behind its back. A bounded pool that makes a
        # command wait for a free connection: a thousand clients joining at once must not
        # open a thousand connections to Redis. The pub/sub connection waits for messages
        # indefinitely: no socket timeout (the listener's probe notices a silent one).
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=MAX_CONNECTIONS, timeout=self.timeout,
            socket_timeout=None if listening else self.timeout,
            socket_connect_timeout=self.timeout, retry=Retry(NoBackoff(), 0),
            health_check_interval=0)
        return aioredis.Redis(connection_pool=pool)

    async def open(self) -> None:
        self._client = self._connect()
        self._sender = self._connect()
        try:
            await asyncio.wait_for(self._client.ping(), self.timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._release()
            raise StoreOpenError(f"cannot reach Redis at {masked_url(self.url)}: "
                                 f"{exc or type(exc).__name__}") from exc
        for name in ("PUBLISH", "STATE", "DISCARD", "SWEEP"):
            self._scripts[name] = self._client.register_script(getattr(scripts, name))
        await self.load_scripts()
        self._wake = asyncio.Event()
        self._listener = Listener(self._connect(listening=True), self._probe,
                                  node_channel(self.prefix, self.node_id), self.timeout,
                                  self._heard, self._resync_all)
        self._listener.start()
        try:
            await asyncio.wait_for(self._listener.wait_connected(), self.timeout)
        except TimeoutError:
            await self._listener.stop()
            await self._release()
            raise StoreOpenError(f"Redis at {masked_url(self.url)} did not confirm a "
                                 "subscription in time") from None
        self._tasks = [asyncio.create_task(self._send_loop(), name="hubbub-redis-sender"),
                       asyncio.create_task(self._presence.run(), name="hubbub-redis-presence")]
        self._open = True
        log.info("Redis broker: %s (prefix %r, node %s)", masked_url(self.url), self.prefix,
                 self.node_id)

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        # Publishes still queued get their answer: sent if Redis answers in time.
        if self._queue and not self._down:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.timeout)
        self._refuse_all("the server is shutting down")
        await self._presence.leave_all()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            await self._listener.stop()
        await self._release()

    async def _release(self) -> None:
        for client in (self._client, self._sender):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    def usable(self) -> bool:
        listener = self._listener
        return (self._open and not self._down and listener is not None
                and listener.connected)

    @property
    def listener_restarts(self) -> int:
        return 0 if self._listener is None else self._listener.restarts

    # --- Redis calls ---------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The command connection pool (typed loosely: redis-py's replies are untyped)."""
        assert self._client is not None, "the broker is not open"
        return self._client

    async def call(self, step: Awaitable[T]) -> T:
        """One Redis round trip, within the timeout; `BrokerUnavailable` otherwise."""
        try:
            return await asyncio.wait_for(step, self.timeout)
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        """What a failed Redis round trip is to clients."""
        if isinstance(exc, TimeoutError):
            return BrokerUnavailable(f"Redis did not answer within {self.timeout:g} s")
        return BrokerUnavailable(f"Redis: {exc or type(exc).__name__}")

    def script(self, name: str) -> Any:
        """A script to await (it loads itself into Redis when Redis lost it), or whose
        `sha` a pipeline calls (then `load_scripts` when a reply is `NoScriptError`)."""
        return self._scripts[name]

    async def load_scripts(self) -> None:
        for script in self._scripts.values():
            await self.call(self.client.script_load(script.script))

    def keys(self, room: str) -> RoomKeys:
        found = self._rooms.get(room)
        return found.keys if found is not None else room_keys(self.prefix, room)

    # --- publishing ----------------------------------------------------------------------

    def publish(self, draft: Draft, then: Outcome) -> None:
        if not self._open or self._down:
            report(then, BrokerUnavailable("Redis is unreachable"))
            return
        if len(self._queue) >= MAX_QUEUED:
            report(then, BrokerUnavailable(f"{MAX_QUEUED} publishes are waiting for Redis"))
            return
        self._queue.append(_Publish(draft, then, self.keys(draft.room), encode_body(draft)))
        assert self._wake is not None
        self._wake.set()

    def announce(self, room: str, kind: str, member: Event,
                 old_nick: str | None = None) -> None:
        if not self._open or self._down or len(self._queue) >= MAX_QUEUED:
            return  # presence notes are best effort: members are swept by their TTL
        self._queue.append(_Note(self.keys(room).channel,
                                 presence_note(kind, member, old_nick, self.node_id)))
        assert self._wake is not None
        self._wake.set()

    async def _send_loop(self) -> None:
        wake = self._wake
        assert wake is not None and self._sender is not None
        while True:
            await wake.wait()
            wake.clear()
            self._idle.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._send(batch)
                except Exception as exc:  # Redis unreachable or slow: refuse, then probe
                    if not isinstance(exc, RedisError | OSError | TimeoutError):
                        log.exception("publishing to Redis failed")
                    reason = str(self._unavailable(exc))
                    log.warning("refusing %d publish(es): %s", len(batch) + len(self._queue),
                                reason)
                    self._down = True
                    self._queue[:0] = batch
                    self._refuse_all(reason)
                    await self._until_reachable()
            self._idle.set()

    async def _send(self, batch: list[_Publish | _Note]) -> None:
        """One pipeline: each room's publishes of the batch as runs of one script call
        (in submission order within the room; offsets are per room, and each connection
        answers in its own order), and the presence notes."""
        assert self._sender is not None
        pipe = self._sender.pipeline(transaction=False)
        sha = self._scripts["PUBLISH"].sha
        epoch = new_epoch()  # for rooms this batch starts; unique per batch is enough
        runs: dict[str, list[_Publish]] = {}
        for item in batch:
            if isinstance(item, _Note):
                pipe.publish(item.channel, item.payload)
            else:
                runs.setdefault(item.draft.room, []).append(item)
        calls: list[list[_Publish]] = []
        for items in runs.values():
            for run in _runs(items):
                keys = run[0].keys
                key_list = [keys.meta, keys.log, keys.channel]
                args: list[Any] = [epoch, int(DEDUPE_WINDOW_S * 1000)]
                for item in run:
                    draft = item.draft
                    if draft.dedupe:
                        key_list.append(keys.id(draft.id))
                        args += (item.body, len(key_list), draft.ts)
                    else:
                        args += (item.body, 0, draft.ts)
                pipe.evalsha(sha, len(key_list), *key_list, *args)
                calls.append(run)
        try:
            results = await asyncio.wait_for(pipe.execute(raise_on_error=False), self.timeout)
        except BaseException:
            # The connection may still deliver answers to this pipeline: never reuse it.
            await self._sender.connection_pool.disconnect()
            raise
        if any(isinstance(answer, NoScriptError) for answer in results):
            # Redis restarted and forgot its scripts: no publish of this pipeline ran (each
            # call failed before its first command). Load them, then send it again.
            await self.load_scripts()
            return await self._send(batch)
        answers = results[len(results) - len(calls):]
        started = [run[0].draft.room for run, answer in zip(calls, answers, strict=True)
                   if not isinstance(answer, Exception) and answer[2]]
        if started:
            await self._register(*started)
        for run, answer in zip(calls, answers, strict=True):
            if isinstance(answer, Exception):
                log.error("the publish script failed in %r: %s", run[0].draft.room, answer)
                for item in run:
                    report(item.then, StoreError(f"Redis refused the publish: {answer}"))
                continue
            epoch = answer[0].decode()
            for item, (offset, duplicate, ts, original) in zip(run, answer[1], strict=True):
                draft = item.draft
                if not duplicate:
                    message = Message.from_draft(draft, offset=offset, epoch=epoch)
                elif original:  # the original, as the repeat is answered with
                    message = replace(message_of(draft.room, offset, epoch, decode(original)),
                                      duplicate=True)
                else:  # retention removed the original: its place, with this copy's body
                    message = replace(Message.from_draft(draft, offset=offset, epoch=epoch),
                                      ts=int(ts), duplicate=True)
                report(item.then, message)

    async def _register(self, *rooms: str) -> None:
        """Add rooms that a script just started to the room set (for room lists): whoever
        starts a room's hash registers it, so a room forgotten and started again is too.
        A failure here is logged: the rooms themselves are stored."""
        try:
            await self.call(self.client.sadd(rooms_key(self.prefix), *rooms))
        except StoreError as exc:
            log.warning("rooms %s are missing from the room list: %s", rooms, exc)

    def _refuse_all(self, reason: str) -> None:
        queued, self._queue = self._queue, []
        for item in queued:
            if isinstance(item, _Publish):
                report(item.then, BrokerUnavailable(reason))

    async def _until_reachable(self) -> None:
        assert self._sender is not None
        while True:
            await asyncio.sleep(0.25)
            try:
                await asyncio.wait_for(self._sender.ping(), self.timeout)
            except (RedisError, OSError, TimeoutError):
                await self._sender.connection_pool.disconnect()
                continue
            log.info("Redis is reachable again")
            self._down = False
            return

    async def _probe(self) -> None:
        """The listener's liveness probe: a note to this node's own channel."""
        await self.client.publish(node_channel(self.prefix, self.node_id), b"probe")

    # --- subscriptions and delivery --------------------------------------------------------

    async def subscribe(self, room: str) -> None:
        found = self._rooms.get(room)
        if found is None:
            found = _Room(room, room_keys(self.prefix, room))
            found.ready = asyncio.get_running_loop().create_future()
            self._rooms[room] = found
            self._by_channel[found.keys.channel] = found
            listener = self._listener
            assert listener is not None, "the broker is not open"
            try:
                await listener.subscribe(found.keys.channel)
                await self._sync(found)
            except BaseException as exc:
                self._forget(found)
                listener.unsubscribe(found.keys.channel)
                if not found.ready.done():
                    found.ready.set_exception(exc if isinstance(exc, StoreError)
                                              else BrokerUnavailable(str(exc)))
                    found.ready.exception()  # retrieved here: waiters re-raise it
                raise
            found.ready.set_result(None)
            return
        found.wanted = True
        if found.leaving is not None:
            found.leaving.cancel()
            found.leaving = None
        assert found.ready is not None
        await self.call(asyncio.shield(found.ready))

    def unsubscribe(self, room: str) -> None:
        found = self._rooms.get(room)
        if found is None:
            return
        found.wanted = False
        if found.leaving is None:
            found.leaving = asyncio.get_running_loop().call_later(
                UNSUBSCRIBE_DELAY_S, self._leave, found)

    def _leave(self, found: _Room) -> None:
        found.leaving = None
        if found.wanted or self._rooms.get(found.name) is not found:
            return
        self._forget(found)
        assert self._listener is not None
        self._listener.unsubscribe(found.keys.channel)
        if self._open and not self._down:
            spawn(self._discard(found.keys), "hubbub-redis-discard")

    async def _discard(self, keys: RoomKeys) -> None:
        try:
            if await self.call(self.script("DISCARD")(keys=[keys.meta, keys.members])):
                await self.call(self.client.srem(rooms_key(self.prefix), keys.room))
        except StoreError as exc:
            log.debug("discarding an unused room failed: %s", exc)

    def _forget(self, found: _Room) -> None:
        if self._rooms.get(found.name) is found:
            del self._rooms[found.name]
            self._by_channel.pop(found.keys.channel, None)
        if found.syncing is not None:
            found.syncing.cancel()

    def _heard(self, channel: str, raw: bytes) -> None:
        """A payload from a room's channel (the listener's callback)."""
        found = self._by_channel.get(channel)
        if found is None:
            return
        note = decode(raw)
        if "p" in note:
            if note["node"] != self.node_id and self._node is not None:
                self._node.presence_changed(found.name, note["p"], note["member"],
                                            note.get("old_nick"))
            return
        first, epoch, bodies = note["o"], note["e"], note["m"]
        last = first + len(bodies) - 1
        if found.status is Sync.LIVE:
            if epoch == found.epoch:
                if last <= found.offset:
                    return  # delivered already
                if first <= found.offset + 1:
                    skip = found.offset + 1 - first
                    name = found.name
                    found.offset = last
                    self._deliver([message_of(name, first + i, epoch, body)
                                   for i, body in enumerate(bodies) if i >= skip])
                    return
            found.status = Sync.SYNCING
            self._start_sync(found)
        if len(found.buffer) >= BUFFER_MAX:
            found.buffer.clear()  # the Stream has them: the sync reads them from there
            self._start_sync(found)
        found.buffer.extend(message_of(found.name, first + i, epoch, body)
                            for i, body in enumerate(bodies))

    def _deliver(self, messages: Sequence[Message]) -> None:
        node = self._node
        if node is None:
            return
        try:
            node.deliver(messages)
        except Exception:
            log.exception("the node failed on %d delivered messages", len(messages))

    def _resync_all(self) -> None:
        """After the listener restarted: every room may have missed messages."""
        for found in self._rooms.values():
            found.status = Sync.SYNCING
            self._start_sync(found)

    def _start_sync(self, found: _Room) -> None:
        if found.syncing is None or found.syncing.done():
            found.syncing = asyncio.create_task(self._sync_until_done(found))

    async def _sync_until_done(self, found: _Room) -> None:
        attempt = 0
        while self._rooms.get(found.name) is found and found.status is Sync.SYNCING:
            try:
                await self._sync(found)
                return
            except StoreError as exc:
                attempt += 1
                if attempt == 1 or attempt % 20 == 0:
                    log.warning("room %r cannot sync yet (attempt %d): %s", found.name,
                                attempt, exc)
                await asyncio.sleep(min(0.1 * attempt, 2.0))

    async def _sync(self, found: _Room) -> None:
        """Bring the room to what Redis holds: read its state, deliver what the node has
        not (reading the Stream once for the room), then what arrived meanwhile; go live
        with no await between the last check and the switch."""
        keys = found.keys
        state = await self._stored_state(keys, create=True)
        assert state is not None
        epoch, top = state.epoch, state.offset
        if found.epoch is None:
            found.epoch, found.offset = epoch, top  # first sync: history is the hub's
        elif epoch != found.epoch:
            found.epoch, found.offset = epoch, 0
            found.buffer = [m for m in found.buffer if m.epoch == epoch]
            if self._node is not None:
                try:
                    self._node.reset(found.name, RoomState(epoch, 0, state.first_offset))
                except Exception:
                    log.exception("the node failed on a reset of %r", found.name)
        while True:
            while found.offset < top:
                page = await self._range(found.name, epoch, found.offset + 1, top, READ_PAGE)
                if not page or page[0].offset != found.offset + 1:
                    # Retention or a lost Stream took them: go on from what is there.
                    first = page[0].offset if page else top + 1
                    log.warning("room %r: messages %d-%d are gone from Redis; skipping",
                                found.name, found.offset + 1, first - 1)
                    found.offset = first - 1
                    if not page:
                        break
                found.offset = page[-1].offset
                self._deliver(page)
            # What arrived meanwhile, once per offset, in order; the contiguous part now.
            fresh = sorted({m.offset: m for m in found.buffer
                            if m.epoch == epoch and m.offset > found.offset}.values(),
                           key=lambda m: m.offset)
            found.buffer = []
            ready = 0
            while ready < len(fresh) and fresh[ready].offset == found.offset + 1 + ready:
                ready += 1
            if ready:
                found.offset = fresh[ready - 1].offset
                self._deliver(fresh[:ready])
            fresh = fresh[ready:]
            if not fresh and not found.buffer:
                found.status = Sync.LIVE
                return
            # A gap remains (or more arrived): read what Redis has now, and go on.
            found.buffer = fresh + found.buffer
            now = await self._stored_state(keys, create=False)
            if now is None or now.epoch != epoch:
                return await self._sync(found)  # the epoch changed again meanwhile
            top = now.offset

    async def _range(self, room: str, epoch: str, first: int, last: int,
                     limit: int) -> list[Message]:
        entries = await self.call(self.client.xrange(
            self.keys(room).log, f"0-{first}", f"0-{last}", count=limit))
        return [_entry(room, epoch, entry) for entry in entries]

    # --- state and history -------------------------------------------------------------

    async def _stored_state(self, keys: RoomKeys, *, create: bool) -> RoomState | None:
        """The room's state as Redis holds it (`scripts.STATE`)."""
        raw = await self.call(self.script("STATE")(keys=[keys.meta, keys.log],
                                                   args=[new_epoch() if create else ""]))
        if raw is None:
            return None
        if raw[3]:
            await self._register(keys.room)
        return RoomState(raw[0].decode(), int(raw[1]), int(raw[2]))

    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        stored = await self._stored_state(self.keys(room), create=create)
        if stored is None:
            return None
        found = self._rooms.get(room)
        if found is not None and found.status is Sync.LIVE and found.epoch is not None:
            # Subscribed: as of what this node was handed (the broker contract).
            return RoomState(found.epoch, found.offset,
                             min(stored.first_offset, found.offset + 1))
        return stored

    async def read(self, room: str, *, after: int | None = None, before: int | None = None,
                   limit: int) -> HistoryPage | None:
        keys = self.keys(room)
        state = await self._stored_state(keys, create=False)
        if state is None:
            return None
        epoch = state.epoch
        low = 1 if after is None else after + 1
        high = state.offset if before is None else min(before - 1, state.offset)
        if high < low:
            return HistoryPage(state, [], False)
        if after is not None:
            entries = await self.call(self.client.xrange(
                keys.log, f"0-{low}", f"0-{high}", count=limit + 1))
            more = len(entries) > limit
            entries = entries[:limit]
        else:
            entries = await self.call(self.client.xrevrange(
                keys.log, f"0-{high}", f"0-{low}", count=limit + 1))
            more = len(entries) > limit
            entries = entries[:limit][::-1]
        return HistoryPage(state, [_entry(room, epoch, e) for e in entries], more)

    async def rooms(self) -> dict[str, int]:
        names = sorted(n.decode() for n in await self.call(
            self.client.smembers(rooms_key(self.prefix))))
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys(name).meta, "top")
        tops = await self.call(pipe.execute())
        return {name: int(top) for name, top in zip(names, tops, strict=True)
                if top is not None}

    async def room_count(self) -> int:
        return int(await self.call(self.client.scard(rooms_key(self.prefix))))

    async def trim(self, *, max_count: int | None, max_age_ms: int | None, now_ms: int) -> int:
        removed = 0
        for name in (await self.rooms()):
            log_key = self.keys(name).log
            if max_count is not None:
                removed += int(await self.call(self.client.xtrim(log_key, maxlen=max_count,
                                                                  approximate=False)))
            if max_age_ms is not None:
                keep = await self._first_kept(log_key, now_ms - max_age_ms)
                if keep is not None:
                    removed += int(await self.call(self.client.xtrim(log_key, minid=keep,
                                                                  approximate=False)))
        return removed

    async def _first_kept(self, log_key: str, cutoff_ms: int) -> str | None:
        """The id of the oldest entry at or after `cutoff_ms` (past the last one if all are
        older), read a page at a time from the oldest; None for an empty Stream."""
        start = "-"
        while True:
            page = await self.call(self.client.xrange(log_key, start, "+", count=READ_PAGE))
            if not page:
                return None if start == "-" else start
            for entry_id, fields in page:
                if decode(fields[b"m"])["ts"] >= cutoff_ms:
                    return str(entry_id.decode())
            start = _next_id(page[-1][0])

    def presence(self, local: Presence) -> Presence:
        return self._presence

    def subscribed(self) -> list[str]:
        """Rooms this node is subscribed to (the presence sweeper's)."""
        return list(self._rooms)


def _runs(items: list[_Publish]) -> Iterator[list[_Publish]]:
    """A room's publishes cut into runs of at most `MAX_RUN_BYTES` of bodies (one message
    alone may be larger): each run is one script call and one channel payload, which
    Redis's pub/sub output buffer limit must take."""
    run: list[_Publish] = []
    size = 0
    for item in items:
        if run and size + len(item.body) > MAX_RUN_BYTES:
            yield run
            run, size = [], 0
        run.append(item)
        size += len(item.body)
    if run:
        yield run


def _entry(room: str, epoch: str, entry: tuple[bytes, dict[bytes, bytes]]) -> Message:
    entry_id, fields = entry
    return message_of(room, int(entry_id.split(b"-")[1]), epoch, decode(fields[b"m"]))


def _next_id(entry_id: bytes) -> str:
    return f"0-{int(entry_id.split(b'-')[1]) + 1}"
