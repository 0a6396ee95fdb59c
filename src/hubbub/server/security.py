"""Who may connect: browser origin checks, API keys, connection tokens."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key


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


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def key_matches(given: str, api_key: str) -> bool:
    return hmac.compare_digest(given.encode(), api_key.encode())


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
