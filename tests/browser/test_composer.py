"""The message box from the keyboard: Enter, Shift+Enter, the byte limit, server errors."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from support.server import ServerFactory, ServerProcess

from .conftest import PageFactory

pytestmark = pytest.mark.browser


def test_enter_sends_and_shift_enter_breaks_the_line(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    page = chat.page
    # Keyboard only: the skip link leads straight to the message box.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(chat.composer).to_be_focused()

    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(chat.composer).to_have_value("first line\nsecond line")
    page.keyboard.press("Enter")
    expect(chat.composer).to_have_value("")
    expect(chat.messages()).to_have_text(["first line\nsecond line"])
    expect(chat.composer).to_be_focused()

    # Blank messages are not sent.
    page.keyboard.type("   ")
    page.keyboard.press("Enter")
    expect(page.locator("#send-button")).to_be_disabled()
    page.keyboard.press("Control+A")
    page.keyboard.type("second message")
    page.keyboard.press("Enter")
    expect(chat.messages()).to_have_text(["first line\nsecond line", "second message"])


def test_text_over_the_server_limit_cannot_be_sent(
    start_server: ServerFactory, open_page: PageFactory
) -> None:
    server = start_server("--max-text-bytes", "64")
    chat = open_page(server, nick="alice")
    page = chat.page
    counter = page.locator("#composer-counter")
    send = page.locator("#send-button")

    chat.composer.fill("a" * 40)
    expect(counter).to_be_hidden()
    # The counter appears near the limit and counts UTF-8 bytes, not characters.
    chat.composer.fill("é" * 28)
    expect(counter).to_have_text("56 / 64 bytes")
    expect(send).to_be_enabled()
    chat.composer.fill("é" * 33)
    expect(counter).to_have_text("2 bytes over the limit of 64")
    expect(counter).to_have_class("counter over")
    expect(chat.composer).to_have_attribute("aria-invalid", "true")
    expect(send).to_be_disabled()
    chat.composer.press("Enter")
    expect(chat.composer).to_have_value("é" * 33)
    expect(page.locator(".pending-list .msg")).to_have_count(0)

    chat.composer.press("Backspace")
    expect(counter).to_have_text("64 / 64 bytes")
    chat.composer.press("Enter")
    expect(chat.messages()).to_have_text(["é" * 32])
    expect(counter).to_be_hidden()


def test_server_refusals_show_next_to_the_message_and_can_be_retried(
    start_server: ServerFactory, open_page: PageFactory
) -> None:
    # A burst of 3 requests: joining uses one, so the third message is refused.
    server = start_server("--rate-per-second", "0.01", "--rate-burst", "3")
    chat = open_page(server, nick="alice")
    for text in ("one", "two", "three"):
        chat.send(text)
    expect(chat.messages()).to_have_text(["one", "two"])
    failed = chat.page.locator(".pending-list .msg.failed")
    expect(failed).to_have_count(1)
    expect(failed.locator(".msg-body")).to_have_text("three")
    expect(failed.locator(".msg-error")).not_to_be_empty()
    expect(failed.locator("[role=alert]")).to_have_count(1)

    # Retrying is refused again (still over the rate); discarding removes it.
    failed.get_by_role("button", name="Retry").click()
    expect(failed).to_have_count(1)
    failed.get_by_role("button", name="Discard").click()
    expect(failed).to_have_count(0)
    expect(chat.composer).to_be_focused()
    expect(chat.messages()).to_have_text(["one", "two"])
