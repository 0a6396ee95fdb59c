"""Who may connect: browser origin checks, API keys, connection tokens."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

import jwt
from aiohttp import web


def same_origin(request: web.Request, origin: str) -> bool:
    """True when `origin` names this server as the browser reached it."""
    parts = urlsplit(origin.lower())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = request.host.lower()
    default_port = 443 if parts.scheme == "https" else 80
    origin_host = parts.hostname if parts.port in (None, default_port) else parts.netloc
    if ":" in host and host.rsplit(":", 1)[1] == str(default_port):
        host = host.rsplit(":", 1)[0]
    if parts.hostname and ":" in parts.hostname:  # IPv6 literal
        origin_host = parts.netloc.removesuffix(f":{default_port}")
    return origin_host == host


def origin_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """Cross-site WebSocket hijacking guard.

    Browsers always send `Origin` on a WebSocket handshake; scripts and bots usually send
    none, and are not what this guards against.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    normalized = origin.strip().rstrip("/").lower()
    return "*" in allowed or normalized in allowed or same_origin(request, normalized)


def bearer_ok(request: web.Request, api_key: str | None) -> bool:
    if api_key is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), api_key.encode()
    )


class TokenError(Exception):
    pass


def decode_token(token: str | None, secret: str) -> dict[str, object]:
    """Verify a connection JWT (HS256, `exp` honoured if present)."""
    if not token:
        raise TokenError("a token is required (?token=...)")
    try:
        claims: dict[str, object] = jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    return claims
