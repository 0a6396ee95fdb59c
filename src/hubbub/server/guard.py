"""Limits on what the network may ask of the server before any handler runs.

One `Guard` per server watches every TCP connection from the moment it is accepted:

- **caps**: connections in total (`max_connections`, lowered to fit the open-file limit)
  and per client address (`max_connections_per_ip`; IPv6 addresses count per /64);
- **connection rate**: new connections per second per address (`connection_rate_*`), so
  that one address's reconnect storm cannot crowd out everyone else;
- **header timeout**: a connection must send complete request headers (for `/ws`, the
  handshake) within `header_timeout` seconds, or it is answered 408 and closed;
- **allowed hosts**: every request's `Host` must be one of `allowed_hosts` (DNS rebinding);
- **HTTP API rate**: requests per second per address (`http_rate_*`), asked by the API.

A refused connection is still read: its request is answered (503 or 429, `Retry-After`,
`Connection: close`) so that the client sees why; one that sends nothing is closed after
`REFUSAL_GRACE`. Nothing here costs an established WebSocket more than one dict entry.

The counters (`refused_*`, `header_timeouts`, `ping_rate_closes`) are plain ints for
`/metrics`; `counters()` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import resource
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from hubbub.core.ratelimit import TokenBucket
from hubbub.engine.tasks import spawn
from hubbub.server.logs import client_line
from hubbub.server.paths import local_path
from hubbub.server.replies import error_response
from hubbub.server.security import BadHeader, allowed_hosts, host_allowed, host_name
from hubbub.server.settings import Settings

log = logging.getLogger("hubbub.guard")

REFUSAL_GRACE = 1.0
"""Seconds a refused connection has to send the request its refusal answers."""
SWEEP_INTERVAL = 0.25
"""How often deadlines are checked: the precision of `header_timeout`."""
PRUNE_INTERVAL = 30.0
"""How often the per-address rate buckets that are full again are forgotten."""
BUSY_RETRY_AFTER = 5
"""`Retry-After` (seconds) when the server or an address is at its connection cap."""
DESCRIPTOR_RESERVE = 64
"""Open files kept for the store, logs and refused connections below the open-file limit."""


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: str
    reason: str
    retry_after: int | None = None


def client_key(ip: str) -> str:
    """The unit the per-address limits count: the address, an IPv6 one by its /64 (one
    host usually has a whole /64), an IPv4-mapped IPv6 one as the IPv4 address."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return sys.intern(ip)


def descriptor_limit() -> int:
    """The soft open-file limit (RLIMIT_NOFILE)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Guard:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.allowed_hosts = allowed_hosts(settings.host, settings.allowed_hosts)
        self.max_connections = settings.max_connections
        fit = descriptor_limit() - DESCRIPTOR_RESERVE
        if fit > 0 and (self.max_connections is None or self.max_connections > fit):
            self.max_connections = fit
        self._grace = min(REFUSAL_GRACE, settings.header_timeout)
        self._peers: dict[RequestHandler, str] = {}
        self._per_address: dict[str, int] = {}
        self._connect_buckets: dict[str, TokenBucket] = {}
        self._http_buckets: dict[str, TokenBucket] = {}
        # Both in deadline order: every entry of one gets the same timeout.
        self._awaiting: dict[RequestHandler, float] = {}
        self._refused: dict[RequestHandler, tuple[float, Refusal]] = {}
        self.refused_max_connections = 0
        self.refused_max_connections_per_ip = 0
        self.refused_connection_rate = 0
        self.refused_http_rate = 0
        self.refused_host = 0
        self.refused_origin = 0
        self.header_timeouts = 0
        self.ping_rate_closes = 0

    def counters(self) -> dict[str, int]:
        """Every hit counter by name, for `/metrics`."""
        return {name: getattr(self, name) for name in (
            "refused_max_connections", "refused_max_connections_per_ip",
            "refused_connection_rate", "refused_http_rate", "refused_host", "refused_origin",
            "header_timeouts", "ping_rate_closes")}

    @property
    def connections(self) -> int:
        """Open TCP connections, refused ones included until they close."""
        return len(self._peers)

    # ------------------------------------------------------------------ connections

    def install(self, server: web.Server) -> None:
        """Watch the connections `server` (the runner's protocol factory) accepts."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self.opened(handler, transport)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self.closed(handler)
            lost(handler, exc)

        # aiohttp's Server has no hook for this; its two methods are the ones every
        # RequestHandler calls on accept and on close.
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def opened(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = client_key(str(peer[0])) if isinstance(peer, tuple) and peer else "unknown"
        now = asyncio.get_running_loop().time()
        total = len(self._peers)
        self._peers[handler] = address
        count = self._per_address[address] = self._per_address.get(address, 0) + 1
        refusal = self._refusal(address, total, count, now)
        if refusal is None:
            self._awaiting[handler] = now + self.settings.header_timeout
            return
        self._refused[handler] = (now + self._grace, refusal)
        client_line(log, logging.WARNING, refusal.code, "refused a connection from %s: %s",
                    address, refusal.reason)

    def _refusal(self, address: str, total: int, count: int, now: float) -> Refusal | None:
        settings = self.settings
        if self.max_connections is not None and total >= self.max_connections:
            self.refused_max_connections += 1
            return Refusal(503, "too_many_connections",
                           f"the server has {total} connections open, its limit "
                           "(max_connections); retry later", BUSY_RETRY_AFTER)
        per_ip = settings.max_connections_per_ip
        if per_ip is not None and count > per_ip:
            self.refused_max_connections_per_ip += 1
            return Refusal(429, "too_many_connections",
                           f"{per_ip} connections from your address are open, the limit "
                           "(max_connections_per_ip); close one or retry later",
                           BUSY_RETRY_AFTER)
        wait = self._take(self._connect_buckets, address, settings.connection_rate_per_second,
                          settings.connection_rate_burst, now)
        if wait:
            self.refused_connection_rate += 1
            return Refusal(429, "rate_limited",
                           "too many new connections from your address (connection_rate_per"
                           f"_second is {settings.connection_rate_per_second:g})",
                           math.ceil(wait))
        return None

    def closed(self, handler: RequestHandler) -> None:
        address = self._peers.pop(handler, None)
        if address is None:
            return
        count = self._per_address.get(address, 1) - 1
        if count > 0:
            self._per_address[address] = count
        else:
            self._per_address.pop(address, None)
        self._awaiting.pop(handler, None)
        self._refused.pop(handler, None)

    @staticmethod
    def _take(buckets: dict[str, TokenBucket], address: str, rate: float, burst: int,
              now: float) -> float:
        if rate <= 0:
            return 0.0
        bucket = buckets.get(address)
        if bucket is None:
            bucket = buckets[address] = TokenBucket(rate, burst, now)
        return bucket.take(now)

    # ------------------------------------------------------------------ requests

    def admit(self, request: web.Request) -> web.Response | None:
        """The checks every request passes first; a response if it is refused."""
        protocol = request.protocol
        if self._awaiting.pop(protocol, None) is None:
            entry = self._refused.pop(protocol, None)
            if entry is not None:
                response = self.reply(request, entry[1])
                response.force_close()
                return response
        refusal = self.host_refusal(request.headers.get("Host"))
        return None if refusal is None else self.reply(request, refusal)

    def host_refusal(self, host: str | None) -> Refusal | None:
        """The `allowed_hosts` check of a `Host` header (for any adapter)."""
        if self.allowed_hosts == ("*",):
            return None
        if host is None:  # HTTP/1.0 without Host: no browser, nothing to rebind
            return None
        try:
            name = host_name(host)
        except BadHeader as exc:
            return Refusal(400, "bad_request", str(exc))
        if host_allowed(name, self.allowed_hosts):
            return None
        self.refused_host += 1
        client_line(log, logging.WARNING, "host", "refused a request for host %r (allowed_hosts)",
                    name)
        return Refusal(
            421, "host_not_allowed",
            f"this server does not answer to the host name {name!r}; it answers to "
            f"{', '.join(self.allowed_hosts)} (allowed_hosts)")

    def address_of(self, request: web.Request) -> str:
        """The address the request's connection came from, as the limits count it."""
        return self._peers.get(request.protocol, "unknown")

    def http_rate_of(self, address: str) -> float:
        """For the HTTP API: 0.0 if a client at `address` may make a request now, else the
        seconds until it may."""
        settings = self.settings
        wait = self._take(self._http_buckets, address, settings.http_rate_per_second,
                          settings.http_rate_burst, asyncio.get_running_loop().time())
        if wait:
            self.refused_http_rate += 1
        return wait

    @staticmethod
    def reply(request: web.Request, refusal: Refusal) -> web.Response:
        """A refusal as the API's JSON error under /api/, as one line of text elsewhere."""
        headers = {} if refusal.retry_after is None else {"Retry-After": str(refusal.retry_after)}
        if local_path(request).startswith("/api/"):
            return error_response(refusal.status, refusal.code, refusal.reason, **headers)
        return web.Response(status=refusal.status, text=refusal.reason + "\n", headers=headers)

    # ------------------------------------------------------------------ deadlines

    async def running(self, app: web.Application) -> AsyncIterator[None]:
        """Cleanup context: enforce the deadlines while the app runs."""
        task = spawn(self._sweep(), "guard")
        yield
        task.cancel()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        pruned = loop.time()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = loop.time()
            for handler in _expired(self._awaiting, now, lambda deadline: deadline):
                self.header_timeouts += 1
                _close(handler, b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                       b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 52\r\n\r\n"
                       b"request headers not received within header_timeout\n")
            for handler in _expired(self._refused, now, lambda entry: entry[0]):
                _close(handler, b"")
            if now - pruned >= PRUNE_INTERVAL:
                pruned = now
                for buckets in (self._connect_buckets, self._http_buckets):
                    for address in [a for a, b in buckets.items() if b.full(now)]:
                        del buckets[address]


def _expired(entries: dict[RequestHandler, Any], now: float,
             deadline: Callable[[Any], float]) -> list[RequestHandler]:
    expired = []
    for handler, entry in entries.items():
        if deadline(entry) > now:
            break
        expired.append(handler)
    for handler in expired:
        del entries[handler]
    return expired


def _close(handler: RequestHandler, last_words: bytes) -> None:
    transport = handler.transport
    if transport is None or transport.is_closing():
        return
    if last_words:
        transport.write(last_words)
    transport.close()


GUARD = web.AppKey("guard", Guard)


@web.middleware
def request_guard(request: web.Request, handler: Any) -> Awaitable[web.StreamResponse]:
    """The guard's per-request checks, first of all middlewares. Not a coroutine, for the
    same reason as `http_api.api_guard`: no frame of it outlives the handshake."""
    refusal = request.app[GUARD].admit(request)
    if refusal is not None:
        return _now(refusal)
    if local_path(request).startswith("/static/"):
        return _static(request, handler)
    return handler(request)  # type: ignore[no-any-return]


async def _now(response: web.StreamResponse) -> web.StreamResponse:
    return response


async def _static(request: web.Request, handler: Any) -> web.StreamResponse:
    # aiohttp's static route stats the path as given: one over the file system's name
    # length (ENAMETOOLONG) would be a 500 with a traceback.
    try:
        response: web.StreamResponse = await handler(request)
    except OSError:
        raise web.HTTPNotFound() from None
    return response
