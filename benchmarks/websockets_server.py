"""A relay built on the `websockets` library (new asyncio API), as a benchmark baseline.

Same behaviour as the teaching note's server: every text message received is relayed to
every connected client, the sender included, as `"<id>: <text>"`. It uses
`websockets.asyncio.server.broadcast()`, which writes the frame to each connection without
waiting and skips connections whose write buffer is above the high-water mark (the
library's documented answer to slow clients: they miss messages rather than slow everyone
down). The bench therefore sees losses, not stalls, when this server is overloaded.

Binary messages are ignored. Usage:
    python benchmarks/websockets_server.py --host 127.0.0.1 --port 8080
Prints `websockets server ready on ws://HOST:PORT/` when listening; SIGTERM/SIGINT stop it
cleanly (clients get close code 1001).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: set[ServerConnection] = set()
ids = itertools.count()


async def relay(websocket: ServerConnection) -> None:
    myid = next(ids)
    clients.add(websocket)
    try:
        async for message in websocket:
            if isinstance(message, str):
                broadcast(clients, f"{myid}: {message}")
    finally:
        clients.discard(websocket)


async def run(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    # compression=None: the bench's padding is trivially compressible, and hubbub and the
    # note server do not compress by default either.
    async with serve(relay, host, port, compression=None, backlog=4096):
        print(f"websockets server ready on ws://{host}:{port}/", flush=True)
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    asyncio.run(run(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
