"""Where hubbub's routes are mounted in an aiohttp application, and the paths it owns there."""

from __future__ import annotations

from aiohttp import web

PREFIX = web.AppKey("prefix", str)
"""The path hubbub's routes are mounted under: `""` for `hubbub serve`, `"/chat"` for
`hubbub.setup(app, prefix="/chat")`. The API, static and page paths are judged below it."""

OWN_PATHS = ("/", "/ws", "/healthz", "/readyz", "/metrics")
OWN_TREES = ("/api/", "/static/")
"""What hubbub answers below its prefix: an embedding app's routes there collide with it."""


def local_path(request: web.Request) -> str:
    """The request's path below hubbub's mount prefix (`/chat/api/rooms` -> `/api/rooms`).

    `rel_url.path`, not `request.path`: the request's own cache is full, and one more entry
    makes it grow by ~200 bytes for the life of a WebSocket connection."""
    path = request.rel_url.path
    prefix = request.app.get(PREFIX, "")
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


def owned(path: str) -> bool:
    """Whether hubbub answers `path` (below its prefix)."""
    return path in OWN_PATHS or path.startswith(OWN_TREES)
