"""A receive-only WebSocket client protocol, fast enough that the bench is not the bottleneck.

Why not aiohttp's client: awaiting `ws.receive()` costs a few microseconds of event-loop
work per message, so one core tops out well below the deliveries per second a good relay
reaches. Here a connection is a bare `asyncio.Protocol`: server frames are unmasked, and the
bench's messages all have the same length on a connection (see `payload.py`), so a chunk of
many frames is checked and decoded with a handful of numpy operations; anything else
(control frames, other text, fragments, a frame that breaks the pattern) takes the general
one-frame-at-a-time path. Handshake and frame rules follow RFC 6455; what is not supported
is refused loudly: extensions (none are offered), masked server frames, frames over
`MAX_FRAME`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from typing import cast

import numpy as np
import numpy.typing as npt

from hubbub.loadgen import payload
from hubbub.loadgen.endpoint import Endpoint
from hubbub.loadgen.errors import BenchError
from hubbub.loadgen.tally import Tally

log = logging.getLogger("hubbub.loadgen.client")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE = 64 * 1024
"""A handshake response larger than this is not a WebSocket server's."""
MAX_FRAME = 16 * 1024 * 1024
"""Frames above this are refused rather than buffered: the bench never asks for them."""
BATCH_MIN = 12
"""Below this many whole frames, plain Python per frame is cheaper than numpy's overhead."""

_POW10_SEQ = 10 ** np.arange(payload.SEQ_DIGITS - 1, -1, -1, dtype=np.int64)
_POW10_TIME = 10 ** np.arange(payload.TIME_DIGITS - 1, -1, -1, dtype=np.int64)
_MAGIC = np.frombuffer(payload.MAGIC, dtype=np.uint8)

time_ns = time.monotonic_ns
"""The bench's clock: CLOCK_MONOTONIC, the same in every process on the machine."""


def mask_frame(opcode: int, data: bytes) -> bytes:
    """A masked client control frame (at most 125 bytes of payload, as RFC 6455 requires)."""
    data = data[:125]
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(data))
    return bytes((0x80 | opcode, 0x80 | len(data))) + key + masked


class BenchClient(asyncio.Protocol):
    """One subscriber connection. `stalled` ones stop reading right after the handshake."""

    def __init__(self, endpoint: Endpoint, tally: Tally, stalled: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.endpoint = endpoint
        self.tally = tally
        self.stalled = stalled
        self.ready: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.error: str | None = None
        self.transport: asyncio.Transport | None = None
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._open = False
        self._fragments: bytearray | None = None
        self._last_seq = -1
        # Learned from the first bench frame: its total length, header bytes and where the
        # magic starts, all the same for every later bench frame on this connection.
        self._frame_len = 0
        self._header = b""
        self._magic_at = 0

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        host = self.endpoint.host
        if ":" in host:
            host = f"[{host}]"
        request = (
            f"GET {self.endpoint.target} HTTP/1.1\r\n"
            f"Host: {host}:{self.endpoint.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.transport.write(request.encode("ascii"))

    def data_received(self, data: bytes) -> None:
        size = self._frame_len
        if (size and not self._buf and not self.stalled and len(data) % size == 0
                and len(data) < size * BATCH_MIN and self._few_frames(data)):
            return
        self._buf += data
        if not self._open and (not self._handshake() or self.stalled):
            return
        self._consume(time_ns())

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = f"{type(exc).__name__}: {exc}"
        if not self.ready.done():
            self.ready.set_exception(
                BenchError(self.error or "server closed the connection during the handshake")
            )
        if not self.lost.done():
            self.lost.set_result(None)

    # control ----------------------------------------------------------------------------

    def release(self) -> None:
        """Stop stalling: read (and discard) everything the server managed to send."""
        self.stalled = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            if self._buf:
                self._consume(time_ns())

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(mask_frame(0x8, code.to_bytes(2, "big")))
            self.transport.close()

    def _fail(self, reason: str) -> None:
        log.error("closing connection to %s: %s", self.endpoint.url, reason)
        self.error = reason
        self.close(1002)

    # handshake --------------------------------------------------------------------------

    def _handshake(self) -> bool:
        """Parse the response once it is complete; True when the connection is open."""
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HANDSHAKE:
                self._refuse("handshake response too large")
            return False
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        status, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key + GUID).digest()).decode()
        if status.split(" ", 2)[1:2] != ["101"]:
            self._refuse(f"server answered {status!r} instead of switching protocols")
        elif headers.get("sec-websocket-accept") != expected:
            self._refuse("server sent a wrong Sec-WebSocket-Accept")
        elif headers.get("sec-websocket-extensions"):
            self._refuse("server enabled an extension the bench did not offer")
        else:
            self._open = True
            self.ready.set_result(None)
            if self.stalled and self.transport is not None:
                # The receive buffer is left alone: shrinking it below loopback's 64 KiB
                # MSS makes TCP itself stall for good once reading resumes (the window
                # never opens by a full segment), which would blame the server for it.
                self.transport.pause_reading()
        return self._open

    def _refuse(self, reason: str) -> None:
        self.error = reason
        if not self.ready.done():
            self.ready.set_exception(BenchError(reason))
        if self.transport is not None:
            self.transport.abort()

    # frames -----------------------------------------------------------------------------

    def _consume(self, now: int) -> None:
        buf = self._buf
        end = len(buf)
        pos = 0
        while end - pos >= 2 and self.transport is not None and not self.transport.is_closing():
            size = self._frame_len
            if size and end - pos >= size * BATCH_MIN:
                done = self._batch(pos, (end - pos) // size, now)
                if done:
                    pos += done * size
                    continue
            elif size and end - pos >= size and self._bench_frame_at(pos):
                self._record_one(pos + self._magic_at, now)
                pos += size
                continue
            nxt = self._frame(pos, end, now)
            if nxt == pos:
                break
            pos = nxt
        if pos:
            del buf[:pos]

    def _few_frames(self, data: bytes) -> bool:
        """The common case below saturation: a few whole bench frames and nothing pending.
        Decoded straight from `data`, with no buffer copy, at a fraction of the general
        path's cost. Returns False (having recorded nothing) if any frame is not one."""
        size, header, at = self._frame_len, self._header, self._magic_at
        found = []
        for pos in range(0, len(data), size):
            start = pos + at
            if not (data.startswith(header, pos) and data.startswith(payload.MAGIC, start)):
                return False
            try:
                seq = int(data[start + payload.SEQ_OFFSET : start + payload.SEQ_END])
                sent = int(data[start + payload.TIME_OFFSET : start + payload.TIME_END])
            except ValueError:
                return False
            found.append((seq, sent))
        now = time_ns()
        tally = self.tally
        for seq, sent in found:
            if seq <= self._last_seq:
                tally.out_of_order += 1
            self._last_seq = seq
            tally.one(seq, now - sent)
        return True

    def _bench_frame_at(self, pos: int) -> bool:
        buf = self._buf
        at = pos + self._magic_at
        return (
            buf.startswith(self._header, pos)
            and buf.startswith(payload.MAGIC, at)
            and buf[at + payload.SEQ_OFFSET : at + payload.HEADER_SIZE - 1]
            .replace(b" ", b"", 1)
            .isdigit()
        )

    def _record_one(self, at: int, now: int) -> None:
        buf = self._buf
        seq = int(buf[at + payload.SEQ_OFFSET : at + payload.SEQ_END])
        sent = int(buf[at + payload.TIME_OFFSET : at + payload.TIME_END])
        if seq <= self._last_seq:
            self.tally.out_of_order += 1
        self._last_seq = seq
        self.tally.one(seq, now - sent)

    def _batch(self, pos: int, rows: int, now: int) -> int:
        """Decode the leading run of well-formed bench frames among `rows`; returns its length."""
        size, magic_at, header = self._frame_len, self._magic_at, self._header
        seq_at = magic_at + payload.SEQ_OFFSET
        time_at = magic_at + payload.TIME_OFFSET
        frames = np.frombuffer(self._buf, dtype=np.uint8, count=rows * size, offset=pos)
        frames = frames.reshape(rows, size)
        seq_digits = frames[:, seq_at : seq_at + payload.SEQ_DIGITS].astype(np.int64) - 48
        time_digits = frames[:, time_at : time_at + payload.TIME_DIGITS].astype(np.int64) - 48
        good = (
            (frames[:, : len(header)] == np.frombuffer(header, dtype=np.uint8)).all(axis=1)
            & (frames[:, magic_at : magic_at + len(_MAGIC)] == _MAGIC).all(axis=1)
            & ((seq_digits >= 0) & (seq_digits <= 9)).all(axis=1)
            & ((time_digits >= 0) & (time_digits <= 9)).all(axis=1)
        )
        del frames  # the view pins the bytearray: it must go before the caller resizes it
        count = rows if bool(good.all()) else int(np.argmin(good))
        if count:
            seqs: npt.NDArray[np.int64] = seq_digits[:count] @ _POW10_SEQ
            sent: npt.NDArray[np.int64] = time_digits[:count] @ _POW10_TIME
            disorder = int(seqs[0] <= self._last_seq) + int(np.count_nonzero(seqs[1:] <= seqs[:-1]))
            self.tally.out_of_order += disorder
            self._last_seq = int(seqs[-1])
            self.tally.many(seqs, now - sent)
        return count

    def _frame(self, pos: int, end: int, now: int) -> int:
        """Handle one frame of any kind at `pos`; returns the position after it (or `pos`
        when the frame is not complete yet)."""
        buf = self._buf
        first, second = buf[pos], buf[pos + 1]
        if second & 0x80:
            self._fail("server sent a masked frame")
            return end
        length, head = second & 0x7F, 2
        if length == 126:
            if end - pos < 4:
                return pos
            length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if end - pos < 10:
                return pos
            length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        if length > MAX_FRAME:
            self._fail(f"server sent a {length}-byte frame (limit {MAX_FRAME})")
            return end
        stop = pos + head + length
        if stop > end:
            return pos
        fin, opcode = first & 0x80, first & 0x0F
        data = bytes(buf[pos + head : stop])
        if opcode in (0x0, 0x1, 0x2):
            if self._fragments is not None or not fin:
                if self._fragments is None:
                    self._fragments = bytearray()
                self._fragments += data
                if fin:
                    self._message(bytes(self._fragments), now)
                    self._fragments = None
            elif opcode == 0x2:
                self.tally.unexpected(f"<binary frame of {length} bytes>")
            else:
                self._message(data, now, frame=(pos, head, length))
        elif opcode == 0x8:
            self.close_code = int.from_bytes(data[:2], "big") if length >= 2 else 1005
            self.close(self.close_code if self.close_code != 1005 else 1000)
        elif opcode == 0x9:
            assert self.transport is not None
            self.transport.write(mask_frame(0xA, data))
        elif opcode != 0xA:
            self._fail(f"server sent a frame with reserved opcode {opcode}")
            return end
        return stop

    def _message(self, data: bytes, now: int, frame: tuple[int, int, int] | None = None) -> None:
        parsed = payload.parse(data)
        if parsed is None:
            self.tally.unexpected(data.decode("utf-8", "replace"))
            return
        seq, sent = parsed
        if seq <= self._last_seq:
            self.tally.out_of_order += 1
        self._last_seq = seq
        self.tally.one(seq, now - sent)
        if frame is not None:
            pos, head, length = frame
            self._frame_len = head + length
            self._header = bytes(self._buf[pos : pos + head])
            self._magic_at = head + data.find(payload.MAGIC)


async def connect(endpoint: Endpoint, tally: Tally, stalled: bool, limit_s: float) -> BenchClient:
    """Open one client and wait for its handshake (at most `limit_s`); raises BenchError,
    OSError or TimeoutError."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(limit_s):
        transport, client = await loop.create_connection(
            lambda: BenchClient(endpoint, tally, stalled), endpoint.host, endpoint.port
        )
        try:
            await client.ready
        except BaseException:
            transport.abort()
            raise
    return client
