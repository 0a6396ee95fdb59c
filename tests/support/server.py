"""Start a real `hubbub serve` process on a free port and talk to it over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVING = re.compile(r"hubbub serving on http://127\.0\.0\.1:(\d+) ")
"""The line `hubbub serve` prints once it accepts connections, and the port it names."""

_any_port_logs = itertools.count(1)


class ServerProcess:
    """One `python -m hubbub serve` child, killed by PID only, logs kept in `log_path`.

    `port=0` lets the server pick one, which `start` reads from its `hubbub serving on`
    line; `cpus` runs it on those CPUs only (its affinity mask, which `--workers auto`
    counts)."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None,
                 env: dict[str, str] | None = None, cpus: set[int] | None = None) -> None:
        self.data_dir = data_dir
        self.args = list(args)
        self.port = free_port() if port is None else port
        self.env = env or {}
        self.cpus = cpus
        name = f"server-{self.port}" if self.port else f"server-0-{next(_any_port_logs)}"
        self.log_path = data_dir.parent / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "hubbub", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data_dir), *self.args,
        ]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        cpus = self.cpus
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        deadline = time.monotonic() + timeout
        if self.port == 0:
            served = SERVING.search(self.wait_for_output("hubbub serving on", timeout))
            assert served is not None, self.log_text()
            self.port = int(served.group(1))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not become healthy:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the server and wait for it; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self._log:
                self._log.close()
                self._log = None
        return code

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, needle: str, timeout: float = 20.0, count: int = 1) -> str:
        """The `count`-th line of the server's output that holds `needle`, once it is
        there; fails if the server exits or `timeout` seconds pass first."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log_text().splitlines() if needle in line]
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} line (x{count}) from the server "
                                     f"(exit code {self.proc.returncode}):\n{self.log_text()}")
            time.sleep(0.05)


class AsgiServerProcess(ServerProcess):
    """The same server as an ASGI application (`hubbub.asgi`) under uvicorn. The flags a
    test gives become the `HUBBUB_*` variables `hubbub.asgi.from_environment` reads."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--factory", "hubbub.asgi:from_environment",
                "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
                "--lifespan", "on"]

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.env = {**self.env, **flags_as_environment(
            ["--data-dir", str(self.data_dir), *self.args])}
        return super().start(timeout)


def flags_as_environment(flags: list[str]) -> dict[str, str]:
    """`["--store", "memory", "--dev"]` as `{"HUBBUB_STORE": "memory", "HUBBUB_DEV": "1"}`."""
    env: dict[str, str] = {}
    index = 0
    while index < len(flags):
        name = "HUBBUB_" + flags[index].removeprefix("--").replace("-", "_").upper()
        if index + 1 < len(flags) and not flags[index + 1].startswith("--"):
            env[name] = flags[index + 1]
            index += 2
        else:
            env[name] = "1"
            index += 1
    return env


ADAPTERS = {"aiohttp": ServerProcess, "asgi": AsgiServerProcess}
"""The ways to serve hubbub that the protocol tests run against: `hubbub serve` (aiohttp)
and `hubbub.asgi` under uvicorn."""


ServerFactory = Callable[..., "ServerProcess"]
"""The `start_server` fixture: `start_server("--store", "memory", env={...})`."""


@contextmanager
def running(factory: pytest.TempPathFactory, *flags: str,
            env: dict[str, str] | None = None,
            adapter: str = "aiohttp") -> Iterator[ServerProcess]:
    """A server for a whole module (started once, killed when the block ends)."""
    server = ADAPTERS[adapter](factory.mktemp("srv") / "data", *flags, env=env).start()
    try:
        yield server
    finally:
        server.kill()


Samples = dict[str, float]
"""`/metrics` as `scrape` reads it."""


async def scrape(server: ServerProcess) -> Samples:
    """Every sample of `/metrics`, keyed as exposed: `name` or `name{label="value"}`."""
    async with aiohttp.ClientSession() as session, \
            session.get(server.url + "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


async def wait_until(check: Callable[[], Awaitable[bool]], attempts: int = 100,
                     pause: float = 0.1) -> bool:
    """Poll an async predicate a bounded number of times."""
    for _ in range(attempts):
        if await check():
            return True
        await asyncio.sleep(pause)
    return False


def redis_nodes(base: Path, count: int, redis_url: str, prefix: str, *flags: str,
                env: dict[str, str] | None = None) -> list[ServerProcess]:
    """`count` nodes of one deployment (not started): `hubbub serve --port 0 --store memory
    --redis URL --redis-prefix PREFIX` (each picks its port), each with its own directory
    under `base` (its log and its data directory)."""
    homes = [base / f"node-{index}" for index in range(1, count + 1)]
    for home in homes:
        home.mkdir(parents=True)
    return [ServerProcess(home / "data", "--store", "memory", "--redis", redis_url,
                          "--redis-prefix", prefix, *flags, port=0, env=env)
            for home in homes]


def start_all(servers: Sequence[ServerProcess]) -> list[ServerProcess]:
    """Start the servers side by side (a start is mostly the interpreter importing, and
    waiting for /healthz); if any fails, every one is killed and the first error raised."""
    with ThreadPoolExecutor(len(servers) or 1) as pool:
        starts = [pool.submit(server.start) for server in servers]
        wait(starts)
    failed = [error for start in starts if (error := start.exception()) is not None]
    if failed:
        for server in servers:
            server.kill()
        raise failed[0]
    return list(servers)
