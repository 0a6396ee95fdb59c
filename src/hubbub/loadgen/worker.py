"""A load-generator worker process: it holds a share of the connections and counts.

The coordinator (`runner.py`) drives workers over a `multiprocessing` pipe with small
commands, one at a time, each answered with `("ok", value)` or `("error", reason)`:

| command | reply |
|---|---|
| `("connect", endpoint, count, kind, concurrency, timeout)` | `{"opened", "failed", "errors"}` |
| `("begin", first_seq)` | None: start a new point (see `tally.py`) |
| `("count",)` | bench messages received so far in this point |
| `("report",)` | `Tally.report()` plus how many subscribers the server closed, by code |
| `("release", wait)` | stalled clients resume reading; what happened to them |
| `("close",)` | None, once every connection is closed |
| `("exit",)` | None, then the process ends |

`kind` is `sub` (reads and counts), `stalled` (never reads until released) or `idle` (reads
and discards: it exists to be counted in the server's memory).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from hubbub.loadgen.client import BenchClient, connect
from hubbub.loadgen.endpoint import Endpoint
from hubbub.loadgen.errors import BenchError
from hubbub.loadgen.tally import Tally

log = logging.getLogger("hubbub.loadgen.worker")

MAX_ERRORS = 5


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def worker_main(conn: Connection, cpus: set[int] | None) -> None:
    """Process entry point (spawned, so nothing of the coordinator's loop is inherited)."""
    logging.basicConfig(level=logging.WARNING, format="bench worker %(process)d: %(message)s")
    raise_nofile_limit()
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(Worker(conn).serve())


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.tally = Tally()
        self.discard = Tally()
        self.subs: list[BenchClient] = []
        self.stalled: list[BenchClient] = []
        self.idle: list[BenchClient] = []

    async def serve(self) -> None:
        # The pipe is read in a thread: loop.add_reader would make its fd non-blocking, and
        # then sending a large report fails with EAGAIN halfway through.
        while True:
            try:
                command: tuple[Any, ...] = await asyncio.to_thread(self.conn.recv)
            except EOFError:  # the coordinator is gone
                await self.close_all()
                return
            try:
                result = await self.handle(*command)
            except Exception as exc:
                log.exception("command %s failed", command[0])
                self.conn.send(("error", f"{type(exc).__name__}: {exc}"))
            else:
                self.conn.send(("ok", result))
            if command[0] == "exit":
                return

    async def handle(self, name: str, *args: Any) -> Any:
        if name == "connect":
            return await self.connect(*args)
        if name == "begin":
            self.tally.begin(args[0])
            return None
        if name == "count":
            return self.tally.received
        if name == "report":
            closed = [c.close_code for c in self.subs if c.lost.done()]
            return {**self.tally.report(), "closed": len(closed),
                    "close_codes": dict(Counter(closed))}
        if name == "release":
            return await self.release(*args)
        if name in ("close", "exit"):
            await self.close_all()
            return None
        raise ValueError(f"unknown command {name!r}")

    async def connect(self, endpoint: Endpoint, count: int, kind: str, concurrency: int,
                      limit_s: float) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        target = {"sub": self.subs, "stalled": self.stalled, "idle": self.idle}[kind]
        tally = self.tally if kind == "sub" else self.discard

        async def one() -> None:
            async with gate:
                try:
                    target.append(await connect(endpoint, tally, kind == "stalled", limit_s))
                except (OSError, BenchError, TimeoutError) as exc:
                    errors.append(str(exc) or type(exc).__name__)

        await asyncio.gather(*(one() for _ in range(count)))
        return {"opened": count - len(errors), "failed": len(errors),
                "errors": sorted(set(errors))[:MAX_ERRORS]}

    async def release(self, wait: float) -> dict[str, Any]:
        for client in self.stalled:
            client.release()
        await wait_lost(self.stalled, wait)
        # "eof": the server ended the TCP connection without a close frame reaching us (it
        # aborted, or its close frame was stuck behind data we never read); "reset": RST.
        codes = Counter(
            str(c.close_code) if c.close_code is not None else "reset" if c.error else "eof"
            for c in self.stalled if c.lost.done()
        )
        return {"stalled": len(self.stalled), "closed": sum(codes.values()),
                "close_codes": dict(codes)}

    async def close_all(self) -> None:
        clients = [*self.subs, *self.stalled, *self.idle]
        for client in clients:
            client.close()
        await wait_lost(clients, 5.0)
        for client in clients:
            if client.transport is not None and not client.lost.done():
                client.transport.abort()
        self.subs, self.stalled, self.idle = [], [], []


async def wait_lost(clients: list[BenchClient], limit_s: float) -> None:
    """Wait until these connections are gone, at most `limit_s`. `asyncio.wait`, unlike a
    cancelled `gather`, leaves the `lost` futures alone for whoever waits next."""
    pending = [c.lost for c in clients if not c.lost.done()]
    if pending:
        await asyncio.wait(pending, timeout=limit_s)
