"""`hubbub serve --workers N`: N worker processes on one port, and the supervisor over them.

Each worker is a fresh interpreter (multiprocessing's "spawn": nothing of the supervisor's
memory, event loop or sockets is inherited, so a worker's event loop and its Redis
connections are all made after it starts) that runs the single-process `run.serve` and
listens on the same host and port with `SO_REUSEPORT`: the kernel spreads new connections
over the workers. The supervisor binds that port itself first, without listening (so that
`--port 0` gets one port for all, a second server cannot silently share it, and a restarted
worker always gets it back), starts the workers, prints the `hubbub serving on` line once
every worker listens, restarts a worker that dies, and on SIGTERM or SIGINT has every worker
close its sockets with 1001 and exits 0.

Workers share rooms, history and presence through the Redis broker (`--redis`, which
`settings` requires above one worker); `--store` is then not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from hubbub.server.run import (
    WorkerRole,
    configure_logging,
    load_auth,
    serve,
    serving_lines,
    where_data_lives,
)
from hubbub.server.settings import Settings

log = logging.getLogger("hubbub.workers")

RESTART_BACKOFF_S = 1.0
"""Pause before starting a worker again when it already had to be restarted within
`RESTART_WINDOW_S`: a worker that crashes as it starts must not spin the CPU."""

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
"""A worker that needs more than `MAX_RESTARTS` restarts within `RESTART_WINDOW_S` will not
get better by itself: the supervisor stops every worker and exits 1, for systemd or the
orchestrator to decide."""

SHUTDOWN_MARGIN_S = 5.0
"""How much longer than `shutdown_timeout` the supervisor waits for workers to finish their
shutdown (closing sockets with 1001, flushing the store) before it SIGKILLs them."""


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (port 0: a free one) with `SO_REUSEPORT`, not listening,
    so the kernel hands it no connections; the workers bind the same address beside it.

    First the port is bound without `SO_REUSEPORT`, which fails if anything has it already:
    with the option alone, a second server of the same user could join the port and take
    half of its connections."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()
    reserved = socket.socket(family, kind, proto)
    try:
        if family == socket.AF_INET6:  # as asyncio binds it: IPv6 only
            reserved.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind(address)
    except BaseException:
        reserved.close()
        raise
    return reserved


def supervise(settings: Settings) -> int:
    """Run `settings.workers` workers until SIGTERM or SIGINT; the exit code of `serve`."""
    configure_logging(settings)
    if load_auth(settings) is None:
        return 1
    try:
        reserved = reserve_port(settings.host, settings.port)
    except OSError as exc:
        print(f"hubbub: cannot listen on {settings.host}:{settings.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    with reserved:
        port = reserved.getsockname()[1]
        worker_settings = dataclasses.replace(settings, port=port)
        return asyncio.run(Supervisor(worker_settings).run())


def _worker_main(settings: Settings, number: int, link: Connection) -> None:
    """A worker process: serve, tell the supervisor once listening, and stop if the
    supervisor is gone (its end of `link` closes, even when it was SIGKILLed)."""
    threading.Thread(target=_stop_when_orphaned, args=(link,), daemon=True,
                     name="supervisor-watch").start()
    role = WorkerRole(number, lambda url, hosts: link.send((url, list(hosts))))
    raise SystemExit(serve(settings, role))


def _stop_when_orphaned(link: Connection) -> None:
    try:
        while True:
            link.recv()  # the supervisor sends nothing: this returns at its end's close
    except (EOFError, OSError):
        # The same SIGTERM the supervisor would send: sockets closed with 1001.
        os.kill(os.getpid(), signal.SIGTERM)


@dataclasses.dataclass(slots=True)
class Worker:
    """One of the N places a worker runs in; its process changes when it is restarted."""

    number: int
    process: BaseProcess | None = None
    link: Connection | None = None
    restarts: deque[float] = dataclasses.field(default_factory=deque)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.workers = [Worker(number) for number in range(1, settings.workers + 1)]
        self.stopping = asyncio.Event()
        self.failed = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            started = await self._start_all()
            if isinstance(started, int):
                return started
            url, hosts = started
            print(where_data_lives(self.settings), flush=True)
            for line in serving_lines(self.settings, url, hosts, len(self.workers)):
                print(line, flush=True)
            keepers = [asyncio.create_task(self._keep(worker)) for worker in self.workers]
            await self.stopping.wait()
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            return 1 if self.failed else 0
        finally:
            log.info("stopping the workers")
            await self._stop_all()
            log.info("stopped")

    async def _start_all(self) -> tuple[str, list[str]] | int:
        """Start every worker and wait until each listens: the first one's URL and hosts,
        or the exit code to stop with: 1 if one failed to start (its reason is on stderr,
        and the others are stopped), 0 if a signal came first."""
        for worker in self.workers:
            self._spawn(worker)
        answers = [asyncio.ensure_future(self._listening(worker)) for worker in self.workers]
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            for worker, answer in zip(self.workers, answers, strict=True):
                await asyncio.wait((answer, stop), return_when=asyncio.FIRST_COMPLETED)
                if stop.done():
                    return 0
                if answer.result() is None:
                    assert worker.process is not None
                    worker.process.join()
                    log.error("worker %d (pid %s) %s before it listened", worker.number,
                              worker.process.pid, _exit_text(worker.process.exitcode))
                    return 1
            first = answers[0].result()
            assert first is not None
            return first
        finally:
            stop.cancel()
            for answer in answers:
                answer.cancel()

    def _spawn(self, worker: Worker) -> None:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker_main, name=f"hubbub worker {worker.number}",
                                       args=(self.settings, worker.number, theirs))
        process.start()
        theirs.close()  # so that the worker's end sees EOF once we close ours
        worker.process, worker.link = process, ours

    async def _listening(self, worker: Worker) -> tuple[str, list[str]] | None:
        """The worker's URL and hosts once it listens; None if it exited first."""
        assert worker.link is not None
        link = worker.link
        await _readable(link.fileno())
        try:
            url, hosts = link.recv()
        except (EOFError, OSError):
            return None
        return str(url), [str(host) for host in hosts]

    async def _keep(self, worker: Worker) -> None:
        """Restart `worker` whenever it dies, until the supervisor stops or gives up."""
        while True:
            assert worker.process is not None
            process = worker.process
            await _readable(process.sentinel)
            process.join()
            self._close_link(worker)
            if self.stopping.is_set():
                return
            now = time.monotonic()
            while worker.restarts and worker.restarts[0] < now - RESTART_WINDOW_S:
                worker.restarts.popleft()
            how = _exit_text(process.exitcode)
            if len(worker.restarts) >= MAX_RESTARTS:
                log.error("worker %d (pid %s) %s: %d exits within %g s, giving up",
                          worker.number, process.pid, how, MAX_RESTARTS + 1,
                          RESTART_WINDOW_S)
                self.failed = True
                self.stopping.set()
                return
            delay = RESTART_BACKOFF_S if worker.restarts else 0.0
            worker.restarts.append(now)
            log.warning("worker %d (pid %s) %s; starting it again%s", worker.number,
                        process.pid, how, f" in {delay:g} s" if delay else "")
            if delay:
                await asyncio.sleep(delay)
            if self.stopping.is_set():
                return
            self._spawn(worker)

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each closes its sockets with 1001), wait for them for
        `shutdown_timeout` plus a margin, then SIGKILL what is left."""
        running = [w.process for w in self.workers if w.process and w.process.is_alive()]
        for process in running:
            assert process.pid is not None
            with contextlib.suppress(ProcessLookupError):  # it may exit meanwhile
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout + SHUTDOWN_MARGIN_S
        for process in running:
            try:
                # The sentinel, not `is_alive()`: a worker that just closed it may not be
                # reapable yet, and it must not be SIGKILLed for that.
                await asyncio.wait_for(_readable(process.sentinel),
                                       max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("worker pid %s did not stop in time: killing it", process.pid)
                process.kill()
            process.join()
        for worker in self.workers:
            self._close_link(worker)

    @staticmethod
    def _close_link(worker: Worker) -> None:
        if worker.link is not None:
            worker.link.close()
            worker.link = None


async def _readable(fd: int) -> None:
    """Wait until `fd` can be read: data, EOF, or (a process sentinel) the process ended."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)

