"""Phone-width layout, both colour schemes, history paging and the scroll position."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from support.server import ServerProcess

from .conftest import PageFactory, post

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_360px_phone_gets_a_usable_page_without_sideways_scrolling(
    server: ServerProcess, open_page: PageFactory, shots_dir: Path, scheme: str
) -> None:
    post(server, "lobby", {"text": "a very long word: " + "x" * 200, "from": "bot"})
    post(server, "lobby", {"text": "see https://example.com/" + "p" * 120, "from": "bot"})
    chat = open_page(server, nick="Someone With A Long Name", width=360, height=740,
                     color_scheme=scheme)
    page = chat.page
    expect(chat.messages()).to_have_count(2)
    chat.send("hello from a phone")
    expect(chat.messages("hello from a phone")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.evaluate("document.getElementById('log').scrollWidth") <= 360

    # The room list is a drawer: hidden until the menu button opens it.
    sidebar = page.locator("#sidebar")
    expect(sidebar).not_to_be_in_viewport()
    menu = page.locator("#menu-button")
    expect(menu).to_be_visible()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(sidebar).to_be_in_viewport()
    expect(page.locator("#room-list a[data-room=lobby]")).to_be_visible()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    expect(sidebar).not_to_be_in_viewport()

    # The people list is an overlay opened from the room header.
    people = page.locator("#people-button")
    expect(people).to_have_attribute("aria-expanded", "false")
    people.click()
    expect(page.locator("#member-list .member-nick")).to_have_text(["Someone With A Long Name"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    page.screenshot(path=str(shots_dir / f"phone-{scheme}.png"))
    assert (shots_dir / f"phone-{scheme}.png").stat().st_size > 10_000

    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(255, 255, 255)" if scheme == "light" else "rgb(23, 25, 30)")


def test_history_pages_load_when_scrolling_up_and_the_view_stays_pinned(
    server: ServerProcess, open_page: PageFactory
) -> None:
    total = 130
    for n in range(1, total + 1):
        post(server, "lobby", {"text": f"message {n}", "from": "bot"})
    chat = open_page(server, nick="reader")
    page = chat.page
    log = page.locator("#log")

    # The latest page is shown, scrolled to the bottom.
    expect(chat.messages("message 130")).to_be_in_viewport()
    expect(chat.messages()).to_have_count(50)
    # Scrolling to the top pages in older history until the start of the room.
    for expected in (100, total):
        log.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        expect(chat.messages()).to_have_count(expected)
    expect(page.locator(".room-intro-title")).to_have_text("This is the start of #lobby")
    assert chat.bodies() == [f"message {n}" for n in range(1, total + 1)]

    # Scrolled away from the bottom, new messages do not move the view: a button appears.
    log.evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
    top_before = log.evaluate("el => el.scrollTop")
    post(server, "lobby", {"text": "while you were reading", "from": "bot"})
    post(server, "lobby", {"text": "and another", "from": "bot"})
    jump = page.locator("#jump")
    expect(jump).to_have_text("2 new messages ↓")
    assert log.evaluate("el => el.scrollTop") == top_before
    expect(chat.messages("and another")).not_to_be_in_viewport()
    jump.click()
    expect(jump).to_be_hidden()
    expect(chat.messages("and another")).to_be_in_viewport()

    # At the bottom, the view follows new messages by itself.
    post(server, "lobby", {"text": "pinned", "from": "bot"})
    expect(chat.messages("pinned")).to_be_in_viewport()
    expect(jump).to_be_hidden()

    # Sending from higher up brings the reader down to their own message.
    log.evaluate("el => { el.scrollTop = 0; }")
    expect(chat.messages("pinned")).not_to_be_in_viewport()
    chat.send("my reply")
    expect(chat.messages("my reply")).to_be_in_viewport()


def test_landmarks_labels_and_live_regions_for_screen_readers(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    page = chat.page
    expect(page.get_by_role("banner")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Rooms")).to_have_count(1)
    expect(page.get_by_role("main", name="lobby")).to_have_count(1)
    expect(page.get_by_role("complementary", name="People here")).to_have_count(1)
    log = page.get_by_role("log")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("status")).to_contain_text("Connected")
    expect(page.get_by_role("textbox", name="Message #lobby")).to_be_visible()
    expect(page.get_by_role("button", name="Send message")).to_be_visible()
    expect(page.get_by_role("button", name="Join or create a room")).to_be_visible()
    expect(page.get_by_role("button", name="Change your nickname")).to_be_visible()
    expect(page.get_by_role("link", name="lobby")).to_have_attribute("aria-current", "page")

    # Focus is visible: a focused control draws a ring (box-shadow) it does not have otherwise.
    button = page.locator("#add-room-button")
    plain = button.evaluate("el => getComputedStyle(el).boxShadow")
    for _ in range(10):
        page.keyboard.press("Tab")
        if button.evaluate("el => el === document.activeElement"):
            break
    expect(button).to_be_focused()
    focused = button.evaluate("el => getComputedStyle(el).boxShadow")
    assert focused != plain and focused != "none"
