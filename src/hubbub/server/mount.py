"""`hubbub.setup`: hubbub inside an existing aiohttp application (docs/embedding.md).

The hub, its routes and its lifecycle are those of `hubbub serve` (`app.install`); this
module only decides where they go in the host application and who may connect:

- Under a prefix, hubbub is a sub-application (`add_subapp`): its middlewares, headers and
  keys are its own, and aiohttp runs its start-up and shutdown with the host's.
- With no prefix its routes join the host's router, and its middlewares and headers act on
  its own paths only (`paths.owned`); the host's requests pass them untouched.
- `authorize`, if given, decides who every `/ws`, HTTP API and SSE request is: the host's
  own login (a session cookie, say) instead of hubbub's API key and JWTs.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from hubbub.core.grants import Identity, Session, forbidden
from hubbub.engine.hub import Hub
from hubbub.server import keys
from hubbub.server.api import Call
from hubbub.server.app import install, new_app
from hubbub.server.auth import Auth
from hubbub.server.keys import AUTHORIZED
from hubbub.server.paths import OWN_PATHS, OWN_TREES, local_path, owned
from hubbub.server.replies import http_error_response
from hubbub.server.security import HttpRequest
from hubbub.server.settings import Settings, from_code, validate
from hubbub.server.storage import make_broker

log = logging.getLogger("hubbub.embed")

HUB = keys.HUB
"""`request.app[hubbub.HUB]`: the hub of the first `setup` call on the application (its
`publish`, `members`, `room_list`...). Inside hubbub's own handlers `request.app` is the
mounted sub-application, which holds its own hub under the same key."""

HUBS = web.AppKey("hubbub_hubs", dict[str, Hub])
"""`request.app[hubbub.HUBS]["/chat"]`: every hub mounted in the application, by prefix
(`""` for none), for an application that mounts more than one."""

Authorize = Callable[[web.Request], Identity | Awaitable[Identity]]
"""`authorize(request)` returns who the request is (`Identity`: its nick and `Grants`, the
model a JWT's claims map to), or refuses it by raising an aiohttp HTTP error."""

class HookAuth(Auth):
    """Credentials decided by the embedding application's `authorize`: the identity the
    hook returned for this request, for `/ws`, the HTTP API and SSE alike."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.token_required = True

    def ws_session(self, token: str | None, request: HttpRequest | None = None,
                   ) -> Session | None:
        assert isinstance(request, web.Request)  # `websocket._admit` passes it
        identity: Identity = request[AUTHORIZED]
        return Session(identity, _no_refresh)

    def http_identity(self, request: HttpRequest) -> Identity | None:
        assert isinstance(request, Call) and request.authorized is not None
        return request.authorized


def _no_refresh(token: str) -> Identity:
    raise forbidden("this connection's identity comes from the application it is embedded "
                    "in; reconnect to renew it")


def setup(app: web.Application, prefix: str = "/chat", settings: Settings | None = None, *,
          authorize: Authorize | None = None) -> Hub:
    """Mount hubbub's `/ws`, HTTP API (with SSE) and page under `prefix` of `app`.

    `settings` are the `Settings` of `hubbub serve`, checked the same way (`ConfigError`
    says which is wrong); `host`, `port` and the connection limits that need the listening
    socket (`max_connections*`, `connection_rate*`, `header_timeout`) belong to whoever runs
    `app` and are not used. The store opens when `app` starts (a `StoreOpenError` fails
    its start-up) and is flushed and closed when it stops, after every hubbub socket was
    closed with 1001. Returns the hub; `app[hubbub.HUB]` and `app[hubbub.HUBS][prefix]` hold
    it too. A prefix that collides with routes `app` already has is a `ValueError`.
    """
    settings = validate(settings) if settings is not None else from_code()
    prefix = _clean_prefix(prefix)
    _refuse_collisions(app, prefix)
    auth: Auth = HookAuth(settings) if authorize is not None else Auth(settings)
    broker = make_broker(settings)
    if prefix:
        target = new_app(settings)
        hub = install(target, settings, broker, auth, prefix=prefix)
        if authorize is not None:
            # First of its middlewares: the API's guard reads the identity it sets.
            target.middlewares.insert(0, _authorizing(authorize))
        # The page's links are relative to `/chat/`; `/chat` alone would resolve them
        # against `/`. Before the sub-application, which would answer `/chat` with a 404.
        app.router.add_get(prefix, _to_slash(prefix + "/"))
        app.add_subapp(prefix, target)
    else:
        if authorize is not None:
            app.middlewares.append(_authorizing(authorize))
        hub = install(app, settings, broker, auth, shared=True)
    if HUB not in app:
        app[HUB] = hub
    if HUBS not in app:
        app[HUBS] = {}
    app[HUBS][prefix] = hub
    return hub


_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)*")
"""Path segments of URL-safe characters: no route placeholders (`{...}`), no empty segment,
nothing a URL would have to escape."""


def _clean_prefix(prefix: str) -> str:
    cleaned = prefix.rstrip("/")
    if (not _PREFIX.fullmatch(cleaned)
            or any(part in (".", "..") for part in cleaned.split("/"))):
        raise ValueError(f"prefix {prefix!r} must be a path like '/chat' (or '' for none)")
    return cleaned


def _refuse_collisions(app: web.Application, prefix: str) -> None:
    """A route of `app` that hubbub's paths under `prefix` would shadow, or that would
    shadow them, is a `ValueError` naming it: both would answer the same requests."""
    for resource in app.router.resources():
        path = resource.canonical
        if prefix:
            hit = path == prefix or path.startswith(prefix + "/")
        else:
            hit = path in OWN_PATHS or any(
                path.startswith(tree) or path + "/" == tree for tree in OWN_TREES)
        if hit:
            where = f"under the prefix {prefix!r}" if prefix else "with no prefix"
            raise ValueError(
                f"hubbub cannot be mounted {where}: the application already has the route "
                f"{path!r} there; choose another prefix (hubbub answers "
                f"{', '.join(prefix + p for p in (*OWN_PATHS, *OWN_TREES))})")


def _to_slash(location: str) -> Handler:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(location)

    return redirect


_GUARDED = ("/ws", "/api/")


def _authorizing(authorize: Authorize) -> Middleware:
    """The middleware that asks `authorize` who a `/ws`, API or SSE request is. Its HTTP
    errors are the API's JSON errors under `/api/`, as they are elsewhere; other paths
    (the page, static files, health checks) are not asked about."""

    @web.middleware
    async def authorizing(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = local_path(request)
        if not owned(path) or not path.startswith(_GUARDED):
            return await handler(request)
        try:
            identity = authorize(request)
            if inspect.isawaitable(identity):
                identity = await identity
        except web.HTTPException as exc:
            if exc.status >= 400 and path.startswith("/api/"):
                return http_error_response(exc)
            raise
        if not isinstance(identity, Identity):
            raise TypeError(f"authorize must return a hubbub Identity, not {identity!r}")
        request[AUTHORIZED] = identity
        return await handler(request)

    return authorizing
