"""An in-memory `hubbub.engine.fanout.Socket` for testing the engine and hub without a network."""

from __future__ import annotations

import asyncio

import orjson
from websockets.frames import Frame
from websockets.streams import StreamReader

from hubbub.core.codes import CloseCode
from hubbub.engine.fanout import HIGH_WATER


class MemorySocket:
    def __init__(self, *, framed: bool = True) -> None:
        self.framed = framed
        self.writes: list[bytes] = []
        self.texts: list[str] = []
        self.held = 0
        self.slow_closed = 0
        self.close_codes: list[int] = []
        self._drained = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def offer(self, data: bytes) -> bool:
        if self.closing():
            return True
        if self.held > HIGH_WATER:
            return False
        self.writes.append(data)
        return True

    def buffered(self) -> int:
        return self.held

    def closing(self) -> bool:
        return self.slow_closed > 0 or bool(self.close_codes)

    async def drain(self) -> None:
        await self._drained.wait()
        self._drained.clear()

    def release(self) -> None:
        """The peer read everything: the transport is empty again."""
        self.held = 0
        self._drained.set()

    async def send_text(self, text: str) -> None:
        await asyncio.sleep(0)
        self.texts.append(text)

    def close_with(self, code: int, reason: str) -> None:
        if code == CloseCode.TOO_SLOW:
            self.slow_closed += 1
        else:
            self.close_codes.append(code)

    def received(self) -> list[str]:
        """Every text the peer got, in order, whichever path it took."""
        if not self.framed or self.texts:
            return list(self.texts)
        reader = StreamReader()
        reader.feed_data(b"".join(self.writes))
        reader.feed_eof()
        out = []
        while reader.buffer:
            parser = Frame.parse(reader.read_exact, mask=False)
            try:
                next(parser)
            except StopIteration as done:
                out.append(done.value.data.decode())
        return out

    def events(self) -> list[dict[str, object]]:
        return [orjson.loads(text) for text in self.received()]
