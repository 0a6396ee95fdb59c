"""Server restarts while pages are open: every message shows exactly once afterwards."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from support.server import ServerFactory, ServerProcess

from .conftest import ChatPage, PageFactory, post

pytestmark = pytest.mark.browser

# Chromium logs each refused reconnection attempt as a console error; those are expected
# while the server is down, and nothing else is.
REFUSED_SOCKET = r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws.*' failed"


def assert_each_once(chat: ChatPage, texts: list[str]) -> None:
    for text in texts:
        expect(chat.messages(text)).to_have_count(1)
    bodies = chat.bodies()
    assert sorted(bodies) == sorted(set(bodies)), bodies
    assert [b for b in bodies if b in texts] == texts


def test_pages_recover_every_message_exactly_once_across_restarts(
    server: ServerProcess, open_page: PageFactory
) -> None:
    alice = open_page(server, nick="alice")
    bob = open_page(server, nick="bob", room="ops")
    pages = [alice, bob]
    for chat in pages:
        chat.allow_console(REFUSED_SOCKET)
    # Bob keeps lobby and ops; ops stays out of view so its messages count as unread.
    bob.page.goto(f"{server.url}/#/room/lobby")
    expect(bob.page.locator("#room-name")).to_have_text("lobby")

    published: list[str] = []
    ops: list[str] = []

    def publish(text: str, room: str = "lobby") -> None:
        post(server, room, {"text": text, "from": "deploy-bot"})
        (published if room == "lobby" else ops).append(text)

    for n in range(3):
        publish(f"before restart {n}")
    for chat in pages:
        assert_each_once(chat, published)

    for cycle in range(2):
        server.stop()
        for chat in pages:
            expect(chat.page.locator("#status")).to_have_attribute("data-state", "reconnecting")
            expect(chat.page.locator("#status-text")).to_contain_text("Reconnecting")
        # A draft typed while offline is kept and cannot be sent yet.
        alice.composer.fill(f"typed offline {cycle}")
        expect(alice.page.locator("#send-button")).to_be_disabled()
        alice.composer.press("Enter")
        expect(alice.composer).to_have_value(f"typed offline {cycle}")

        server.start()
        # Published while the pages are most likely still waiting out their backoff.
        for n in range(3):
            publish(f"cycle {cycle} message {n}")
        publish(f"cycle {cycle} ops", room="ops")
        for chat in pages:
            chat.wait_connected()
        for n in range(3, 5):
            publish(f"cycle {cycle} message {n}")

        alice.composer.press("Enter")
        expect(alice.composer).to_have_value("")
        published.append(f"typed offline {cycle}")
        for chat in pages:
            assert_each_once(chat, published)
            # Recovery worked: no "history reset" notice was needed.
            expect(chat.page.locator("#notice-bar")).to_be_hidden()

    unread = bob.page.locator('#room-list a[data-room="ops"] .badge')
    expect(unread).to_have_text("2 unread messages")
    bob.open_room("ops")
    assert_each_once(bob, ops)


def test_history_reset_while_away_reloads_the_room_with_a_notice(
    start_server: ServerFactory, open_page: PageFactory
) -> None:
    # The memory store loses everything on restart: the room's epoch changes.
    server = start_server("--store", "memory")
    chat = open_page(server, nick="alice")
    chat.allow_console(REFUSED_SOCKET)
    post(server, "lobby", {"text": "from the old epoch"})
    expect(chat.messages("from the old epoch")).to_have_count(1)

    server.stop()
    expect(chat.page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    server.start()
    post(server, "lobby", {"text": "from the new epoch"})
    chat.wait_connected()
    expect(chat.page.locator("#notice-text")).to_contain_text("Some messages may be missing")
    expect(chat.messages("from the new epoch")).to_have_count(1)
    # The old epoch's message is gone from the server's history, so from the page too.
    expect(chat.messages("from the old epoch")).to_have_count(0)
    post(server, "lobby", {"text": "live again"})
    expect(chat.messages("live again")).to_have_count(1)
    assert chat.bodies() == ["from the new epoch", "live again"]


def test_an_offline_browser_says_so_and_reconnects_when_back_online(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    chat.allow_console(REFUSED_SOCKET)
    chat.allow_console(r"ERR_INTERNET_DISCONNECTED")
    context = chat.page.context
    context.set_offline(True)
    # Going offline does not always drop an open socket; a server restart does.
    server.stop()
    expect(chat.page.locator("#status-text")).to_have_text("Offline: waiting for the network")
    expect(chat.page.locator("#send-button")).to_be_disabled()
    server.start()
    post(server, "lobby", {"text": "said while alice was offline"})
    context.set_offline(False)
    chat.wait_connected()
    expect(chat.messages("said while alice was offline")).to_have_count(1)
