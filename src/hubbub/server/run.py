"""`hubbub serve`: open the store, start listening, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any, Literal

from aiohttp import web

from hubbub.config import Settings, describe
from hubbub.core.memory_store import MemoryStore
from hubbub.core.store import MessageStore, StoreOpenError
from hubbub.server import logs
from hubbub.server.app import make_app
from hubbub.server.guard import GUARD, raise_descriptor_limit
from hubbub.server.security import is_loopback

log = logging.getLogger("hubbub")

LISTEN_BACKLOG = 4096
"""Connections the kernel may queue before `accept`. After a restart every client
reconnects at once; with aiohttp's default of 128 the rest would wait for SYN retransmits
(1 s, 3 s, 7 s...). The kernel caps it at `net.core.somaxconn`."""

DATABASE_NAME = "hubbub.sqlite3"


def make_store(settings: Settings) -> MessageStore:
    if settings.store == "memory":
        return MemoryStore()
    from hubbub.stores.sqlite import SQLiteStore

    durability: Literal["fsync", "batch"] = "batch" if settings.durability == "batch" else "fsync"
    return SQLiteStore(settings.data_dir / DATABASE_NAME, durability=durability,
                       commit_window_ms=settings.commit_window_ms)


def configure_logging(settings: Settings) -> None:
    level = logging.DEBUG if settings.dev else getattr(logging, settings.log_level.upper())
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not settings.dev:
        # aiohttp logs every request at INFO; that is noise for a chat server.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logs.install()


def serve(settings: Settings) -> int:
    configure_logging(settings)
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a default dependency on Linux
        pass
    with asyncio.Runner(debug=settings.dev, loop_factory=loop_factory) as runner:
        return runner.run(_serve(settings))


def _log_task_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Exceptions nobody awaited would otherwise vanish; log them with their traceback.
    exc = context.get("exception")
    log.error("unhandled error: %s", context.get("message"), exc_info=exc)


async def _serve(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_log_task_exception)
    log.debug("settings: %s", describe(settings))
    # Before anything opens a descriptor; logged once listening (a failed start is one line).
    files_before, files_after = raise_descriptor_limit()
    store = make_store(settings)
    try:
        await store.open()
    except StoreOpenError as exc:
        print(f"hubbub: cannot open the message store: {exc}", file=sys.stderr)
        return 1
    app = make_app(settings, store)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout,
                           access_log=None, keepalive_timeout=settings.keepalive_timeout)
    try:
        await runner.setup()
        assert runner.server is not None
        guard = app[GUARD]
        guard.install(runner.server)
        site = web.TCPSite(runner, settings.host, settings.port, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            print(f"hubbub: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
                  file=sys.stderr)
            return 1
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"hubbub serving on http://{shown}:{port} ({settings.store} store, "
              f"{settings.fanout} fan-out)", flush=True)
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
        with contextlib.suppress(Exception):
            await runner.cleanup()
        await store.close()
    log.info("stopped")
    return 0
