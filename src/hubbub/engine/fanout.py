"""Fanout: getting one payload to many sockets, four ways.

`auto` (the default) is the engine hubbub is built around:

- A payload is framed once (`Payload.frame`) and the same bytes go to every socket.
- Publishing is O(1) per message: a fan-out only records the frame for its audience.
  Once per event-loop pass, `_flush` joins each audience's frames and writes them to each
  member in one `transport.write` (the way uWebSockets corks a socket per loop pass), so
  messages that arrive together leave together and a busy server makes fewer, larger
  writes: throughput rises with load instead of collapsing.
- Nothing in the fan-out loop awaits a socket. A socket whose kernel buffer is full (its
  transport holds more than `HIGH_WATER` bytes) gets an `Outbox` and a writer task, which
  exist only while that backlog does; when the socket drains, the whole backlog goes out in
  one write.
- The slow-client policy: an outbox over its byte limit closes its connection with 4008
  (too slow) instead of letting one reader hold memory without bound. Other recipients
  never wait for it. Sockets that are not `framed` get the same limit (`AutoFanout.outlet`).

`sequential`, `concurrent` and `queued` are the teaching note's three options, kept so the
benchmark and the docs can compare them on the same server: an `await` per recipient in
turn, a `gather` of sends, and a queue plus a writer task per connection. The first two run
in one delivery task per server, since a fan-out is handed over in a plain callback.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Protocol

from hubbub.core.codes import CloseCode
from hubbub.core.outbox import Outbox
from hubbub.core.wsframe import text_frame

log = logging.getLogger("hubbub.fanout")  # the name operators see in the logs

HIGH_WATER = 64 * 1024
"""Bytes a socket's transport may hold before it counts as lagging (asyncio's default)."""


class Socket(Protocol):
    """What delivery needs from one WebSocket; the aiohttp adapter implements it."""

    @property
    def framed(self) -> bool:
        """True when pre-framed bytes may be written (no per-connection extension)."""

    def write(self, data: bytes) -> None:
        """Write already-framed bytes to the transport without waiting."""

    def offer(self, data: bytes) -> bool:
        """Write `data` now, unless the transport already holds more than `HIGH_WATER`
        bytes: then write nothing and return False. A closing connection drops it (True)."""

    def buffered(self) -> int:
        """Bytes the transport has accepted but not yet handed to the kernel."""

    def closing(self) -> bool: ...

    async def drain(self) -> None:
        """Return once the transport's buffer is below its low-water mark."""

    async def send_text(self, text: str) -> None:
        """Frame and send with the WebSocket library (the naive strategies' path)."""

    def close_with(self, code: int, reason: str) -> None:
        """Close with `code` now, aborting if even that cannot be written soon."""


class UnframedSocket:
    """Base of the sockets that carry text, not WebSocket frames (SSE streams): `framed` is
    False, so the engine hands them text through its queued path and never calls `write`
    or `offer`."""

    __slots__ = ()

    @property
    def framed(self) -> bool:
        return False

    def write(self, data: bytes) -> None:  # pragma: no cover - only for framed sockets
        raise NotImplementedError

    def offer(self, data: bytes) -> bool:  # pragma: no cover - only for framed sockets
        raise NotImplementedError


class Payload:
    """One text frame's content, encoded once and framed at most once."""

    __slots__ = ("_frame", "_text", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._frame: bytes | None = None
        self._text: str | None = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.data)
        return self._frame

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.data.decode()
        return self._text


class Outlet:
    """One connection's end of the delivery engine; each strategy keeps its state here."""

    # One per connection, like its subclasses: without __slots__ here, every outlet would
    # carry a __dict__ (~100 bytes per idle connection) despite theirs.
    __slots__ = ("socket",)

    def __init__(self, socket: Socket) -> None:
        self.socket = socket

    async def close(self) -> None:
        """Write what is pending, then stop any writer task."""

    def held(self) -> int:
        """Bytes waiting in this connection's outbox now (for `/metrics`)."""
        return 0


class Fanout(abc.ABC):
    """Counters are plain integers, read by `/metrics` when it is scraped: the fan-out is
    the hot path, and a Prometheus call per message would cost more than the rest of it."""

    name: str

    def __init__(self, outbox_limit: int) -> None:
        self.outbox_limit = outbox_limit
        self.deliveries = 0
        """Fan-out copies handed to the engine (one per recipient per message)."""
        self.sends = 0
        """Frames sent to one connection (replies, replays, greetings)."""
        self.sent_bytes = 0
        """Payload bytes of both, WebSocket framing not included."""
        self.slow_closes = 0
        self.on_written: Callable[[float], None] | None = None
        """Called once per batch of fan-out frames, once the batch has been handed to the
        sockets, with the seconds since its oldest message was published (see `published`),
        or reached the engine if nobody said."""

    @abc.abstractmethod
    def outlet(self, socket: Socket) -> Outlet: ...

    def flush(self) -> None:  # noqa: B027 - only buffering strategies need it
        """Write whatever is buffered now (before a shutdown closes the sockets)."""

    @abc.abstractmethod
    def reply(self, outlet: Outlet, payload: Payload) -> None:
        """Send to one connection, in order with everything else sent to it, without
        waiting (a connection's acks go out from the store's commit step)."""

    async def send(self, outlet: Outlet, payload: Payload) -> None:
        """`reply`, for callers that may wait: strategies that write in a task of their
        own return once it has written."""
        self.reply(outlet, payload)

    @abc.abstractmethod
    def broadcast(self, outlets: Iterable[Outlet], payload: Payload,
               audience: Hashable | None = None) -> None:
        """Send to every outlet, in order with everything sent before, without waiting:
        the store hands committed messages over in a plain callback (see
        `MessageStore.listen`). `audience`, if given, names a stable set of recipients
        (see `AutoFanout`); strategies that do not batch ignore it."""

    def published(self, at: float) -> None:  # noqa: B027 - only `auto` measures batches
        """The fan-outs that follow carry messages published at `at` (Unix time, seconds)
        or later, so the next batch's write latency counts from then."""

    async def drain(self, outlet: Outlet) -> None:
        """Return once what was sent to `outlet` so far has left the server's own buffers
        (or the connection is closing); a replay waits for it between pages (`Hub._catch_up`)."""
        await outlet.socket.drain()

    def _too_slow(self, outlet: Outlet) -> None:
        self.slow_closes += 1
        log.warning("closing a connection that fell %d bytes behind (4008)", self.outbox_limit)
        outlet.socket.close_with(CloseCode.TOO_SLOW, "too slow")


# --- auto -------------------------------------------------------------------------------


class CorkedOutlet(Outlet):
    __slots__ = ("backlogged", "outbox", "writer")

    def __init__(self, socket: Socket) -> None:
        super().__init__(socket)
        # Created on the first backlog: most connections never lag, and idle ones are many.
        self.outbox: Outbox | None = None
        self.writer: asyncio.Task[None] | None = None
        # True while frames wait in the outbox (or it overflowed): later frames must queue
        # behind them rather than overtake them with a direct write.
        self.backlogged = False

    async def close(self) -> None:
        if self.outbox and not self.socket.closing():
            self.socket.write(self.outbox.take())
        if self.writer is not None:
            self.writer.cancel()

    def held(self) -> int:
        return 0 if self.outbox is None else self.outbox.size


class _Group:
    """Frames for one audience, gathered during one loop pass and written once per member.

    `detached` members got a frame of their own (a reply, say) after the group was opened;
    to keep their frames in order they are skipped when the group is written and receive
    the group's frames as individual writes instead.
    """

    __slots__ = ("audience", "detached", "frames", "members", "outlets")

    def __init__(self, outlets: list[CorkedOutlet], frame: bytes,
                 audience: Hashable | None) -> None:
        self.outlets = outlets
        self.audience = audience
        self.frames = [frame]
        self.members: set[CorkedOutlet] | None = None
        self.detached: set[CorkedOutlet] | None = None

    def holds(self, outlet: CorkedOutlet) -> bool:
        """Whether `outlet` is among the members this group still writes to."""
        if self.members is None:
            self.members = set(self.outlets)
        return outlet in self.members and (self.detached is None or outlet not in self.detached)

    def detach(self, outlet: CorkedOutlet) -> bytes:
        """Stop writing to `outlet`; returns the frames it would have had so far."""
        if self.detached is None:
            self.detached = set()
        self.detached.add(outlet)
        return b"".join(self.frames)


_Write = tuple[CorkedOutlet, bytes]


class AutoFanout(Fanout):
    """Publishing costs O(1) per message; writing costs one call per socket per loop pass.

    A fan-out only records `(audience, frame)`: messages to the same audience within one
    loop pass join one `_Group`. Once per pass `_flush` joins each group's frames and hands
    the bytes to each member's socket, which writes them at once unless the kernel buffer
    is full; only then does the member get an outbox and a writer task. Per-recipient work
    therefore happens once per pass, not once per message, and the busier the server, the
    more messages each write carries.

    Every socket receives its frames in the order they were sent to it: operations are
    written in the order they were made, and a group is only extended while it is the
    newest one for its audience key, with members that got a frame of their own since it
    opened detached from it (see `_Group`).
    """

    name = "auto"

    def __init__(self, outbox_limit: int) -> None:
        super().__init__(outbox_limit)
        self._ops: list[_Group | _Write] = []
        self._open: dict[Hashable, _Group] = {}
        self._flush_scheduled = False
        self._oldest = 0.0  # Unix time of the oldest message waiting for `_flush` (0: none)
        self._fallback = QueuedFanout(outbox_limit)
        self._mixed = False  # set once a connection needs the fallback: checks get per-member

    def outlet(self, socket: Socket) -> Outlet:
        if not socket.framed:
            # permessage-deflate gives each connection its own compressor state, so its
            # frames cannot be shared; such connections (and SSE and ASGI sockets, which
            # take text or one awaited message per frame) get a bounded queue and a writer
            # task each, under the same outbox limit and slow-client policy.
            self._mixed = True
            return self._fallback.outlet(socket)
        return CorkedOutlet(socket)

    def reply(self, outlet: Outlet, payload: Payload) -> None:
        self.sends += 1
        self.sent_bytes += len(payload.data)
        if not isinstance(outlet, CorkedOutlet):
            self._fallback.push(outlet, payload)
            return
        ops = self._ops
        for group in self._open.values():
            if group.holds(outlet):
                ops.append((outlet, group.detach(outlet)))
        ops.append((outlet, payload.frame))
        self._schedule()

    def broadcast(self, outlets: Iterable[Outlet], payload: Payload,
               audience: Hashable | None = None) -> None:
        """`audience` names a stable recipient set (the hub's key is `(room name, Wire)`:
        a room's live members of one wire format): consecutive messages passed the same
        `outlets` list with the same key share writes even when other operations came in
        between."""
        members = outlets if isinstance(outlets, list) else list(outlets)
        count = len(members)
        self.deliveries += count
        self.sent_bytes += count * len(payload.data)
        if self._mixed:
            members = self._split_fallback(members, payload)
            audience = None
        if not members:
            return
        if not self._oldest:
            self._oldest = time.time()
        frame = payload.frame
        group = None if audience is None else self._open.get(audience)
        if group is not None and group.outlets is not members:
            group = None  # the audience changed since: its old group must stay as it is
        if group is None and self._ops:
            # Otherwise only the newest operation can be extended: for the same key (a
            # group holds one audience's frames, so detaching a member from it never moves
            # another audience's frames) and the same recipients (compared in C).
            last = self._ops[-1]
            if (isinstance(last, _Group) and last.audience == audience
                    and (last.outlets is members or last.outlets == members)):
                group = last
        if group is not None:
            group.frames.append(frame)
            if group.detached:
                self._ops.extend((outlet, frame) for outlet in group.detached)
            return
        group = _Group(members, frame, audience)  # type: ignore[arg-type]  # all corked
        self._ops.append(group)
        if audience is not None:
            self._open[audience] = group
        self._schedule()

    def _split_fallback(self, outlets: list[Outlet], payload: Payload) -> list[Outlet]:
        corked: list[Outlet] = []
        for outlet in outlets:
            if isinstance(outlet, CorkedOutlet):
                corked.append(outlet)
            else:
                self._fallback.push(outlet, payload)
        return corked

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def flush(self) -> None:
        self._flush()

    def published(self, at: float) -> None:
        if not self._oldest or at < self._oldest:
            self._oldest = at

    async def drain(self, outlet: Outlet) -> None:
        if not isinstance(outlet, CorkedOutlet):
            await self._fallback.drain(outlet)
            return
        if self._flush_scheduled:
            self._flush()
        # After a flush, only a lagging socket still holds frames here: in its outbox, which
        # its writer task empties before it ends (or the connection closes).
        if outlet.writer is not None:
            await asyncio.wait((outlet.writer,))

    def _flush(self) -> None:
        self._flush_scheduled = False
        ops, self._ops = self._ops, []
        self._open.clear()
        queue = self._queue
        for op in ops:
            if isinstance(op, _Group):
                frames = op.frames
                data = frames[0] if len(frames) == 1 else b"".join(frames)
                skip = op.detached
                for outlet in op.outlets:
                    if skip is not None and outlet in skip:
                        continue
                    if outlet.backlogged or not outlet.socket.offer(data):
                        queue(outlet, data)
            else:
                outlet, data = op
                if outlet.backlogged or not outlet.socket.offer(data):
                    queue(outlet, data)
        # Once per pass, not per recipient: the wait of the oldest message written.
        if self._oldest:
            if self.on_written is not None:
                self.on_written(max(time.time() - self._oldest, 0.0))
            self._oldest = 0.0

    def _queue(self, outlet: CorkedOutlet, data: bytes) -> None:
        """Hold `data` for a socket whose kernel buffer is full, behind what it already has."""
        socket = outlet.socket
        if socket.closing():
            return
        outbox = outlet.outbox
        if outbox is None:
            outbox = outlet.outbox = Outbox(self.outbox_limit)
        if outbox.overflowed:
            return
        outlet.backlogged = True
        if not outbox.push(data, socket.buffered()):
            self._too_slow(outlet)
            return
        if outlet.writer is None:
            outlet.writer = asyncio.create_task(self._drain_backlog(outlet, outbox))

    async def _drain_backlog(self, outlet: CorkedOutlet, outbox: Outbox) -> None:
        """Wait for a lagging socket, then write its whole backlog at once, until caught up."""
        socket = outlet.socket
        try:
            while outbox and not socket.closing():
                await socket.drain()
                if outbox and not socket.closing():
                    socket.write(outbox.take())
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("writer for a lagging connection failed")
        finally:
            outlet.writer = None
            # Caught up: the next frames may be written directly again. An overflowed
            # outlet stays backlogged: its connection is being closed with 4008 and must not
            # receive anything after the gap.
            outlet.backlogged = outbox.overflowed or bool(outbox)


# --- the teaching note's strategies -------------------------------------------------------


class SequentialFanout(Fanout):
    """`for ws in members: await ws.send_str(text)`: one slow reader stalls everyone.

    Fan-outs and sends are done in order by one task per server, as the note's loop would
    do them one after another.
    """

    name = "sequential"

    def __init__(self, outbox_limit: int) -> None:
        super().__init__(outbox_limit)
        # (recipients, payload, future to set once written, whether it is a fan-out)
        self._jobs: asyncio.Queue[tuple[list[Outlet], Payload, asyncio.Future[None] | None,
                                        bool]]
        self._jobs = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def outlet(self, socket: Socket) -> Outlet:
        return _PlainOutlet(socket)

    def _enqueue(self, outlets: list[Outlet], payload: Payload,
                 done: asyncio.Future[None] | None = None, *, fanout: bool = False) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        self._jobs.put_nowait((outlets, payload, done, fanout))

    async def _work(self) -> None:
        while True:
            outlets, payload, done, fanout = await self._jobs.get()
            started = time.monotonic()
            try:
                await self._send_all(outlets, payload.text)
            except Exception:
                log.exception("%s delivery failed", self.name)
            finally:
                if done is not None and not done.done():
                    done.set_result(None)
            if fanout:
                self._written(started)

    async def _send_all(self, outlets: list[Outlet], text: str) -> None:
        for outlet in outlets:
            await _send_quietly(outlet.socket, text)

    def reply(self, outlet: Outlet, payload: Payload) -> None:
        self.sends += 1
        self.sent_bytes += len(payload.data)
        self._enqueue([outlet], payload)

    async def send(self, outlet: Outlet, payload: Payload) -> None:
        self.sends += 1
        self.sent_bytes += len(payload.data)
        done = asyncio.get_running_loop().create_future()
        self._enqueue([outlet], payload, done)
        await done

    async def drain(self, outlet: Outlet) -> None:
        done = asyncio.get_running_loop().create_future()
        self._enqueue([], Payload(b""), done)
        await done

    def broadcast(self, outlets: Iterable[Outlet], payload: Payload,
               audience: Hashable | None = None) -> None:
        members = list(outlets)
        self.deliveries += len(members)
        self.sent_bytes += len(members) * len(payload.data)
        self._enqueue(members, payload, fanout=True)

    def _written(self, started: float) -> None:
        if self.on_written is not None:
            self.on_written(time.monotonic() - started)


class ConcurrentFanout(SequentialFanout):
    """`await asyncio.gather(*sends)`: one task per recipient per message."""

    name = "concurrent"

    async def _send_all(self, outlets: list[Outlet], text: str) -> None:
        await asyncio.gather(*(_send_quietly(outlet.socket, text) for outlet in outlets))


class _PlainOutlet(Outlet):
    __slots__ = ()


async def _send_quietly(socket: Socket, text: str) -> None:
    # A recipient that vanished mid-send is routine in a fan-out; its own handler cleans up.
    if socket.closing():
        return
    with contextlib.suppress(ConnectionError):
        await socket.send_text(text)


class QueuedOutlet(Outlet):
    __slots__ = ("overflowed", "queue", "queued_bytes", "task")

    def __init__(self, socket: Socket) -> None:
        super().__init__(socket)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.queued_bytes = 0
        self.overflowed = False
        self.task = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while True:
            text = await self.queue.get()
            self.queued_bytes -= len(text)
            try:
                await _send_quietly(self.socket, text)
            except Exception:
                log.exception("queued writer failed")
            finally:
                self.queue.task_done()

    async def close(self) -> None:
        self.task.cancel()

    def held(self) -> int:
        return self.queued_bytes


class QueuedFanout(Fanout):
    """A queue and a writer task per connection: no recipient waits for another."""

    name = "queued"

    def outlet(self, socket: Socket) -> Outlet:
        return QueuedOutlet(socket)

    def push(self, outlet: Outlet, payload: Payload) -> None:
        assert isinstance(outlet, QueuedOutlet)
        if outlet.overflowed:
            return
        text = payload.text
        if outlet.queued_bytes + len(text) > self.outbox_limit:
            outlet.overflowed = True
            self._too_slow(outlet)
            return
        outlet.queued_bytes += len(text)
        outlet.queue.put_nowait(text)

    def reply(self, outlet: Outlet, payload: Payload) -> None:
        self.sends += 1
        self.sent_bytes += len(payload.data)
        self.push(outlet, payload)

    def broadcast(self, outlets: Iterable[Outlet], payload: Payload,
               audience: Hashable | None = None) -> None:
        size = len(payload.data)
        for outlet in outlets:
            self.push(outlet, payload)
            self.deliveries += 1
            self.sent_bytes += size

    async def drain(self, outlet: Outlet) -> None:
        assert isinstance(outlet, QueuedOutlet)
        if not outlet.task.done():
            await outlet.queue.join()


def make_fanout(strategy: str, outbox_limit: int) -> Fanout:
    kinds: dict[str, type[Fanout]] = {
        "auto": AutoFanout,
        "sequential": SequentialFanout,
        "concurrent": ConcurrentFanout,
        "queued": QueuedFanout,
    }
    return kinds[strategy](outbox_limit)
