"""The bench's receiving client against a real TCP server that sends crafted frames.

The server here is a few lines of asyncio that answer the handshake and then write exactly
the bytes a test gives it, in the chunks it gives them: that is how the fast (batched)
and slow (frame by frame) paths, fragments, control frames and hostile frames are driven.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable

import pytest

from hubbub.loadgen import payload
from hubbub.loadgen.client import GUID, connect, time_ns
from hubbub.loadgen.endpoint import Endpoint
from hubbub.loadgen.errors import BenchError
from hubbub.loadgen.tally import Tally


def frame(data: bytes, opcode: int = 0x1, fin: bool = True, masked: bool = False) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    n = len(data)
    if n < 126:
        head = bytes((first, mask_bit | n))
    elif n < 65536:
        head = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    return head + (b"\0\0\0\0" if masked else b"") + data


def bench(seq: int, prefix: str = "0: ", size: int = 64) -> bytes:
    return frame((prefix + payload.make(seq, time_ns(), size)).encode())


class Relay:
    """Answers one handshake, then writes `chunks`; records what the client sent back."""

    def __init__(self, chunks: list[bytes], accept: str | None = None,
                 status: str = "101 Switching Protocols", gap: float = 0.0) -> None:
        self.chunks = chunks
        self.gap = gap
        self.accept = accept
        self.status = status
        self.received = bytearray()
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        accept = self.accept or base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        writer.write(f"HTTP/1.1 {self.status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode())
        for chunk in self.chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(self.gap)
        try:
            async with asyncio.timeout(2):
                while data := await reader.read(4096):
                    self.received += data
        except (TimeoutError, ConnectionError):
            pass
        self.done.set()
        writer.close()


Serve = Callable[[Relay], asyncio.Future[str]]
"""The `serve` fixture: start a relay, get the URL it listens on."""


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(relay: Relay) -> str:
        server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws"

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


async def settle(tally: Tally, count: int) -> None:
    """Wait until `count` frames were seen; the tally is a plain counter, with no event to
    wait on, so it is polled (bounded by the timeout)."""
    async with asyncio.timeout(5):
        while tally.received + tally.stale + tally.other < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_many_frames_in_one_write_are_all_counted(serve: Serve) -> None:
    frames = b"".join(bench(seq) for seq in range(1, 501))
    url = await serve(Relay([frames]))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await settle(tally, 500)
    assert tally.received == 500
    assert tally.out_of_order == 0
    assert tally.latencies().size == 500
    assert (tally.latencies() >= 0).all()
    client.close()


async def test_frames_split_at_every_byte_are_all_counted(serve: Serve) -> None:
    stream = bench(1) + bench(2) + frame(b"hello") + bench(3)
    url = await serve(Relay([stream[i : i + 1] for i in range(len(stream))]))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await settle(tally, 4)
    assert (tally.received, tally.other, tally.other_samples) == (3, 1, ["hello"])
    client.close()


async def test_small_groups_of_frames_are_counted_and_checked(serve: Serve) -> None:
    # Chunks of a few frames, apart in time so that each arrives in its own read: the path
    # that decodes them straight from the received bytes.
    lookalike = frame(b"0: " + b"y" * 64)  # exactly as long as a bench frame
    assert len(lookalike) == len(bench(0))
    chunks = [bench(1), bench(2) + bench(3) + bench(4), bench(6) + bench(5),
              bench(7) + lookalike, bench(8) + bench(9)]
    url = await serve(Relay(chunks, gap=0.05))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await settle(tally, 10)
    assert (tally.received, tally.other, tally.out_of_order) == (9, 1, 1)
    client.close()


async def test_a_foreign_frame_inside_a_batch_breaks_nothing(serve: Serve) -> None:
    chunk = b"".join(bench(s) for s in range(20)) + frame(b"error: rate limited") + \
        b"".join(bench(s) for s in range(20, 40)) + bench(40, prefix="somebody-else: ")
    url = await serve(Relay([chunk]))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await settle(tally, 42)
    assert (tally.received, tally.other, tally.out_of_order) == (41, 1, 0)
    client.close()


async def test_fragments_ping_and_stale_messages(serve: Serve) -> None:
    text = ("0: " + payload.make(7, time_ns(), 64)).encode()
    stream = (frame(text[:10], fin=False) + frame(b"ping!", opcode=0x9)
              + frame(text[10:], opcode=0x0) + bench(3) + bench(8) + bench(8))
    relay = Relay([stream])
    url = await serve(relay)
    tally = Tally()
    tally.begin(5)
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await settle(tally, 4)
    # seq 3 belongs to an earlier point; the second 8 is a duplicate.
    assert (tally.received, tally.stale, tally.out_of_order) == (3, 1, 2)
    client.close()
    await asyncio.wait_for(relay.done.wait(), 5)
    assert relay.received[:1] == b"\x8a"  # the pong came back first, masked
    assert relay.received[1] & 0x80


async def test_server_close_code_is_recorded(serve: Serve) -> None:
    url = await serve(Relay([bench(1), frame((4008).to_bytes(2, "big") + b"too slow", 0x8)]))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await asyncio.wait_for(client.lost, 5)
    assert client.close_code == 4008
    assert tally.received == 1


@pytest.mark.parametrize("hostile", [
    frame(b"x" * 10, masked=True),
    bytes((0x81, 127)) + (2**62).to_bytes(8, "big"),
    frame(b"", opcode=0x3),
])
async def test_hostile_frames_close_the_connection(serve: Serve, hostile: bytes) -> None:
    url = await serve(Relay([bench(1), hostile]))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await asyncio.wait_for(client.lost, 5)
    assert client.error
    assert tally.received == 1


async def test_binary_frames_are_counted_as_unexpected(serve: Serve) -> None:
    url = await serve(Relay([frame(b"\x00\x01", opcode=0x2), bench(1)]))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=False, limit_s=5)
    await settle(tally, 2)
    assert (tally.received, tally.other) == (1, 1)
    client.close()


@pytest.mark.parametrize(("relay", "reason"), [
    (Relay([], accept="bm90IHRoZSByaWdodCBrZXk="), "Sec-WebSocket-Accept"),
    (Relay([], status="403 Forbidden"), "403"),
])
async def test_bad_handshakes_fail_with_a_reason(serve: Serve, relay: Relay, reason: str) -> None:
    url = await serve(relay)
    with pytest.raises(BenchError, match=reason):
        await connect(Endpoint.parse(url), Tally(), stalled=False, limit_s=5)


async def test_a_stalled_client_reads_nothing_until_released(serve: Serve) -> None:
    url = await serve(Relay([bench(s) for s in range(1, 11)]))
    tally = Tally()
    client = await connect(Endpoint.parse(url), tally, stalled=True, limit_s=5)
    await asyncio.sleep(0.3)
    assert tally.received == 0
    client.release()
    await settle(tally, 10)
    assert tally.received == 10
    client.close()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:1/ws", "wss://127.0.0.1/ws", "ws://", "ws://127.0.0.1:99999/",
    "ws://127.0.0.1/a b", "ws://127.0.0.1/\x00", "127.0.0.1:80",
])
def test_endpoint_rejects_unusable_urls(url: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(url)


def test_endpoint_keeps_path_and_query() -> None:
    endpoint = Endpoint.parse("ws://localhost:8080/ws?nick=bench")
    assert (endpoint.host, endpoint.port, endpoint.target) == ("localhost", 8080, "/ws?nick=bench")
