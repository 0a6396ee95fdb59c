"""`hubbub serve`: open the store, start listening, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from hubbub.core.store import StoreOpenError
from hubbub.core.urls import masked_url
from hubbub.server import logs
from hubbub.server.app import make_app
from hubbub.server.auth import Auth
from hubbub.server.guard import GUARD, raise_descriptor_limit
from hubbub.server.security import is_loopback
from hubbub.server.settings import Settings, describe
from hubbub.server.storage import database_path

log = logging.getLogger("hubbub")

LISTEN_BACKLOG = 4096
"""Connections the kernel may queue before `accept`. After a restart every client
reconnects at once; with aiohttp's default of 128 the rest would wait for SYN retransmits
(1 s, 3 s, 7 s...). The kernel caps it at `net.core.somaxconn`."""

def where_data_lives(settings: Settings) -> str:
    """The start-up line that says where messages are kept and how durably."""
    if settings.redis is not None:
        return (f"hubbub data: in Redis at {masked_url(settings.redis)} (prefix "
                f"{settings.redis_prefix!r}; as durable as its persistence, see "
                "docs/operations.md)")
    if settings.store == "memory":
        return "hubbub data: in memory (memory store: history is lost when the server stops)"
    durability = f"{settings.durability} durability"
    if settings.durability == "batch":
        durability += f": commits gathered for up to {settings.commit_window_ms:g} ms"
    return f"hubbub data: {database_path(settings).resolve()} (sqlite store, {durability})"


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serving_lines(settings: Settings, url: str, hosts: Iterable[str], workers: int = 1
                  ) -> list[str]:
    """The `hubbub serving on URL (...)` line, and the warning when that is open to anyone:
    one process's, or the `--workers` supervisor's once every worker listens."""
    shape = f"{workers} workers, " if workers > 1 else ""
    keeper = "redis broker" if settings.redis is not None else f"{settings.store} store"
    lines = [f"hubbub serving on {url} ({shape}{keeper}, {settings.fanout} fan-out)"]
    warning = open_to_anyone(settings, hosts)
    if warning is not None:
        lines.append(warning)
    return lines


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """What changes when this process is worker `number` of `hubbub serve --workers N`
    (server/workers.py): it shares the port with the others (`SO_REUSEPORT`), its logs say
    `worker N`, and it tells the supervisor once it listens instead of printing the
    `hubbub serving on` line, which the supervisor prints for all of them."""

    number: int
    listening: Callable[[str, Sequence[str]], None]
    """Called with this worker's URL and the hosts it listens on."""


def open_to_anyone(settings: Settings, hosts: Iterable[str]) -> str | None:
    """A warning line when the server listens beyond loopback with nothing asked of
    clients: the HTTP API without an api_key, or /ws without a jwt_secret."""
    exposed = sorted({host for host in hosts if not is_loopback(host.partition("%")[0])})
    if not exposed:
        return None
    open_parts = []
    if settings.api_key is None:
        open_parts.append("the HTTP API needs no key (--api-key)")
    if settings.jwt_secret is None:
        open_parts.append("/ws needs no token (--jwt-secret)")
    if not open_parts:
        return None
    return (f"hubbub warning: listening on {', '.join(exposed)} (not only loopback) while "
            f"{' and '.join(open_parts)}: anyone who can reach it can use it")

class JsonFormatter(logging.Formatter):
    """`--log-format json`: one JSON object per line, for log shippers.

    Keys: `ts` (ISO 8601, UTC, milliseconds), `level`, `logger`, `message`, `worker` (its
    number, in a worker of `--workers N`), and `exc_info` (the formatted traceback, one
    string) and `stack_info` when the record has them.
    """

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, str | int] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            line["worker"] = self.worker
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line).decode()


def configure_logging(settings: Settings, worker: int | None = None) -> None:
    """Logs to stderr; a worker of `--workers N` says which one it is on every line."""
    level = logging.DEBUG if settings.dev else getattr(logging, settings.log_level.upper())
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(worker))
        # Python's warnings too, so that every line on stderr is one JSON object.
        logging.captureWarnings(True)
    else:
        tag = f"worker {worker} " if worker is not None else ""
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)-7s {tag}%(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    if not settings.dev:
        # aiohttp logs every request at INFO; that is noise for a chat server.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logs.install()


SWITCH_INTERVAL_S = 0.001
"""How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms).
The SQLite writer thread retakes the GIL after every statement; while the event loop thread
writes to a thousand sockets it gives the GIL up only when this interval runs out, so each
commit waited up to 5 ms for it (docs/storage.md, "Where the stalls came from")."""


def serve(settings: Settings, worker: WorkerRole | None = None) -> int:
    """Serve in this process until SIGTERM or SIGINT; `worker` when it is one of several."""
    configure_logging(settings, worker.number if worker else None)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a default dependency on Linux
        pass
    with asyncio.Runner(debug=settings.dev, loop_factory=loop_factory) as runner:
        return runner.run(_serve(settings, worker))


def _log_task_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Exceptions nobody awaited would otherwise vanish; log them with their traceback.
    exc = context.get("exception")
    log.error("unhandled error: %s", context.get("message"), exc_info=exc)


def load_auth(settings: Settings) -> Auth | None:
    """The token checker, or None once the reason it cannot be made (an unreadable key
    file) is printed: checked by the `--workers` supervisor too, so that it is said once."""
    try:
        return Auth(settings)
    except ValueError as exc:
        print(f"hubbub: {exc}", file=sys.stderr)
        return None


async def _serve(settings: Settings, worker: WorkerRole | None) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_log_task_exception)
    log.debug("settings: %s", describe(settings))
    auth = load_auth(settings)
    if auth is None:
        return 1
    # Before anything opens a descriptor; logged once listening (a failed start is one line).
    files_before, files_after = raise_descriptor_limit()
    app = make_app(settings, auth)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout,
                           access_log=None, keepalive_timeout=settings.keepalive_timeout)
    try:
        try:
            await runner.setup()  # opens the store (`app.open_store`), before listening
        except StoreOpenError as exc:
            print(f"hubbub: cannot open the message store: {exc}", file=sys.stderr)
            return 1
        if worker is None:  # the supervisor says it once for all workers
            print(where_data_lives(settings), flush=True)
        assert runner.server is not None
        guard = app[GUARD]
        guard.install(runner.server)
        site = web.TCPSite(runner, settings.host, settings.port, backlog=LISTEN_BACKLOG,
                           reuse_port=worker is not None)
        try:
            await site.start()
        except OSError as exc:
            print(f"hubbub: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
                  file=sys.stderr)
            return 1
        host, port = runner.addresses[0][:2]
        url = url_of(host, port)
        hosts = [str(address[0]) for address in runner.addresses]
        if worker is None:
            for line in serving_lines(settings, url, hosts):
                print(line, flush=True)
        else:
            print(f"hubbub worker {worker.number} (pid {os.getpid()}) listening on {url}",
                  flush=True)
            worker.listening(url, hosts)
        if files_after > files_before:
            log.info("open-file limit raised from %d to %d (the hard limit)",
                     files_before, files_after)
        else:
            log.info("open-file limit is %d (the hard limit)", files_after)
        if guard.max_connections != settings.max_connections:
            log.info("max_connections is %d, to fit the open-file limit", guard.max_connections)
        if settings.api_key is None and not is_loopback(settings.host):
            log.warning("no api_key while listening on %s: HTTP API publishes are refused "
                        "(403 api_key_required) until one is set", settings.host)
        if loop.get_debug():
            log.info("asyncio debug mode is on")
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        # Closes every socket with 1001, then flushes and closes the store.
        with contextlib.suppress(Exception):
            await runner.cleanup()
    log.info("stopped")
    return 0
