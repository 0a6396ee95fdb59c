"""Where the bench connects: a `ws://` URL, checked once and split for the raw client."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Endpoint:
    """Where to connect: parsed once from a `ws://` URL."""

    host: str
    port: int
    target: str  # path and query, as sent in the request line
    url: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Raises ValueError with a reason for anything but a usable `ws://` URL."""
        if any(ch.isspace() for ch in url) or not url.isprintable():
            raise ValueError("URL must not contain spaces or control characters")
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError("only ws:// URLs are supported (the bench runs over loopback)")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        if not parts.hostname:
            raise ValueError("URL has no host")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, target, url)

    def with_port(self, port: int) -> Endpoint:
        return Endpoint(self.host, port, self.target, self.url)
