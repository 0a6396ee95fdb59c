"""Scale-out on Redis, measured: acked publishes, fan-out, cross-node latency, workers.

    .venv/bin/python benchmarks/scaleout.py [acks] [fanout] [cross] [workers]

Starts a private `redis-server` (persistence off, on CPU 1 with the load) and real
`hubbub serve` processes pinned to CPU 0, and prints each number beside the baseline it must
beat (docs/performance.md, "Scale-out on Redis"): the local broker's, measured in the same
run. `fanout` and `workers` use the independent C load generator (WSLOAD, default: built
from ../shared/bench/wsload.c). Loopback only; every process it starts is stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SERVER_CPU, LOAD_CPU = "0", "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    port, folder = free_port(), tempfile.mkdtemp()
    proc = subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                              text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def hubbub(*args: str, cpus: str = SERVER_CPU) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    data = tempfile.mkdtemp()
    env = dict(os.environ, HUBBUB_MAX_CONNECTIONS_PER_IP="0",
               HUBBUB_CONNECTION_RATE_PER_SECOND="0")
    proc = subprocess.Popen(
        ["taskset", "-c", cpus, PYTHON, "-m", "hubbub", "serve", "--port", str(port),
         "--data-dir", data, "--rate-per-second", "0", "--plain-history", "0",
         "--log-level", "warning", *args], env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)  # every worker listening
        yield port, psutil.Process(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of a process and its children (the workers of a supervisor)."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# --- acked publishes ---------------------------------------------------------------------

async def _acks(port: int, connections: int, window: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    count = 0
    refused = 0
    stop = time.monotonic() + seconds

    async def publisher(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal count, refused
        ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws", protocols=["hubbub.v1"])
        await ws.receive()  # welcome
        room = f"bench-{n % 100}"
        await ws.send_str(json.dumps({"type": "join", "rooms": [room], "ref": "j"}))
        while json.loads((await ws.receive()).data).get("type") != "joined":
            pass
        sent: dict[int, float] = {}
        ref = 0

        async def send() -> None:
            nonlocal ref
            ref += 1
            sent[ref] = time.perf_counter()
            await ws.send_str(f'{{"type":"publish","room":"{room}","text":"x","ref":{ref}}}')

        for _ in range(window):
            await send()
        async for frame in ws:
            event = json.loads(frame.data)
            if event.get("type") == "ack":
                latencies.append(time.perf_counter() - sent.pop(event["ref"]))
                count += 1
            elif event.get("type") == "error":
                refused += 1
                sent.pop(event.get("ref"), None)
            else:
                continue
            if time.monotonic() < stop:
                await send()
            elif not sent:
                break
        await ws.close()

    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        await asyncio.gather(*(publisher(session, n) for n in range(connections)))
        elapsed = time.monotonic() - start
    return {"acks_per_s": count / elapsed, "p50_ms": pct(latencies, 0.5) * 1000,
            "p99_ms": pct(latencies, 0.99) * 1000, "refused": refused}


def acks() -> None:
    print("== acked publishes per second: 50 connections x 20 in flight, 100 rooms, 5 s")
    with redis_server() as url:
        for label, args in (("local memory", ("--store", "memory")),
                            ("local sqlite", ("--store", "sqlite")),
                            ("redis", ("--redis", url))):
            with hubbub(*args) as (port, _):
                os.sched_setaffinity(0, {int(LOAD_CPU)})
                result = asyncio.run(_acks(port, 50, 20, 5.0))
            print(f"{label:14s} {result['acks_per_s']:9,.0f} acks/s   ack p50 "
                  f"{result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                  f"refused {result['refused']}")
    print("target: redis >= 10,000 acks/s per node")


# --- fan-out (wsload) --------------------------------------------------------------------

def wsload() -> str:
    binary = os.environ.get("WSLOAD")
    if binary:
        return binary
    binary = os.path.join(tempfile.mkdtemp(), "wsload")
    subprocess.run(["gcc", "-O2", "-o", binary, str(ROOT.parent / "shared/bench/wsload.c")],
                   check=True)
    return binary


def load_point(binary: str, port: int, rate: int, subs: int, watch: psutil.Process,
               seconds: float = 5.0) -> dict[str, float]:
    before = tree_cpu(watch)
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, binary, "--port", str(port), "--subs", str(subs), "--rate",
         str(rate), "--duration", str(seconds), "--size", "64", "--watch-pid", str(watch.pid),
         "--json"], capture_output=True, text=True, check=True).stdout
    used = tree_cpu(watch) - before
    point = json.loads(out.strip().splitlines()[-1])
    return {"ratio": point["delivery_ratio"], "p99": point["latency_ms"]["p99"],
            "delivered": point["delivered"], "cpu_s": used,
            "closed": point["closed_by_server"]}


def sustained(point: dict[str, float]) -> bool:
    return point["ratio"] == 1.0 and point["p99"] < 250 and point["closed"] == 0


def fanout() -> None:
    binary = wsload()
    rates = [int(r) for r in os.environ.get("RATES", "1000 2000 4000 6000 8000").split()]
    print("== fan-out, 1,000 plain-text subscribers, 64-byte messages, 5 s per point")
    with redis_server() as url:
        best: dict[str, int] = {}
        for label, args in (("local memory", ("--store", "memory")),
                            ("redis", ("--redis", url))):
            for rate in rates:
                with hubbub(*args) as (port, proc):
                    point = load_point(binary, port, rate, 1000, proc)
                ok = sustained(point)
                if ok:
                    best[label] = rate
                print(f"{label:14s} {rate:6d} msg/s  delivered {point['ratio']:.4f}  "
                      f"p99 {point['p99']:8.1f} ms  closed {point['closed']:.0f}  "
                      f"{'sustained' if ok else 'NOT sustained'}")
                if not ok:
                    break
        local, redis = best.get("local memory", 0), best.get("redis", 0)
        print(f"highest sustained: local {local:,} msg/s ({local * 1000:,} deliveries/s), "
              f"redis {redis:,} msg/s; ratio {redis / local if local else float('nan'):.2f} "
              "(target >= 0.5)")


# --- cross-node latency ------------------------------------------------------------------

async def _cross(pub_port: int, ports: dict[str, int], subs: int, rate: float,
                 seconds: float) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {name: [] for name in ports}
    async with aiohttp.ClientSession() as session:
        async def subscriber(name: str, port: int) -> None:
            ws = await session.ws_connect(f"ws://127.0.0.1:{port}/ws", protocols=["hubbub.v1"])
            await ws.send_str('{"type":"join","rooms":["cross"]}')
            async for frame in ws:
                event = json.loads(frame.data)
                if event.get("type") == "message" and event["room"] == "cross":
                    seen[name].append(time.perf_counter() - float(event["text"]))
        tasks = [asyncio.create_task(subscriber(name, port))
                 for name, port in ports.items() for _ in range(subs)]
        await asyncio.sleep(1.0)
        pub = await session.ws_connect(f"ws://127.0.0.1:{pub_port}/ws", protocols=["hubbub.v1"])
        await pub.send_str('{"type":"join","rooms":["cross"]}')
        await asyncio.sleep(0.5)
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            n += 1
            await pub.send_str(json.dumps({"type": "publish", "room": "cross",
                                           "text": repr(time.perf_counter())}))
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        await asyncio.sleep(1.0)
        for task in tasks:
            task.cancel()
    return seen


def cross() -> None:
    print("== cross-node delivery: publisher on node A at 1,000 msg/s, 5 JSON subscribers on A "
          "and 5 on B (node B on the load's CPU), 5 s; baseline: one local-broker node with 10")
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    with hubbub("--store", "memory") as (local, _):
        seen = asyncio.run(_cross(local, {"local broker": local}, 10, 1000, 5.0))
    with redis_server() as url, hubbub("--redis", url) as (a, _), \
            hubbub("--redis", url, cpus=LOAD_CPU) as (b, _):
        seen.update(asyncio.run(_cross(a, {"redis, node A": a, "redis, node B": b}, 5, 1000,
                                       5.0)))
    for name, values in seen.items():
        ms = [v * 1000 for v in values]
        print(f"{name:15s} {len(ms):7,d} deliveries  p50 {statistics.median(ms):6.2f} ms  "
              f"p99 {pct(ms, 0.99):6.2f} ms  p99.9 {pct(ms, 0.999):6.2f} ms")
    print("target: other node adds < 5 ms p99")


# --- workers -----------------------------------------------------------------------------

def workers() -> None:
    binary = wsload()
    rate = int(os.environ.get("WORKERS_RATE", "1000"))
    print(f"== --workers 2 against 1: server CPU per million deliveries, 1,000 subscribers, "
          f"{rate} msg/s, both on CPU 0 (on two cores the ratio of throughput is not "
          "measurable: the load generator needs the other)")
    with redis_server() as url:
        costs = {}
        for n in (1, 2):
            with hubbub("--redis", url, "--workers", str(n)) as (port, proc):
                point = load_point(binary, port, rate, 1000, proc)
            costs[n] = point["cpu_s"] / point["delivered"] * 1e6
            print(f"workers {n}: {point['delivered']:,.0f} deliveries, CPU {point['cpu_s']:.2f} s, "
                  f"{costs[n]:.3f} CPU s per million, p99 {point['p99']:.1f} ms")
        print(f"two workers cost {100 * (costs[2] / costs[1] - 1):+.1f} % CPU per delivery "
              "(target <= +15 %)")


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["acks", "fanout", "cross", "workers"]
    for name in chosen:
        {"acks": acks, "fanout": fanout, "cross": cross, "workers": workers}[name]()
