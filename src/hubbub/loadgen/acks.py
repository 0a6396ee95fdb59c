"""`hubbub bench-acks`: acknowledged publishes per second, with and without a durable store.

For each store configuration (`memory`, `sqlite-fsync`, `sqlite-batch`) and each room count,
this starts its own `hubbub serve` (pinned to one CPU with `taskset` when available, rate
limiting off, a fresh temp data directory), opens `--connections` `hubbub.v1` WebSockets
that keep `--pipeline` publishes in flight each, and counts the acks that arrive during
`--duration` seconds after a `--warmup`. Latency is from sending a `publish` to reading its
`ack`, so it includes the store's commit (and fsync). The load generator pins itself to
another CPU and reports its own CPU use, so a saturated client is visible in the table.
For the SQLite stores it also reports the mean group-commit size (from the server's closing
log line), and it counts an ack that arrives out of request order on its connection as an
error, since the server promises request order to pipelining clients.

Limits: one client process drives the load; with one room every connection also receives
every message (each member gets each message), so the client reads `connections + 1` frames
per publish and can become the bottleneck before the server does (watch `client cpu`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

from hubbub.loadgen.errors import BenchError
from hubbub.loadgen.targets import ServerProcess, Target
from hubbub.server.settings import setting, show_default

PROTOCOL = "hubbub.v1"

STORES: dict[str, list[str]] = {
    "memory": ["--store", "memory"],
    "sqlite-fsync": ["--store", "sqlite", "--durability", "fsync"],
    "sqlite-batch": ["--store", "sqlite", "--durability", "batch"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stores", default=",".join(STORES),
                        help=f"comma-separated, from {', '.join(STORES)}")
    parser.add_argument("--rooms", default="1,100",
                        help="comma-separated room counts to measure")
    parser.add_argument("--connections", type=_positive_int, default=8,
                        help="publishing WebSocket connections")
    parser.add_argument("--pipeline", type=_positive_int, default=8,
                        help="publishes in flight per connection")
    parser.add_argument("--duration", type=_positive_float, default=5.0,
                        help="measured seconds per point")
    parser.add_argument("--warmup", type=_non_negative_float, default=1.0,
                        help="unmeasured seconds before each point")
    parser.add_argument("--repeat", type=_positive_int, default=1,
                        help="runs per point; the median is reported")
    parser.add_argument("--text-bytes", type=_positive_int, default=64,
                        help="size of each published text")
    parser.add_argument("--commit-window-ms", type=_non_negative_float, default=None,
                        help="passed to the server for sqlite-batch (default: the server's, "
                             f"{show_default(setting('commit_window_ms'))})")
    parser.add_argument("--server-cpu", default="0",
                        help="CPU list for `taskset -c` around the server")
    parser.add_argument("--client-cpu", default="1",
                        help="CPU list this load generator pins itself to")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for `hubbub serve` (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1 or value > 100_000:
        raise argparse.ArgumentTypeError("must be between 1 and 100000")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be > 0 and at most 3600")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be between 0 and 3600")
    return value


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {text!r}")
    return cpus


# ------------------------------------------------------------------ the load


@dataclass
class Point:
    store: str
    rooms: int
    acked_per_second: float
    p50_ms: float
    p99_ms: float
    acked: int
    errors: int
    server_cpu: float
    """Server CPU seconds per wall second during the measurement (1.0 = one full core)."""
    client_cpu: float
    server_us_per_ack: float
    """Server CPU microseconds per acknowledged publish: what one core would sustain is
    1e6 / this, and it is far less disturbed by other load on the machine than acks/s."""
    mean_batch: float | None = None
    """Appends per SQLite commit over the server's whole run (warm-up included), from its
    closing log line; None for the memory store."""
    error_samples: list[str] = field(default_factory=list)


@dataclass
class _Counters:
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    measuring: bool = False
    stopping: bool = False
    acked: int = 0
    errors: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


async def _connection(session: aiohttp.ClientSession, url: str, rooms: list[str],
                      pipeline: int, text: str, counters: _Counters,
                      ready: asyncio.Barrier) -> None:
    async with session.ws_connect(url, protocols=(PROTOCOL,), max_msg_size=0) as ws:
        if ws.protocol != PROTOCOL:
            raise RuntimeError("the server did not accept the hubbub.v1 subprotocol")
        await ws.send_str(orjson.dumps({"type": "join", "rooms": rooms, "ref": "join"}).decode())
        async for msg in ws:
            event = orjson.loads(msg.data)
            if event.get("type") == "joined":
                break
            if event.get("type") == "error":
                raise RuntimeError(f"join failed: {event}")
        await ready.wait()
        sent_at: dict[int, int] = {}
        seq = 0
        last_acked = 0

        async def send_one() -> None:
            nonlocal seq
            seq += 1
            room = rooms[seq % len(rooms)]
            sent_at[seq] = time.perf_counter_ns()
            frame = {"type": "publish", "room": room, "text": text, "ref": seq}
            await ws.send_str(orjson.dumps(frame).decode())

        for _ in range(pipeline):
            await send_one()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data: str = msg.data
            # Message events are most of the traffic; skip them without a full parse.
            if data.startswith('{"type":"message"'):
                continue
            event = orjson.loads(data)
            kind = event.get("type")
            if kind == "ack":
                ref = event["ref"]
                started = sent_at.pop(ref)
                # The protocol answers one connection's requests in order (pipelining).
                if ref < last_acked:
                    counters.errors += 1
                    if len(counters.error_samples) < 5:
                        counters.error_samples.append(f"ack {ref} after ack {last_acked}")
                last_acked = ref
                if counters.measuring:
                    counters.acked += 1
                    counters.latencies_ns.append(time.perf_counter_ns() - started)
            elif kind == "error":
                sent_at.pop(event.get("ref"), None)
                counters.errors += 1
                if len(counters.error_samples) < 5:
                    counters.error_samples.append(data[:200])
            else:
                continue
            if not counters.stopping:
                await send_one()
            elif not sent_at:
                break


async def _drive(url: str, rooms: int, args: argparse.Namespace,
                 server_cpu: Callable[[], float]) -> tuple[_Counters, float]:
    counters = _Counters()
    names = [f"bench-{i}" for i in range(rooms)]
    conns = args.connections
    # Spread the rooms over connections; with fewer rooms than connections they share.
    per_conn = [names[i::conns] or [names[i % rooms]] for i in range(conns)]
    text = "x" * args.text_bytes
    ready = asyncio.Barrier(conns + 1)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(_connection(session, url, per_conn[i], args.pipeline,
                                                 text, counters, ready))
                 for i in range(conns)]
        try:
            # A connection that fails before the start would otherwise leave the barrier
            # waiting forever; its exception surfaces here instead.
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([waiter, *tasks], timeout=30,
                               return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
                failed = [t for t in tasks if t.done()]
                if failed:
                    failed[0].result()
                raise TimeoutError("connections did not join within 30 s")
            await asyncio.sleep(args.warmup)
            cpu_start, client_start = server_cpu(), time.process_time()
            counters.measuring = True
            started = time.perf_counter()
            await asyncio.sleep(args.duration)
            counters.measuring = False
            elapsed = time.perf_counter() - started
            counters.server_cpu = server_cpu() - cpu_start
            counters.client_cpu = time.process_time() - client_start
            counters.stopping = True
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return counters, elapsed


def _percentile_ms(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[index] / 1e6


def _measure(store: str, rooms: int, args: argparse.Namespace,
             server_cpus: set[int] | None) -> Point:
    extra = list(args.server_arg)
    if store == "sqlite-batch" and args.commit_window_ms is not None:
        extra += ["--commit-window-ms", str(args.commit_window_ms)]
    command = (sys.executable, "-m", "hubbub", "serve", "--host", "127.0.0.1",
               "--port", "{port}", "--data-dir", "{data_dir}", "--rate-per-second", "0",
               "--max-connections-per-ip", "0", "--connection-rate-per-second", "0",
               "--http-rate-per-second", "0",
               *STORES[store], *extra)
    target = Target(f"hubbub/{store}", "ws://127.0.0.1:{port}/ws", command)
    server = ServerProcess.start(target, server_cpus)
    try:
        counters, elapsed = _run_loop(_drive(server.url, rooms, args, server.cpu_seconds))
    finally:
        server.stop()
    closed = _CLOSED.search(server.final_log)
    mean_batch = int(closed[1]) / int(closed[2]) if closed and int(closed[2]) else None
    return Point(
        store=store, rooms=rooms,
        acked_per_second=counters.acked / elapsed,
        p50_ms=_percentile_ms(counters.latencies_ns, 0.50),
        p99_ms=_percentile_ms(counters.latencies_ns, 0.99),
        acked=counters.acked, errors=counters.errors,
        server_cpu=counters.server_cpu / elapsed, client_cpu=counters.client_cpu / elapsed,
        server_us_per_ack=counters.server_cpu / counters.acked * 1e6 if counters.acked else 0.0,
        mean_batch=mean_batch, error_samples=counters.error_samples,
    )


_CLOSED = re.compile(r"closed after (\d+) appends in (\d+) commits")
"""The SQLite store's last log line: its group-commit totals."""


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a default dependency on Linux
        return asyncio.run(coro)


def _median_point(points: list[Point]) -> Point:
    ranked = sorted(points, key=lambda p: p.acked_per_second)
    middle = ranked[len(ranked) // 2]
    return Point(
        store=middle.store, rooms=middle.rooms,
        acked_per_second=statistics.median(p.acked_per_second for p in points),
        p50_ms=statistics.median(p.p50_ms for p in points),
        p99_ms=statistics.median(p.p99_ms for p in points),
        acked=middle.acked, errors=sum(p.errors for p in points),
        server_cpu=statistics.median(p.server_cpu for p in points),
        client_cpu=statistics.median(p.client_cpu for p in points),
        server_us_per_ack=statistics.median(p.server_us_per_ack for p in points),
        mean_batch=middle.mean_batch,
        error_samples=[s for p in points for s in p.error_samples][:5],
    )


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "sqlite": _sqlite_version()}


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def run(args: argparse.Namespace) -> int:
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = [s for s in stores if s not in STORES]
    if unknown or not stores:
        print(f"bench-acks: unknown store(s) {unknown}; choose from {list(STORES)}",
              file=sys.stderr)
        return 2
    try:
        room_counts = [int(r) for r in args.rooms.split(",")]
    except ValueError:
        print("bench-acks: --rooms must be comma-separated integers", file=sys.stderr)
        return 2
    if any(not 1 <= r <= 10_000 for r in room_counts):
        print("bench-acks: room counts must be between 1 and 10000", file=sys.stderr)
        return 2
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    server_cpus: set[int] | None = None
    if pin:
        try:
            server_cpus = _cpu_list(args.server_cpu)
            if not server_cpus <= os.sched_getaffinity(0):
                raise ValueError("no such CPU here")
        except ValueError as exc:
            print(f"bench-acks: cannot pin the server to {args.server_cpu}: {exc}",
                  file=sys.stderr)
            return 2
        try:
            os.sched_setaffinity(0, _cpu_list(args.client_cpu))
        except (OSError, ValueError) as exc:
            print(f"bench-acks: cannot pin the client to {args.client_cpu}: {exc}",
                  file=sys.stderr)
            return 2
    results: list[Point] = []
    for rooms in room_counts:
        for store in stores:
            runs = []
            for _ in range(args.repeat):
                try:
                    runs.append(_measure(store, rooms, args, server_cpus))
                except (BenchError, RuntimeError, OSError, aiohttp.ClientError,
                        TimeoutError) as exc:
                    print(f"bench-acks: {store} with {rooms} room(s) failed: {exc}",
                          file=sys.stderr)
                    return 1
            results.append(_median_point(runs))
            if not args.json:
                print(f"  measured {store:<13} rooms={rooms:<4} "
                      f"{results[-1].acked_per_second:9.0f} acked/s", file=sys.stderr)
    report = {
        "machine": machine(),
        "command": _command_line(),
        "settings": {k: v for k, v in vars(args).items() if k != "plugin"},
        "server_pinned": pin,
        "points": [{**asdict(p), "vs_memory": _ratio(p, results)} for p in results],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_table(report))
    return 1 if any(p.errors for p in results) else 0


def _command_line() -> str:
    """How this run was started, as a user would type it again."""
    if sys.argv[0].endswith("acks.py"):
        words = ["python", "-m", "hubbub.loadgen.acks", *sys.argv[1:]]
    else:
        words = ["hubbub", *sys.argv[1:]]
    return shlex.join(words)


def _ratio(point: Point, results: list[Point]) -> float | None:
    base = next((p for p in results if p.store == "memory" and p.rooms == point.rooms), None)
    if base is None or not base.acked_per_second:
        return None
    return point.acked_per_second / base.acked_per_second


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"{'store':<14}{'rooms':>6}{'acked/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server cpu':>12}{'client cpu':>12}{'us/ack':>8}{'batch':>7}{'vs memory':>11}"
        f"{'errors':>8}",
    ]
    for p in report["points"]:
        ratio = "" if p["vs_memory"] is None else f"{p['vs_memory']:.2f}"
        batch = "" if p["mean_batch"] is None else f"{p['mean_batch']:.1f}"
        lines.append(
            f"{p['store']:<14}{p['rooms']:>6}{p['acked_per_second']:>10.0f}"
            f"{p['p50_ms']:>9.2f}{p['p99_ms']:>9.2f}{p['server_cpu']:>12.2f}"
            f"{p['client_cpu']:>12.2f}{p['server_us_per_ack']:>8.0f}{batch:>7}{ratio:>11}"
            f"{p['errors']:>8}"
        )
    m = report["machine"]
    lines.append(f"machine: {m['cpu']} x{m['cpus']}, Python {m['python']}, "
                 f"SQLite {m['sqlite']}; server pinned: {report['server_pinned']}")
    lines.append(f"command: {report['command']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hubbub.loadgen.acks",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
