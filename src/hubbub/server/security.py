"""Who may connect: browser origin checks, API keys, connection tokens."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The names a browser on this machine reaches a loopback-bound server by."""


class HttpRequest(Protocol):
    """What these checks read of a request: an aiohttp `web.Request`, or an `api.Call`."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def host(self) -> str: ...


class BadHeader(ValueError):
    """A header a client sent cannot be read at all (the message says which and why): the
    request is answered 400, never 500."""


def same_origin(request: HttpRequest, origin: str) -> bool:
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


def origin_allowed(request: HttpRequest, allowed: tuple[str, ...]) -> bool:
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


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    header = request.headers.get("Authorization", "")
    try:
        header.encode()
    except UnicodeEncodeError:  # aiohttp hands bytes that are not UTF-8 over as surrogates
        raise BadHeader("the Authorization header is not valid UTF-8") from None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def key_matches(given: str, api_key: str) -> bool:
    return hmac.compare_digest(given.encode(), api_key.encode())


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


ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")


class TokenVerifier:
    """Verifies connection JWTs: HS256 with `jwt_secret`, RS256 or ES256 (by the key's type)
    with the PEM public key of `jwt_public_key_file`, whichever are set. PyJWT checks the
    signature, `exp` and `nbf`; what the claims mean is
    `hubbub.core.grants.identity_from_claims`."""

    def __init__(self, secret: str | None, public_key_pem: bytes | None = None) -> None:
        self.keys: dict[str, Any] = {}
        if secret:
            self.keys["HS256"] = secret
        if public_key_pem is not None:
            try:
                key = load_pem_public_key(public_key_pem)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"not a PEM public key ({exc})") from None
            if isinstance(key, rsa.RSAPublicKey):
                self.keys["RS256"] = key
            elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
                self.keys["ES256"] = key
            else:
                raise ValueError("the public key must be RSA (RS256) or EC P-256 (ES256)")

    def decode(self, token: str | None) -> dict[str, object]:
        if not token:
            raise TokenError("a token is required (?token=...)")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
            key = self.keys.get(algorithm) if isinstance(algorithm, str) else None
            if key is None or not isinstance(algorithm, str):
                raise TokenError(f"invalid token: algorithm {algorithm!r} is not accepted "
                                 f"(accepted: {', '.join(self.keys)})")
            claims: dict[str, object] = jwt.decode(token, key, algorithms=[algorithm])
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        return claims


def load_verifier(secret: str | None, public_key_file: Path | None) -> TokenVerifier | None:
    """The verifier the settings ask for (None when no JWT key is set), or `ValueError`
    naming the file and what is wrong with it."""
    if not secret and public_key_file is None:
        return None
    pem = None
    if public_key_file is not None:
        try:
            pem = public_key_file.read_bytes()
        except OSError as exc:
            raise ValueError(f"jwt_public_key_file {public_key_file} cannot be read: "
                             f"{exc.strerror}") from None
    try:
        return TokenVerifier(secret, pem)
    except ValueError as exc:
        raise ValueError(f"jwt_public_key_file {public_key_file}: {exc}") from None
