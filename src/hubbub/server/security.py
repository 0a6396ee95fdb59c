"""Who may connect: browser origin checks, API keys, connection tokens."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

import jwt
from aiohttp import web

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The names a browser on this machine reaches a loopback-bound server by."""


class BadHeader(ValueError):
    """A header a client sent cannot be read at all (the message says which and why): the
    request is answered 400, never 500."""


def same_origin(request: web.Request, origin: str) -> bool:
    """True when `origin` names this server as the browser reached it.

    Raises `BadHeader` for an origin whose port is not a port (`http://127.0.0.1:99999`).
    """
    try:
        parts = urlsplit(origin.lower())
        hostname, port = parts.hostname, parts.port
    except ValueError as exc:
        raise BadHeader(f"the Origin header {origin!r} is not an origin: {exc}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        return False
    host = request.host.lower()
    default_port = 443 if parts.scheme == "https" else 80
    origin_host = parts.hostname if port in (None, default_port) else parts.netloc
    if ":" in host and host.rsplit(":", 1)[1] == str(default_port):
        host = host.rsplit(":", 1)[0]
    if ":" in hostname:  # IPv6 literal
        origin_host = parts.netloc.removesuffix(f":{default_port}")
    return origin_host == host


def origin_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """Cross-site request guard, for WebSocket handshakes and state-changing API requests.

    Browsers always send `Origin` on a WebSocket handshake and on every cross-origin POST
    (`no-cors` included); scripts and bots usually send none, and are not what this guards
    against. Raises `BadHeader` for an `Origin` that cannot be parsed.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    normalized = origin.strip().rstrip("/").lower()
    return "*" in allowed or normalized in allowed or same_origin(request, normalized)


def bearer_ok(request: web.Request, api_key: str | None) -> bool:
    """Whether the request carries `Authorization: Bearer <api_key>`; `BadHeader` if the
    header holds bytes that are not UTF-8 (aiohttp hands them over as surrogates)."""
    if api_key is None:
        return True
    header = request.headers.get("Authorization", "")
    try:
        raw = header.encode()
    except UnicodeEncodeError:
        raise BadHeader("the Authorization header is not valid UTF-8") from None
    scheme, _, token = raw.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), api_key.encode())


def is_loopback(host: str) -> bool:
    """Whether listening on `host` (the `host` setting) reaches this machine only."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, configured: Iterable[str]) -> tuple[str, ...]:
    """The `Host` names requests may carry (DNS rebinding guard): the configured ones and
    the loopback names, which no rebinding can make a browser send for a foreign page; with
    none configured, on a loopback-bound server the loopback names and the bound host, else
    any (`*`)."""
    configured = tuple(configured)
    if "*" in configured:
        return ("*",)
    if configured:
        return tuple(dict.fromkeys((*configured, *LOOPBACK_HOSTS)))
    if not is_loopback(host):
        return ("*",)
    bound = host.strip().lower()
    if ":" in bound and not bound.startswith("["):
        bound = f"[{bound}]"
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, bound)))


def host_name(header: str) -> str:
    """The name part of a `Host` header (`chat.example:8080` → `chat.example`, `[::1]:80` →
    `[::1]`), lower-cased; `BadHeader` if it is not a host[:port]."""
    value = header.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value.partition("]")
        name += bracket
        port = rest.removeprefix(":") if rest.startswith(":") else rest
    else:
        name, _, port = value.partition(":")
    if not name or (port and not port.isdigit()) or not name.isascii() \
            or any(ch in name for ch in "/\\@ ?#"):
        raise BadHeader(f"the Host header {header!r} is not a host name")
    return name.rstrip(".")


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """Whether a `host_name` is one of `allowed` (`*` = any, `.example.com` = it and its
    subdomains)."""
    for entry in allowed:
        if entry == "*" or entry == name:
            return True
        if entry.startswith(".") and (name == entry[1:] or name.endswith(entry)):
            return True
    return False


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
