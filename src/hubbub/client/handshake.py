"""Opening one `hubbub.v1` WebSocket: the URL a user types, the HTTP upgrade, the server's
`welcome`, and the one-line reason every failure is reported with (`ConnectionFailed`).

The `Client` (`connection.py`) calls `Handshake.open` for its first connection and for every
reconnection; whether a failure is worth another attempt is decided there, from
`ConnectionFailed.status` and `FINAL_STATUSES`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import yarl

from hubbub.client import wire
from hubbub.client.errors import ConnectionFailed, ProtocolViolation, unreachable
from hubbub.client.policy import describe_close
from hubbub.core.protocol import SUBPROTOCOL

# History pages can hold history_page_max messages of up to max_frame_bytes each; aiohttp's
# 4 MiB default would turn a legitimate large page into a dropped connection.
MAX_INCOMING_FRAME = 16 * 1024 * 1024
FINAL_STATUSES = frozenset({400, 401, 403, 404})
"""Handshake refusals that will not change by retrying: bad parameters, token, origin."""


def ws_url(url: str) -> yarl.URL:
    """Normalise what a user types: http(s) maps to ws(s), a bare host gets `/ws`."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError) as exc:
        raise ConnectionFailed(f"bad URL {url!r}: {exc}") from None
    schemes = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
    if parsed.scheme not in schemes:
        raise ConnectionFailed(
            f"bad URL {url!r}: expected ws://, wss://, http:// or https://"
        )
    if not parsed.host:
        raise ConnectionFailed(f"bad URL {url!r}: no host")
    parsed = parsed.with_scheme(schemes[parsed.scheme])
    if parsed.path in ("", "/"):
        parsed = parsed.with_path("/ws")
    return parsed


@dataclass(frozen=True, slots=True)
class Handshake:
    """What stays the same across a client's connections; the nickname and token are passed
    to each `open`, because the session changes them (`set_nick`, `refresh`)."""

    url: yarl.URL
    origin: str | None
    headers: Mapping[str, str]
    timeout: float
    """Bounds one attempt, `welcome` included (`connect_timeout`)."""
    heartbeat: float | None

    async def open(
        self, http: aiohttp.ClientSession, *, nick: str | None, token: str | None
    ) -> tuple[aiohttp.ClientWebSocketResponse, wire.Welcome]:
        """Connect and read the `welcome`; raises `ConnectionFailed` (and closes the socket)
        for anything else."""
        query = dict(self.url.query)
        if nick is not None:
            query["nick"] = nick
        if token is not None:
            query["token"] = token
        headers = dict(self.headers)
        if self.origin is not None:
            headers["Origin"] = self.origin
        where = str(self.url)
        try:
            async with asyncio.timeout(self.timeout):
                ws = await http.ws_connect(
                    self.url.with_query(query),
                    protocols=(SUBPROTOCOL,),
                    headers=headers,
                    heartbeat=self.heartbeat,
                    max_msg_size=MAX_INCOMING_FRAME,
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise ConnectionFailed(refusal(where, exc.status, self.origin),
                                   status=exc.status) from exc
        except aiohttp.ClientConnectorError as exc:
            raise unreachable(where, exc) from exc
        except TimeoutError:
            raise ConnectionFailed(
                f"no answer from {where} within {self.timeout:g} s"
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ConnectionFailed(f"cannot connect to {where}: {exc}") from exc
        try:
            if ws.protocol != SUBPROTOCOL:
                raise ConnectionFailed(
                    f"{where} did not accept the {SUBPROTOCOL} subprotocol; is it a hubbub server?"
                )
            welcome = await self._receive_welcome(ws, where)
        except BaseException:
            await ws.close()
            raise
        return ws, welcome

    async def _receive_welcome(
        self, ws: aiohttp.ClientWebSocketResponse, where: str
    ) -> wire.Welcome:
        try:
            async with asyncio.timeout(self.timeout):
                msg = await ws.receive()
        except TimeoutError:
            raise ConnectionFailed(
                f"{where} sent no welcome within {self.timeout:g} s"
            ) from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionFailed(
                f"{where} closed the connection before its welcome "
                f"({describe_close(ws.close_code)})"
            )
        try:
            obj = wire.decode(msg.data)
            if obj["type"] != "welcome":
                raise ProtocolViolation(f"first frame is {obj['type']!r}, not welcome")
            return wire.welcome(obj)
        except ProtocolViolation as exc:
            raise ConnectionFailed(f"{where} is not speaking {SUBPROTOCOL}: {exc}") from exc


def refusal(where: str, status: int, origin: str | None) -> str:
    """Why the server refused the upgrade, in the words a user can act on."""
    if status == 403:
        sent = f"origin {origin!r}" if origin else "this origin"
        return f"{where} refused the handshake (403 Forbidden): {sent} is not allowed"
    if status == 401:
        return f"{where} refused the handshake (401 Unauthorized): a valid token is required"
    if status == 400:
        return f"{where} refused the handshake (400 Bad Request): check the nick and token"
    if status == 404:
        return f"{where} has no WebSocket endpoint (404 Not Found)"
    return f"{where} refused the handshake with HTTP {status}"
