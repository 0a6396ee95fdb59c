"""Delivery: getting one payload to many sockets, four ways.

`auto` (the default) is the engine hubbub is built around:

- A payload is framed once (`Payload.frame`) and the same bytes go to every socket.
- Nothing in the fan-out loop awaits a socket. Each recipient's frames go to its
  `Outbox`; once per event-loop pass, `flush` writes every outbox that has anything in one
  `transport.write` (the way uWebSockets corks a socket per loop pass), so messages that
  arrive together leave together and a busy server makes fewer, larger writes.
- A socket whose kernel buffer is full (its transport holds more than `HIGH_WATER` bytes)
  is not written to; its outbox keeps growing until a writer task, which exists only while
  that backlog does, sees the socket drain and writes the whole backlog at once.
- An outbox over its byte limit closes its connection with 4008 (too slow). Other
  recipients never wait for it.

`sequential`, `concurrent` and `queued` are the teaching note's three options, kept so the
benchmark and the docs can compare them on the same server: an `await` per recipient in
turn, a `gather` of sends, and a queue plus a writer task per connection.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from hubbub.core.outbox import Outbox
from hubbub.core.wsframe import text_frame

log = logging.getLogger("hubbub.fanout")

HIGH_WATER = 64 * 1024
"""Bytes a socket's transport may hold before it counts as lagging (asyncio's default)."""


class Socket(Protocol):
    """What delivery needs from one WebSocket; the aiohttp adapter implements it."""

    @property
    def framed(self) -> bool:
        """True when pre-framed bytes may be written (no per-connection extension)."""

    def write(self, data: bytes) -> None:
        """Write already-framed bytes to the transport without waiting."""

    def buffered(self) -> int:
        """Bytes the transport has accepted but not yet handed to the kernel."""

    def closing(self) -> bool: ...

    async def drain(self) -> None:
        """Return once the transport's buffer is below its low-water mark."""

    async def send_text(self, text: str) -> None:
        """Frame and send with the WebSocket library (the naive strategies' path)."""

    def close_too_slow(self) -> None:
        """Close with 4008, aborting if even that cannot be written soon."""


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

    def __init__(self, socket: Socket) -> None:
        self.socket = socket

    async def close(self) -> None:
        """Write what is pending, then stop any writer task."""


class Delivery(abc.ABC):
    name: str

    def __init__(self, outbox_limit: int) -> None:
        self.outbox_limit = outbox_limit
        self.deliveries = 0
        self.slow_closes = 0

    @abc.abstractmethod
    def outlet(self, socket: Socket) -> Outlet: ...

    def flush(self) -> None:  # noqa: B027 - only buffering strategies need it
        """Write whatever is buffered now (before a shutdown closes the sockets)."""

    @abc.abstractmethod
    async def send(self, outlet: Outlet, payload: Payload) -> None:
        """Send to one connection, in order with everything else sent to it."""

    @abc.abstractmethod
    async def fanout(self, outlets: Iterable[Outlet], payload: Payload) -> None: ...

    def _too_slow(self, outlet: Outlet) -> None:
        self.slow_closes += 1
        log.warning("closing a connection that fell %d bytes behind (4008)", self.outbox_limit)
        outlet.socket.close_too_slow()


# --- auto -------------------------------------------------------------------------------


class CorkedOutlet(Outlet):
    __slots__ = ("outbox", "writer")

    def __init__(self, socket: Socket, limit: int) -> None:
        super().__init__(socket)
        self.outbox = Outbox(limit)
        self.writer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.outbox and not self.socket.closing():
            self.socket.write(self.outbox.take())
        if self.writer is not None:
            self.writer.cancel()


class AutoDelivery(Delivery):
    name = "auto"

    def __init__(self, outbox_limit: int) -> None:
        super().__init__(outbox_limit)
        self._dirty: dict[CorkedOutlet, None] = {}
        self._flush_scheduled = False
        self._fallback = QueuedDelivery(outbox_limit)

    def outlet(self, socket: Socket) -> Outlet:
        if not socket.framed:
            # permessage-deflate gives each connection its own compressor state, so its
            # frames cannot be shared; such connections get a writer task each.
            return self._fallback.outlet(socket)
        return CorkedOutlet(socket, self.outbox_limit)

    async def send(self, outlet: Outlet, payload: Payload) -> None:
        self._push(outlet, payload)

    async def fanout(self, outlets: Iterable[Outlet], payload: Payload) -> None:
        push = self._push
        count = 0
        for outlet in outlets:
            push(outlet, payload)
            count += 1
        self.deliveries += count

    def _push(self, outlet: Outlet, payload: Payload) -> None:
        if not isinstance(outlet, CorkedOutlet):
            self._fallback.push(outlet, payload)
            return
        if outlet.outbox.overflowed:
            return
        frame = payload.frame
        if not outlet.outbox.push(frame, outlet.socket.buffered()):
            self._too_slow(outlet)
            return
        if outlet.writer is None:
            self._dirty[outlet] = None
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    def flush(self) -> None:
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, {}
        for outlet in dirty:
            if outlet.writer is not None or not outlet.outbox:
                continue
            socket = outlet.socket
            if socket.closing():
                outlet.outbox.take()
            elif socket.buffered() <= HIGH_WATER:
                socket.write(outlet.outbox.take())
            else:
                outlet.writer = asyncio.create_task(self._drain_backlog(outlet))

    async def _drain_backlog(self, outlet: CorkedOutlet) -> None:
        """Wait for a lagging socket, then write its whole backlog at once, until caught up."""
        socket = outlet.socket
        try:
            while outlet.outbox and not socket.closing():
                await socket.drain()
                if outlet.outbox and not socket.closing():
                    socket.write(outlet.outbox.take())
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("writer for a lagging connection failed")
        finally:
            outlet.writer = None


# --- the teaching note's strategies -------------------------------------------------------


class SequentialDelivery(Delivery):
    """`for ws in members: await ws.send_str(text)`: one slow reader stalls everyone."""

    name = "sequential"

    def outlet(self, socket: Socket) -> Outlet:
        return _PlainOutlet(socket)

    async def send(self, outlet: Outlet, payload: Payload) -> None:
        await _send_quietly(outlet.socket, payload.text)

    async def fanout(self, outlets: Iterable[Outlet], payload: Payload) -> None:
        text = payload.text
        for outlet in list(outlets):
            await _send_quietly(outlet.socket, text)
            self.deliveries += 1


class ConcurrentDelivery(SequentialDelivery):
    """`await asyncio.gather(*sends)`: one task per recipient per message."""

    name = "concurrent"

    async def fanout(self, outlets: Iterable[Outlet], payload: Payload) -> None:
        text = payload.text
        sends = [_send_quietly(outlet.socket, text) for outlet in outlets]
        self.deliveries += len(sends)
        await asyncio.gather(*sends)


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

    async def close(self) -> None:
        self.task.cancel()


class QueuedDelivery(Delivery):
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

    async def send(self, outlet: Outlet, payload: Payload) -> None:
        self.push(outlet, payload)

    async def fanout(self, outlets: Iterable[Outlet], payload: Payload) -> None:
        for outlet in outlets:
            self.push(outlet, payload)
            self.deliveries += 1


def make_delivery(strategy: str, outbox_limit: int) -> Delivery:
    kinds: dict[str, type[Delivery]] = {
        "auto": AutoDelivery,
        "sequential": SequentialDelivery,
        "concurrent": ConcurrentDelivery,
        "queued": QueuedDelivery,
    }
    return kinds[strategy](outbox_limit)
