"""A private `redis-server` for tests: started on a free port of 127.0.0.1 in a temporary
directory, waited for with PING, and stopped by its own PID.

One per test session serves the tests that only need a Redis (the `redis_url` fixture); a
test that hurts its Redis (kills, pauses, restarts it, drops its clients) gets its own
from `RedisProcess(..., persistent=True)`, with an append-only file synced on every write
so that a SIGKILLed and restarted server keeps what it acknowledged. `HUBBUB_TEST_REDIS_URL`
points the session's tests at an existing server instead; every test then writes under
its own key prefix (`unique_prefix`), which is what keeps tests apart on either server.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from support.server import free_port

REDIS_URL_ENV = "HUBBUB_TEST_REDIS_URL"
"""An existing Redis for the tests that need only one (fault tests always start their own)."""

MISSING = ("redis-server is not installed: `bash scripts/test.sh` installs Debian's "
           f"redis-server, or set {REDIS_URL_ENV} to a Redis the tests may write to")

_dirs = itertools.count(1)


def redis_server_binary() -> str:
    """The `redis-server` on PATH; `FileNotFoundError` with what to do when there is none."""
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError(MISSING)
    return found


def unique_prefix() -> str:
    """A `--redis-prefix` no other test (of this session or any other on a shared Redis)
    uses; within the settings' 1-64 characters of A-Z a-z 0-9 _ . : -."""
    return f"hubbub-test:{uuid.uuid4().hex[:16]}"


class RedisProcess:
    """One `redis-server` child on 127.0.0.1, killed by PID only; its log is `log_path`.

    `persistent` turns on the append-only file with `appendfsync always`: what Redis
    acknowledged survives a SIGKILL. `restart()` starts it again on the same port and
    directory (an outage), `restart(fresh=True)` in a new, empty directory (lost data)."""

    def __init__(self, base: Path, *, persistent: bool = False, port: int | None = None) -> None:
        self.base = base
        self.persistent = persistent
        self.port = port or free_port()
        self.dir = self._new_dir()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "redis-server was not started"
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    def _new_dir(self) -> Path:
        path = self.base / f"redis-{self.port}-{next(_dirs)}"
        path.mkdir(parents=True)
        return path

    def command(self) -> list[str]:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        # `--save ""`: no RDB snapshots, so what survives a restart is the append-only
        # file's doing alone (or nothing, without `persistent`).
        return [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", *persistence, "--daemonize", "no"]

    def start(self, timeout: float = 10.0) -> RedisProcess:
        """Start it and return once it answers PING (after loading its append-only file)."""
        command = self.command()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in kill()/stop()
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        with self.client(socket_timeout=1.0) as client:
            while True:
                if self.proc.poll() is not None:
                    self._close_log()
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n"
                                       f"{self.log_text()}")
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass  # not listening yet, or still loading its data (LOADING)
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"redis-server did not answer PING within {timeout} s:"
                                       f"\n{self.log_text()}")
                time.sleep(0.01)

    def client(self, socket_timeout: float = 2.0) -> redis.Redis:
        """A fresh synchronous client (close it, e.g. with `with`). It never retries by
        itself: a test sees each failure, and a timeout takes `socket_timeout`, once."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=socket_timeout,
                           socket_connect_timeout=socket_timeout, retry=Retry(NoBackoff(), 0))

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is written on the way out."""
        if self.proc is not None and self.proc.poll() is None:
            self.resume()  # a stopped process does not die of SIGKILL until it runs
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, a clean shutdown; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._close_log()

    def restart(self, *, fresh: bool = False, timeout: float = 10.0) -> RedisProcess:
        """Kill it (if running) and start it again on the same port: in the same directory
        (its append-only file, if persistent, brings its data back), or with `fresh` in a
        new, empty one (every key is gone)."""
        self.kill()
        if fresh:
            self.dir = self._new_dir()
        return self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections open and answers nothing."""
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT (harmless when it is not stopped)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def kill_pubsub_clients(self) -> int:
        """`CLIENT KILL TYPE pubsub`: drops every subscriber connection; returns how many."""
        with self.client() as client:
            return int(client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def redis_is_up(url: str, timeout: float = 2.0) -> None:
    """Raise a clear error unless the Redis at `url` (from `HUBBUB_TEST_REDIS_URL`) answers."""
    try:
        with redis.Redis.from_url(url, socket_timeout=timeout,
                                  socket_connect_timeout=timeout) as client:
            client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise RuntimeError(f"{REDIS_URL_ENV}={url!r} does not answer PING: {exc}") from exc


RedisFactory = Callable[..., RedisProcess]
"""The `private_redis` fixture: `private_redis()` or `private_redis(persistent=False)`."""


def forget_prefix(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (a test's, on a shared Redis); how many there were."""
    with redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        return int(client.delete(*keys)) if keys else 0
