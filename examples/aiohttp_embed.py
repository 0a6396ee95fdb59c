"""An aiohttp app with its own login that gives each logged-in team a chat room of its own.

    python examples/aiohttp_embed.py        # then open http://127.0.0.1:8000/

The app keeps its sessions (a random cookie -> user and team); hubbub is mounted under
`/chat` and asks the app who each `/chat/ws`, API and SSE request is (`authorize=`): a user
may read, publish and see the members of `team-<their team>` (and talk in the shared
lobby) under their own name, and nothing in other teams' rooms.
Set PORT to choose the port and HUBBUB_DATA_DIR to keep history in SQLite there.
"""

from __future__ import annotations

import html
import os
import secrets

from aiohttp import web

import hubbub

SESSIONS = web.AppKey("sessions", dict[str, tuple[str, str]])

LOGIN_PAGE = r"""<!doctype html><meta charset="utf-8"><title>Team chat</title>
<h1>Team chat</h1>
<form method="post" action="/login">
  <label>Name <input name="user" required pattern="[A-Za-z0-9_\-]{1,20}"></label>
  <label>Team <input name="team" required pattern="[a-z0-9\-]{1,20}"></label>
  <button>Log in</button>
</form>"""


def who(request: web.Request) -> tuple[str, str] | None:
    # `config_dict`, not `app`: in hubbub's requests `request.app` is its sub-application,
    # and `config_dict` finds the key in the application it is mounted in.
    return request.config_dict[SESSIONS].get(request.cookies.get("session", ""))


async def home(request: web.Request) -> web.StreamResponse:
    login = who(request)
    if login is None:
        return web.Response(text=LOGIN_PAGE, content_type="text/html")
    user, team = login
    return web.Response(content_type="text/html", text=(
        f'<!doctype html><meta charset="utf-8"><p>Hello {html.escape(user)}. '
        f'<a href="/chat/#/room/team-{html.escape(team)}">Open the team-{html.escape(team)} '
        "room</a></p>"))


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    user, team = str(form.get("user", "")), str(form.get("team", ""))
    if not user.isascii() or not user.replace("-", "").replace("_", "").isalnum() \
            or not team.replace("-", "").isalnum() or not team.islower():
        raise web.HTTPBadRequest(text="a name and a team of letters, digits and dashes")
    token = secrets.token_urlsafe(16)
    request.app[SESSIONS][token] = (user, team)
    response = web.HTTPSeeOther("/")
    response.set_cookie("session", token, httponly=True, samesite="Lax")
    raise response


def authorize(request: web.Request) -> hubbub.Identity:
    """hubbub asks this for every /chat/ws, API and SSE request: the app's login decides."""
    login_ = who(request)
    if login_ is None:
        raise web.HTTPForbidden(text="log in first")
    user, team = login_
    # The team's room, and the lobby everyone shares (hubbub's page always joins the lobby).
    rooms = {f"team-{team}": ["read", "publish", "presence"], "lobby": ["read", "publish"]}
    return hubbub.Identity(subject=user, nick=user, grants=hubbub.parse_grants(rooms))


def make_app() -> web.Application:
    app = web.Application()
    app[SESSIONS] = {}
    app.router.add_get("/", home)
    app.router.add_post("/login", login)
    data_dir = os.environ.get("HUBBUB_DATA_DIR")
    settings = (hubbub.settings(store="sqlite", data_dir=data_dir) if data_dir
                else hubbub.settings(store="memory"))
    hubbub.setup(app, "/chat", settings, authorize=authorize)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
