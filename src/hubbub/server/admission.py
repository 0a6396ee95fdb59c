"""Who may open a WebSocket to `/ws`, and as whom: the checks before the handshake, for
every adapter (aiohttp's `websocket`, `hubbub.asgi`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hubbub.core.grants import Session
from hubbub.core.names import NICK_RULE, clean_nick, guest_name
from hubbub.server.auth import Auth
from hubbub.server.guard import Guard
from hubbub.server.logs import client_line
from hubbub.server.security import BadHeader, HttpRequest, TokenError, origin_allowed
from hubbub.server.settings import Settings

log = logging.getLogger("hubbub.ws")


class Refused(Exception):
    """The handshake is answered `status` with `text` instead."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def admit_websocket(request: HttpRequest, query: Mapping[str, str], settings: Settings,
                    auth: Auth, guard: Guard) -> tuple[str | None, Session | None]:
    """(the nick, what the token allows), or `Refused`. A connection opened with a token
    has the token's nick (see `core.grants`)."""
    try:
        allowed = origin_allowed(request, settings.allowed_origins)
    except BadHeader as exc:
        raise Refused(400, f"{exc}\n") from None
    if not allowed:
        guard.refused_origin += 1
        client_line(log, logging.WARNING, "origin", "refused WebSocket from origin %s",
                    request.headers.get("Origin"))
        raise Refused(403, "origin not allowed\n")
    asked = query.get("nick")
    nick = None if asked is None else clean_nick(asked)
    if asked is not None and nick is None:
        raise Refused(400, f"invalid nick: {NICK_RULE}\n")
    try:
        session = auth.ws_session(query.get("token"), request)
    except TokenError as exc:
        log.info("refused WebSocket: %s", exc)
        raise Refused(401, f"{exc}\n") from None
    if session is not None:
        nick = session.identity.nick or guest_name()
    return nick, session
