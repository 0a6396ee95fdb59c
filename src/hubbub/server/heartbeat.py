"""WebSocket heartbeats: one timer for every connection, not one each.

Every `heartbeat` seconds each connection that sent anything since the previous round (a
pong to that round's ping, or any other frame) is pinged again, and one that stayed silent
for the whole interval is cut off. aiohttp's own heartbeat keeps a timer handle per
connection, about 0.7 KiB of an idle connection's 15 (see "Idle connections" in
docs/performance.md); this costs each connection one timestamp.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from hubbub.engine.hub import Hub
from hubbub.engine.tasks import spawn
from hubbub.server import keys
from hubbub.server.logs import client_line
from hubbub.server.websocket import socket_of

log = logging.getLogger("hubbub.heartbeat")


async def heartbeat(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: run the heartbeat while the app runs (`--heartbeat 0`: never)."""
    interval = app[keys.SETTINGS].heartbeat
    task = spawn(_beat(app[keys.HUB], interval), "heartbeat") if interval else None
    yield
    if task is not None:
        task.cancel()


async def _beat(hub: Hub, interval: float) -> None:
    previous = time.monotonic()
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        for conn in list(hub.connections.values()):
            try:
                socket_of(conn).beat(silent_since=previous)
            except ConnectionError as exc:  # a client reset: ordinary, one line
                client_line(log, logging.INFO, "reset", "heartbeat for connection %s: %s",
                            conn.id, exc)
            except Exception:  # one broken connection must not stop the heartbeat
                log.exception("heartbeat for connection %s failed", conn.id)
        previous = now
