"""The teaching note's chat server (websockets-notes.txt, section 2.1), as a benchmark baseline.

Every text frame received on `/ws` is relayed to every connected client, the sender
included, as `f"{myid}: {msg.data}"`, awaiting each `send_str` in turn: the "one at a
time" publishing that section 4 of the note calls inefficient. This is the baseline the
bench compares hubbub's fan-out strategies against, so the relay loop is kept as written.

Two deliberate deviations, both so that the baseline measures fan-out rather than crashing:

- The relay iterates over a snapshot (`tuple(allws.values())`): the note iterates the live
  dict, which raises "dictionary changed size during iteration" and kills the sender's
  handler whenever a client connects or leaves during a broadcast.
- A send to a client that is closing is skipped (and counted) instead of propagating the
  error out of the sender's handler, which would disconnect the sender.

Usage: python benchmarks/note_server.py --host 127.0.0.1 --port 8080
Prints `note server ready on ws://HOST:PORT/ws` when listening; SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import WSMsgType, web

allws: dict[int, web.WebSocketResponse] = {}
nextid = 0
failed_sends = 0


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    global nextid, failed_sends
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    myid = nextid
    nextid += 1
    allws[myid] = ws
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                for other in tuple(allws.values()):
                    try:
                        await other.send_str(f"{myid}: {msg.data}")
                    except ConnectionError:
                        failed_sends += 1
            elif msg.type == WSMsgType.ERROR:
                print(f"ws {myid} received exception {ws.exception()}", flush=True)
    finally:
        del allws[myid]
    return ws


async def shutdown_ws(app: web.Application) -> None:
    for other in tuple(allws.values()):
        await other.close()


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.add_routes([web.get("/ws", websocket_handler)])
    app.on_shutdown.append(shutdown_ws)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    # A large backlog so that thousands of benchmark clients connecting at once are not
    # dropped by the kernel (aiohttp's default is 128).
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"note server ready on ws://{host}:{port}/ws", flush=True)
    await stop.wait()
    await runner.cleanup()
    if failed_sends:
        print(f"note server: {failed_sends} sends to closing clients skipped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
