"""Several browsers chatting through a real server: rooms, history, presence, unread counts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from support.server import ServerFactory, ServerProcess

from .conftest import PageFactory

pytestmark = pytest.mark.browser


def test_two_people_chat_in_two_rooms_and_a_late_joiner_sees_history(
    server: ServerProcess, open_page: PageFactory
) -> None:
    alice = open_page(server, nick="alice")
    bob = open_page(server, nick="bob")

    # Presence: each sees the other arrive in the default room.
    expect(alice.page.locator("#member-list .member-nick")).to_have_text(["alice", "bob"])
    expect(bob.page.locator("#member-list .member-nick")).to_have_text(["bob", "alice"])
    expect(alice.page).to_have_url(f"{server.url}/#/room/lobby")

    alice.send("hi bob")
    alice.send("are you there?")
    expect(bob.messages("are you there?")).to_have_count(1)
    bob.send("yes, hello alice")
    expect(alice.messages("yes, hello alice")).to_have_count(1)

    # Two consecutive messages from alice form one group; bob's starts a new one.
    rows = alice.page.locator("#messages .msg")
    expect(rows).to_have_count(3)
    continued = re.compile(r"\bcontinued\b")
    expect(rows.nth(0)).not_to_have_class(continued)
    expect(rows.nth(1)).to_have_class(continued)
    expect(rows.nth(2)).not_to_have_class(continued)
    # Own messages are marked on the sender's side only.
    expect(alice.page.locator("#messages .msg.own")).to_have_count(2)
    expect(bob.page.locator("#messages .msg.own")).to_have_count(1)
    expect(rows.nth(0).locator(".msg-from")).to_have_text("alice")
    iso_time = re.compile(r"^\d{4}-\d\d-\d\dT.*Z$")
    expect(rows.nth(0).locator("time.msg-time")).to_have_attribute("datetime", iso_time)

    # Alice creates a room by name; bob follows a link to it.
    alice.join_room_with_dialog("dev.ops")
    expect(alice.page).to_have_url(f"{server.url}/#/room/dev.ops")
    alice.send("deploy at 5?")
    bob.page.goto(f"{server.url}/#/room/dev.ops")
    expect(bob.page.locator("#room-name")).to_have_text("dev.ops")
    expect(bob.messages("deploy at 5?")).to_have_count(1)
    bob.send("ok for me")
    expect(alice.messages("ok for me")).to_have_count(1)

    # Back in lobby, bob sees what is said in dev.ops as unread, counted once.
    bob.open_room("lobby")
    alice.send("one more thing")
    unread = bob.page.locator('#room-list a[data-room="dev.ops"] .badge')
    expect(unread).to_have_text("1 unread message")
    expect(bob.page).to_have_title("(1) #lobby · hubbub")
    bob.page.go_back()
    expect(bob.page.locator("#room-name")).to_have_text("dev.ops")
    expect(unread).to_have_count(0)
    expect(bob.messages("one more thing")).to_have_count(1)
    expect(bob.page).to_have_title("#dev.ops · hubbub")

    # A third person arriving later by a link gets each room's history, each message once.
    carol = open_page(server, nick="carol", room="dev.ops")
    expect(carol.messages("one more thing")).to_have_count(1)
    assert carol.bodies() == ["deploy at 5?", "ok for me", "one more thing"]
    expect(carol.page.locator("#member-list .member-nick")).to_have_text(
        ["carol", "alice", "bob"]
    )
    carol.open_room("lobby")
    expect(carol.messages("yes, hello alice")).to_have_count(1)
    assert carol.bodies() == ["hi bob", "are you there?", "yes, hello alice"]


def test_room_names_are_checked_before_and_by_the_server(
    start_server: ServerFactory, open_page: PageFactory
) -> None:
    server = start_server("--max-rooms", "2")
    alice = open_page(server, nick="alice")
    page = alice.page
    page.locator("#add-room-button").click()
    expect(page.locator("#room-dialog")).to_be_visible()
    expect(page.locator("#room-input")).to_be_focused()

    # The page's own rule: refused without a round trip.
    page.locator("#room-input").fill("no spaces allowed")
    page.locator("#room-input").press("Enter")
    expect(page.locator("#room-error")).to_contain_text("letters, digits, or _ - . : @")
    expect(page.locator("#room-input")).to_have_attribute("aria-invalid", "true")
    # The field cannot hold more than the 64 characters a room name may have.
    page.locator("#room-input").fill("x" * 65)
    expect(page.locator("#room-input")).to_have_value("x" * 64)
    page.locator("#room-input").fill("")

    # The existing room shows up in the browse list from `rooms` → `room_list`.
    expect(page.locator("#browse-list .browse-name")).to_contain_text(["#lobby"])

    # Unicode letters are fine; the server's own refusal (too_many_rooms) shows inline.
    page.locator("#room-input").fill("café")
    page.locator("#room-input").press("Enter")
    expect(page.locator("#room-name")).to_have_text("café")
    page.locator("#add-room-button").click()
    page.locator("#room-input").fill("third")
    page.locator("#room-input").press("Enter")
    expect(page.locator("#room-error")).not_to_be_empty()
    expect(page.locator("#room-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#room-dialog")).to_be_hidden()
    expect(page.locator("#room-list .room-link-name")).to_have_text(["lobby", "café"])

    # A link to a room that cannot exist leaves the reader where they were, with a notice.
    page.goto(f"{server.url}/#/room/{'y' * 65}")
    expect(page.locator("#notice-text")).to_contain_text("There is no room called")
    expect(page.locator("#room-name")).to_have_text("café")
    page.locator("#notice-dismiss").click()
    expect(page.locator("#notice-bar")).to_be_hidden()
    expect(page.locator("#composer-input")).to_be_focused()

    # Leaving a room removes it and falls back to the default room.
    page.locator('#room-list button[data-leave="café"]').click()
    expect(page.locator("#room-list .room-link-name")).to_have_text(["lobby"])
    expect(page.locator("#room-name")).to_have_text("lobby")


def test_presence_follows_joins_leaves_and_nick_changes(
    server: ServerProcess, open_page: PageFactory
) -> None:
    alice = open_page(server, nick="alice")
    bob = open_page(server, nick="bob")
    members = alice.page.locator("#member-list .member-nick")
    expect(members).to_have_text(["alice", "bob"])
    expect(alice.page.locator("#people-count")).to_have_text("2")

    # Bob renames himself with the keyboard only.
    bob.page.locator("#me-button").focus()
    bob.page.keyboard.press("Enter")
    expect(bob.page.locator("#nick-input")).to_be_focused()
    bob.page.keyboard.press("Control+A")
    bob.page.keyboard.type("Robert B.")
    bob.page.keyboard.press("Enter")
    expect(bob.page.locator("#nick-dialog")).to_be_hidden()
    expect(bob.page.locator("#me-nick")).to_have_text("Robert B.")
    expect(members).to_have_text(["alice", "Robert B."])
    assert bob.page.evaluate("localStorage.getItem('hubbub.nick')") == '"Robert B."'

    # An invalid nickname is refused inline and the dialog stays open; Escape cancels.
    bob.page.locator("#me-button").click()
    bob.page.locator("#nick-input").fill("bad/nick")
    bob.page.locator("#nick-input").press("Enter")
    expect(bob.page.locator("#nick-error")).to_contain_text("Nicknames are")
    bob.page.keyboard.press("Escape")
    expect(bob.page.locator("#nick-dialog")).to_be_hidden()
    expect(bob.page.locator("#me-nick")).to_have_text("Robert B.")

    bob.page.close()
    expect(members).to_have_text(["alice"])
    expect(alice.page.locator("#people-count")).to_have_text("1")


def test_first_visit_asks_for_a_nickname_and_remembers_it(
    server: ServerProcess, open_page: PageFactory
) -> None:
    visitor = open_page(server, nick=None)
    page = visitor.page
    expect(page.locator("#nick-dialog")).to_be_visible()
    expect(page.locator("#nick-input")).to_be_focused()
    page.keyboard.type("Dana")
    page.keyboard.press("Enter")
    visitor.wait_connected()
    expect(page.locator("#me-nick")).to_have_text("Dana")
    visitor.send("hello from Dana")
    expect(page.locator("#messages .msg.own .msg-from")).to_have_text("Dana")

    page.reload()
    visitor.wait_connected()
    expect(page.locator("#nick-dialog")).to_be_hidden()
    expect(page.locator("#me-nick")).to_have_text("Dana")
    # Messages from this browser's earlier connection are still recognised as its own.
    expect(page.locator("#messages .msg.own")).to_have_count(1)


def test_a_guest_can_skip_the_nickname(server: ServerProcess, open_page: PageFactory) -> None:
    visitor = open_page(server, nick=None)
    visitor.page.keyboard.press("Escape")
    visitor.wait_connected()
    expect(visitor.page.locator("#me-nick")).to_have_text(re.compile(r"^guest-"))


@pytest.mark.parametrize(
    ("nick", "rooms", "ids"),
    [
        ('"bad/nick"', '"lobby"', '"not a list"'),
        ("{not json", '[1, null, "bad room", "ok.room", "' + "x" * 65 + '"]', "[1, {}]"),
        ('"' + "n" * 33 + '"', "{}", "null"),
    ],
)
def test_hostile_values_in_local_storage_are_ignored(
    server: ServerProcess, open_page: PageFactory, nick: str, rooms: str, ids: str
) -> None:
    visitor = open_page(server, nick=None)
    page = visitor.page
    page.evaluate(
        """([nick, rooms, ids]) => {
            localStorage.setItem("hubbub.nick", nick);
            localStorage.setItem("hubbub.rooms", rooms);
            localStorage.setItem("hubbub.ids", ids);
        }""",
        [nick, rooms, ids],
    )
    page.reload()
    # An unusable stored nickname means asking again, not a refused handshake loop.
    expect(page.locator("#nick-dialog")).to_be_visible()
    page.keyboard.type("fresh")
    page.keyboard.press("Enter")
    visitor.wait_connected()
    expect(page.locator("#me-nick")).to_have_text("fresh")
    names = page.locator("#room-list .room-link-name")
    expect(names).to_have_text(["lobby", "ok.room"] if "ok.room" in rooms else ["lobby"])
    visitor.send("still works")
    expect(page.locator("#messages .msg.own")).to_have_count(1)
