"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's sync API.

Every page opened through `open_page` records console errors, uncaught exceptions and
Content-Security-Policy violations; the fixture fails the test at teardown if any appeared
that the test did not explicitly allow (`ChatPage.allow_console`). Playwright itself is
session-scoped and stopped at the end, so one Chromium serves the whole browser suite.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from support.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium tries to reach the internet at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Long enough for a server restart plus one backoff step; short enough to fail fast.
EXPECT_TIMEOUT_MS = 15_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)

# Records CSP violations from the very first script on, before the app's own code runs.
_CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class ChatPage:
    """One tab of the hubbub page, with the few actions and queries the tests share."""

    def __init__(self, page: Page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors
        self.allowed: list[re.Pattern[str]] = []

    def allow_console(self, pattern: str) -> None:
        """Let console errors matching `pattern` pass (e.g. a refused WebSocket on restart)."""
        self.allowed.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    @property
    def composer(self) -> Any:
        return self.page.locator("#composer-input")

    def wait_connected(self) -> None:
        expect(self.page.locator("#status")).to_have_attribute("data-state", "connected")

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.composer.press("Enter")

    def messages(self, text: str | None = None) -> Any:
        """Confirmed messages in the open room (not pending ones), optionally by exact text."""
        bodies = self.page.locator("#messages .msg-body")
        if text is None:
            return bodies
        return bodies.filter(has_text=re.compile(f"^{re.escape(text)}$"))

    def bodies(self) -> list[str]:
        return list(self.page.locator("#messages .msg-body").all_text_contents())

    def open_room(self, room: str) -> None:
        self.page.locator(f'#room-list a[data-room="{room}"]').click()
        expect(self.page.locator("#room-name")).to_have_text(room)

    def join_room_with_dialog(self, room: str) -> None:
        self.page.locator("#add-room-button").click()
        self.page.locator("#room-input").fill(room)
        self.page.locator("#room-input").press("Enter")
        expect(self.page.locator("#room-name")).to_have_text(room)


PageFactory = Callable[..., ChatPage]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[PageFactory]:
    """`open_page(server, nick="alice", room="lobby", viewport=..., color_scheme=...)`."""
    contexts: list[BrowserContext] = []
    pages: list[ChatPage] = []

    def factory(
        server: ServerProcess | None = None,
        *,
        nick: str | None = "tester",
        room: str | None = None,
        url: str | None = None,
        width: int = 1280,
        height: int = 800,
        color_scheme: str = "light",
        wait: bool = True,
    ) -> ChatPage:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,  # type: ignore[arg-type]
        )
        contexts.append(context)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        context.add_init_script(_CSP_RECORDER)
        if nick is not None:
            # As if this browser had chosen the nickname on an earlier visit.
            context.add_init_script(
                f"localStorage.setItem('hubbub.nick', {json.dumps(json.dumps(nick))});"
            )
        page = context.new_page()
        errors: list[str] = []
        chat = ChatPage(page, errors)
        pages.append(chat)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
        if url is None:
            assert server is not None
            url = server.url + "/" + (f"#/room/{room}" if room else "")
        page.goto(url)
        if wait and nick is not None:
            chat.wait_connected()
        return chat

    yield factory
    problems: list[str] = []
    for chat in pages:
        if chat.page.is_closed():
            continue
        violations = chat.page.evaluate("window.__cspViolations || []")
        problems += [f"CSP violation: {v}" for v in violations]
        problems += chat.unexpected_errors()
    for context in contexts:
        context.close()
    assert not problems, "browser reported errors:\n" + "\n".join(problems)


def post(server: ServerProcess, room: str, body: dict[str, object]) -> dict[str, object]:
    """Publish through the HTTP API, as a bot or another service would."""
    request = urllib.request.Request(
        f"{server.url}/api/rooms/{room}/messages",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        reply: dict[str, object] = json.loads(response.read())
        return reply


@pytest.fixture
def shots_dir(tmp_path: Path) -> Path:
    path = tmp_path / "screenshots"
    path.mkdir()
    return path
