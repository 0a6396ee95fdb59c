"""The chat page served under a prefix by the embedding examples, in Chromium: its static
files and WebSocket URL resolve under the prefix, and it chats."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from test_examples import example

from .conftest import PageFactory

pytestmark = pytest.mark.browser


def test_aiohttp_example_login_then_the_team_room_under_chat(
        tmp_path: Path, open_page: PageFactory) -> None:
    with example("aiohttp_embed.py", tmp_path, "/") as url:
        chat = open_page(url=url + "/", nick="ann", wait=False)
        chat.allow_console(r"status of 404 \(Not Found\)")  # the login page has no favicon
        page = chat.page
        page.locator("input[name=user]").fill("ann")
        page.locator("input[name=team]").fill("red")
        page.locator("button").click()
        page.locator("a").click()
        expect(page).to_have_url(url + "/chat/#/room/team-red")
        chat.wait_connected()
        expect(page.locator("#room-name")).to_have_text("team-red")
        chat.send("hello from the browser")
        expect(chat.messages("hello from the browser")).to_have_count(1)
        expect(page.locator("#me-nick")).to_have_text("ann")
        page.close()


def test_fastapi_example_page_under_chat(tmp_path: Path, open_page: PageFactory) -> None:
    with example("fastapi_embed.py", tmp_path, "/chat/healthz") as url:
        chat = open_page(url=url + "/chat/", nick="fan")
        chat.send("through asgi")
        expect(chat.messages("through asgi")).to_have_count(1)
        chat.page.close()
