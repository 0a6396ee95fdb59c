"""Who a WebSocket connection or an HTTP API request is, and so what it may do.

The credentials are the API key (everything allowed) and connection tokens (JWTs, verified
by `security.TokenVerifier`, their claims read by `hubbub.core.grants`). One `Auth` per
application, made from the settings at start-up.
"""

from __future__ import annotations

import asyncio
import time

from hubbub.core.codes import CloseCode
from hubbub.core.grants import GrantError, Identity, Session, forbidden, identity_from_claims
from hubbub.engine.fanout import Socket
from hubbub.server.security import (
    HttpRequest,
    TokenError,
    bearer_token,
    key_matches,
    load_verifier,
)
from hubbub.server.settings import Settings


class Auth:
    def __init__(self, settings: Settings) -> None:
        """Raises `ValueError` when the public key file cannot be used."""
        self.verifier = load_verifier(settings.jwt_secret, settings.jwt_public_key_file)
        self.api_key = settings.api_key
        self.token_required = self.verifier is not None or settings.require_token

    def identity(self, token: str) -> Identity:
        """The identity a JWT carries, or `TokenError` saying why it is refused."""
        if self.verifier is None:
            raise TokenError("invalid token: this server has no key to verify JWTs with")
        claims = self.verifier.decode(token)
        try:
            return identity_from_claims(claims)
        except GrantError as exc:
            raise TokenError(f"invalid token: {exc}") from None

    def ws_session(self, token: str | None, request: HttpRequest | None = None,
                   ) -> Session | None:
        """The session of a `/ws` connection with `?token=`: None when it may do anything
        (no token needed, or the API key given as the token). `TokenError` refuses it.
        `request` is for an embedding app's `authorize` (`mount.HookAuth`)."""
        if not self.token_required:
            return None
        if not token:
            raise TokenError("a token is required (?token=...)")
        if self.api_key and key_matches(token, self.api_key):
            return None
        return Session(self.identity(token), self._verify_refresh)

    def _verify_refresh(self, token: str) -> Identity:
        try:
            return self.identity(token)
        except TokenError as exc:
            raise forbidden(str(exc)) from None

    def http_identity(self, request: HttpRequest) -> Identity | None:
        """The identity of an HTTP API request (`Authorization: Bearer <API key or JWT>`):
        None when it may do anything. `TokenError` refuses it (401)."""
        token = bearer_token(request)
        if self.api_key and token is not None and key_matches(token, self.api_key):
            return None
        if self.verifier is not None and token is not None:
            return self.identity(token)
        if self.api_key:
            raise TokenError("a valid API key is required")
        return None


class TokenExpiry:
    """Closes the connection with 4001 when its token's `exp` passes; a `refresh` moves
    the deadline."""

    __slots__ = ("handle", "session", "socket")

    def __init__(self, socket: Socket, session: Session) -> None:
        self.socket = socket
        self.session = session
        self.handle: asyncio.TimerHandle | None = None
        session.on_refresh = self._refreshed
        self._arm()

    def _refreshed(self, identity: Identity) -> None:
        self.cancel()
        self._arm()

    def _arm(self) -> None:
        expires = self.session.identity.expires
        if expires is None:
            self.handle = None
            return
        delay = max(expires - time.time(), 0.0)
        self.handle = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        expires = self.session.identity.expires
        if expires is not None and expires <= time.time():
            self.socket.close_with(CloseCode.UNAUTHORIZED, "token expired")
        else:
            self._arm()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
