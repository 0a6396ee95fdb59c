"""Runs the bench against one target: start it, connect, measure each point, clean up.

Order per target: start the server (when the bench owns it), connect the publisher (the
first connection, so an unreachable server fails fast with a clear message), connect the
subscribers and stalled clients across the workers, warm up, measure each rate, release the
stalled clients to see how the server treated them, close everything, stop the server.
A sweep stops early once a point is hopeless (the publisher could not hand its messages to
the server within twice the point's duration, under half were delivered, or p99 was far
over the budget): higher rates would only take longer to fail the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import numpy as np
import psutil

from hubbub.loadgen.endpoint import Endpoint
from hubbub.loadgen.errors import BenchError
from hubbub.loadgen.publisher import Publisher
from hubbub.loadgen.results import GENERATOR_BUSY, Idle, Latency, Point, Stalled, TargetResult
from hubbub.loadgen.targets import ServerProcess, Target, cpu_seconds
from hubbub.loadgen.worker import worker_main

log = logging.getLogger("hubbub.loadgen")

CONNECT_CONCURRENCY = 128
"""Handshakes in flight at once over all workers: below common listen backlogs (aiohttp's
is 128), so that connecting 10,000 clients does not overflow the server's accept queue and
stall on SYN retransmits."""
QUIET_S = 1.0
"""The drain ends once deliveries stop growing for this long (or all have arrived)."""
SAMPLE_S = 0.25
HOPELESS_RATIO = 0.5
HOPELESS_P99 = 8


@dataclass(frozen=True)
class Config:
    subscribers: int
    rates: list[float]
    size: int
    duration: float
    warmup: float
    drain: float
    stalled: int
    idle: int
    connect_timeout: float
    quiet: bool
    p99_budget_ms: float


class WorkerPool:
    """Worker processes, each behind a pipe; killed by their own handles only."""

    def __init__(self, count: int, cpus: set[int] | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[BaseProcess] = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, cpus), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        self._ps = [psutil.Process(p.pid) for p in self.procs]
        # Progress polling and the drain both ask for counts: one exchange at a time keeps
        # every reply paired with its command.
        self._lock = asyncio.Lock()

    async def call(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send one command to each worker (in order) and gather the replies."""
        async with self._lock:
            return await self._call(commands)

    async def _call(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        for pipe, command in zip(self.pipes, commands, strict=False):
            try:
                pipe.send(command)
            except OSError as exc:
                raise BenchError(f"a load-generator worker is gone: {exc}") from exc
        replies = await asyncio.gather(
            *(asyncio.to_thread(self._recv, pipe) for pipe in self.pipes[: len(commands)])
        )
        errors = [value for status, value in replies if status != "ok"]
        if errors:
            raise BenchError(f"a load-generator worker failed: {errors[0]}")
        return [value for _, value in replies]

    async def broadcast(self, *command: Any) -> list[Any]:
        return await self.call([command] * len(self.pipes))

    @staticmethod
    def _recv(pipe: Connection) -> Any:
        try:
            return pipe.recv()
        except EOFError:
            return ("error", "worker process died (see its log above)")

    def cpu_seconds(self) -> float:
        return cpu_seconds([psutil.Process(), *self._ps])

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("exit",))
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class TargetRun:
    def __init__(self, target: Target, config: Config, pool: WorkerPool,
                 server_cpus: set[int] | None, generator_cores: int) -> None:
        self.target = target
        self.config = config
        self.pool = pool
        self.server_cpus = server_cpus
        self.generator_cores = generator_cores
        self.server: ServerProcess | None = None
        self.publisher: Publisher | None = None
        self.next_seq = 0
        self.result = TargetResult(target.name, target.url, target.started_by_bench)

    async def run(self) -> TargetResult:
        try:
            if self.target.started_by_bench:
                self.server = await asyncio.to_thread(
                    ServerProcess.start, self.target, self.server_cpus
                )
                self.result.url = self.server.url
            if self.config.idle:
                await self.measure_idle()
            else:
                await self.measure_load()
        finally:
            await self.cleanup()
        return self.result

    @property
    def url(self) -> str:
        return self.result.url

    async def connect(self, count: int, kind: str) -> None:
        if count == 0:
            return
        endpoint = Endpoint.parse(self.url)
        workers = len(self.pool.pipes)
        share = max(1, CONNECT_CONCURRENCY // workers)
        replies = await self.pool.call([
            ("connect", endpoint, n, kind, share, self.config.connect_timeout)
            for n in split(count, workers)
        ])
        failed = sum(r["failed"] for r in replies)
        if failed:
            errors = sorted({e for r in replies for e in r["errors"]})
            raise BenchError(f"{failed} of {count} {kind} connections to {self.url} failed: "
                             + "; ".join(errors))

    async def measure_load(self) -> None:
        self.publisher = Publisher(self.url)
        await self.publisher.open(self.config.connect_timeout)
        self.progress(f"connecting {self.config.subscribers} subscribers", final=True)
        await self.connect(self.config.subscribers, "sub")
        await self.connect(self.config.stalled, "stalled")
        if self.config.warmup > 0:
            await self.point(self.config.rates[0], self.config.warmup, label="warm-up")
        for rate in self.config.rates:
            point = await self.point(rate, self.config.duration)
            self.result.points.append(point)
            why = hopeless(point, self.config.p99_budget_ms)
            if why and rate != self.config.rates[-1]:
                self.result.notes.append(f"sweep stopped after {rate:g} msg/s: {why}")
                break
        if self.config.stalled:
            replies = await self.pool.broadcast("release", 5.0)
            codes: dict[str, int] = {}
            for reply in replies:
                for code, n in reply["close_codes"].items():
                    codes[code] = codes.get(code, 0) + n
            self.result.stalled = Stalled(self.config.stalled,
                                          sum(r["closed"] for r in replies), codes)

    async def point(self, rate: float, duration: float, label: str = "") -> Point:
        config = self.config
        assert self.publisher is not None
        count = max(1, round(rate * duration))
        first = self.next_seq
        self.next_seq += count
        await self.pool.broadcast("begin", first)
        expected = count * config.subscribers
        server_cpu0 = self.server.cpu_seconds() if self.server else 0.0
        gen_cpu0 = self.pool.cpu_seconds()
        busy0 = machine_busy_seconds()
        started = time.monotonic()
        peak_rss = [0]
        name = f"{self.target.name} {rate:g} msg/s{' ' + label if label else ''}"
        monitor = asyncio.create_task(self.monitor(name, started, expected, peak_rss))
        try:
            published = await self.publisher.publish(first, rate, count, config.size,
                                                      deadline_s=duration * 2 + 5)
            # CPU is read over the publishing window: the drain's idle tail would dilute it.
            publish_wall = time.monotonic() - started
            server_cpu = self.server.cpu_seconds() - server_cpu0 if self.server else None
            gen_cpu = self.pool.cpu_seconds() - gen_cpu0
            others = machine_busy_seconds() - busy0 - gen_cpu - (server_cpu or 0.0)
            received, last_growth = await self.drain(published.sent * config.subscribers)
        finally:
            monitor.cancel()
        gen_cpu_pct = gen_cpu / publish_wall * 100 / self.generator_cores
        reports = await self.pool.broadcast("report")
        latencies = np.concatenate([r["latencies_ns"] for r in reports])
        codes: dict[str, int] = {}
        for report in reports:
            for code, n in report["close_codes"].items():
                codes[str(code)] = codes.get(str(code), 0) + n
        received = sum(r["received"] for r in reports)
        samples = [s for r in reports for s in r["other_samples"]][:5]
        # From the first send to the last delivery, and never shorter than the schedule itself
        # (the last message is sent 1/rate before the schedule ends).
        active = max(last_growth - started, count / rate)
        self.progress("", final=True)
        if self.server and not self.server.alive():
            raise BenchError(f"{self.target.name} died during the run:\n{self.server.log_text()}")
        return Point(
            rate=rate, subscribers=config.subscribers, duration_s=duration, scheduled=count,
            sent=published.sent, received=received,
            delivery_ratio=round(received / expected, 6),
            deliveries_per_s=round(received / active, 1),
            latency=Latency.of(latencies),
            stale=sum(r["stale"] for r in reports),
            out_of_order=sum(r["out_of_order"] for r in reports),
            unexpected=sum(r["other"] for r in reports), unexpected_samples=samples,
            subscribers_closed=sum(r["closed"] for r in reports), close_codes=codes,
            publisher_on_time=published.on_time, publisher_lag_p99_ms=published.lag_p99_ms,
            generator_cpu_pct=round(gen_cpu_pct, 1),
            generator_bound=gen_cpu_pct >= GENERATOR_BUSY,
            other_cpu_pct=round(max(others, 0.0) / publish_wall * 100, 1),
            server_cpu_pct=round(server_cpu / publish_wall * 100, 1) if server_cpu is not None
            else None,
            server_peak_rss_mib=round(peak_rss[0] / 2**20, 1) if self.server else None,
        )

    async def drain(self, expected: int) -> tuple[int, float]:
        """Wait until `expected` deliveries arrived, or they stop growing, or `--drain` ends.
        Returns the count and when it last grew."""
        deadline = time.monotonic() + self.config.drain
        last, last_growth = -1, time.monotonic()
        while True:
            counts = await self.pool.broadcast("count")
            total = sum(counts)
            now = time.monotonic()
            if total != last:
                last, last_growth = total, now
            if total >= expected or now - last_growth >= QUIET_S or now >= deadline:
                return total, last_growth
            await asyncio.sleep(0.05)

    async def monitor(self, name: str, started: float, expected: int, peak: list[int]) -> None:
        shown = 0.0
        while True:
            if self.server:
                peak[0] = max(peak[0], await asyncio.to_thread(self.server.rss))
            now = time.monotonic()
            if now - shown >= 1.0:
                shown = now
                total = sum(await self.pool.broadcast("count"))
                pct = total / expected * 100 if expected else 0.0
                self.progress(f"{name}: {now - started:4.0f} s  {total:,} of {expected:,} "
                              f"deliveries ({pct:.1f}%)")
            await asyncio.sleep(SAMPLE_S)

    def progress(self, text: str, final: bool = False) -> None:
        if self.config.quiet:
            return
        if sys.stderr.isatty():
            end = "\n" if final and text else ""
            sys.stderr.write(f"\r\x1b[2K{text}{end}")
        elif text:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    async def measure_idle(self) -> None:
        if self.server is None:
            raise BenchError("--idle needs a server the bench starts (not --url)")
        await asyncio.sleep(1.0)
        before = await self.settled_rss()
        self.progress(f"{self.target.name}: opening {self.config.idle} idle connections",
                      final=True)
        await self.connect(self.config.idle, "idle")
        await asyncio.sleep(1.0)
        after = await self.settled_rss()
        self.result.idle = Idle(
            connections=self.config.idle,
            rss_before_mib=round(before / 2**20, 2),
            rss_after_mib=round(after / 2**20, 2),
            kib_per_connection=round((after - before) / 1024 / self.config.idle, 2),
        )

    async def settled_rss(self) -> int:
        """Median of a few samples: the server may still be finishing handshakes."""
        assert self.server is not None
        samples = []
        for _ in range(5):
            samples.append(await asyncio.to_thread(self.server.rss))
            await asyncio.sleep(0.2)
        return int(sorted(samples)[len(samples) // 2])

    async def cleanup(self) -> None:
        """Best effort for each step, so that a failure never leaves a server running."""
        try:
            await self.pool.broadcast("close")
        except Exception:
            log.exception("closing the workers' connections failed")
        if self.publisher is not None:
            try:
                await self.publisher.close()
            except Exception:
                log.exception("closing the publisher failed")
        if self.server is not None:
            code = await asyncio.to_thread(self.server.stop)
            if code not in (0, -15):
                self.result.notes.append(f"server exited with code {code}")


def hopeless(point: Point, budget_ms: float) -> str | None:
    """Why higher rates cannot be sustainable either, if this point shows it. Assumes a
    server only gets worse with more load, which keeps sweeps of slow servers short."""
    if not point.publisher_on_time:
        return "the server could not take the publisher's messages in time"
    if point.delivery_ratio < HOPELESS_RATIO:
        return f"only {point.delivery_ratio:.0%} delivered"
    p99 = point.latency.p99_ms
    if p99 is not None and p99 > HOPELESS_P99 * budget_ms:
        return f"p99 {p99:,.0f} ms is over {HOPELESS_P99}x the budget"
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine spent busy (everything but idle and iowait)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def generator_cores(cpus: set[int] | None) -> int:
    return len(cpus) if cpus else (os.cpu_count() or 1)
