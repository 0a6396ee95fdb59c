"""The page on a `reset` event (the server lost a room's history, docs/protocol.md).

Only the Redis broker sends `reset`, and no test part makes a local server send one, so the
page talks to a real server through Playwright's WebSocket route, which relays every frame
both ways and lets the test add the one frame a server with Redis would send.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import WebSocketRoute, expect

from support.server import ServerProcess

from .conftest import PageFactory, post

pytestmark = pytest.mark.browser


def test_reset_drops_the_room_says_so_and_reloads_it_without_since(
    server: ServerProcess, open_page: PageFactory
) -> None:
    for n in range(3):
        post(server, "lobby", {"text": f"old {n}", "from": "bot"})
    chat = open_page(server, nick="alice")
    routes: list[WebSocketRoute] = []
    sent: list[dict[str, object]] = []

    def relay(route: WebSocketRoute) -> None:
        upstream = route.connect_to_server()

        def forward(message: str | bytes) -> None:
            if isinstance(message, str):
                sent.append(json.loads(message))
            upstream.send(message)

        route.on_message(forward)
        routes.append(route)

    chat.page.route_web_socket(re.compile(r"/ws(\?.*)?$"), relay)
    chat.page.reload()
    chat.wait_connected()
    for n in range(3):
        expect(chat.messages(f"old {n}")).to_have_count(1)
    assert len(routes) == 1
    before = len(sent)

    routes[0].send(json.dumps({"type": "reset", "room": "lobby", "epoch": "0badc0de",
                               "offset": 3, "reason": "epoch_changed"}))
    expect(chat.page.locator("#notice-text")).to_have_text(
        "The history of #lobby was reset on the server.")
    # Joined again with no `since`, then the room is what the server now holds, once each.
    expect(chat.messages("old 2")).to_have_count(1)
    joins = [frame for frame in sent[before:] if frame.get("type") == "join"]
    assert [frame["rooms"] for frame in joins] == [["lobby"]]
    post(server, "lobby", {"text": "after the reset", "from": "bot"})
    expect(chat.messages("after the reset")).to_have_count(1)
    assert chat.bodies() == ["old 0", "old 1", "old 2", "after the reset"]
