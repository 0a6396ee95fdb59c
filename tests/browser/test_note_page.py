"""The teaching note's 20-line chat page still works against hubbub's plain-text protocol.

The page is the note's code (`/work/shared/seed/websockets-notes.txt`, section 2.2) with one
change: it is served by a tiny static server on another port, so `location.host` is replaced
by hubbub's address. Its origin then differs from hubbub's, which hubbub refuses (403) unless
started with `--allowed-origin` for it. Chromium also needs LocalNetworkAccessChecks off for
a page to open a socket to another local port.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Dialog, Page, Playwright, expect

from support.server import ServerFactory, ServerProcess, free_port

from .conftest import CHROMIUM, CHROMIUM_ARGS, PageFactory, post

pytestmark = pytest.mark.browser

NOTE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ws chat</title><script>
function wsConnect() {
    window.sock = new WebSocket('ws://'+location.host+'/ws');
    sock.onclose = () => { alert("Server disconnected the WebSocket"); delete window.sock; }
    sock.onmessage = msg => {
        let li = document.createElement('li');
        li.append(msg.data);
        document.querySelector('ul').append(li);
        document.querySelector('form input').scrollIntoView()
    }
}
window.addEventListener('load', wsConnect);
function userInput(form) {
    if (!window.sock) return false;
    window.sock.send(form.querySelector('input').value)
    form.querySelector('input').value = ''
}
</script></head><body>
<ul></ul>
<form action="javascript:;" onsubmit="return userInput(this)"><input type="text"></form>
</body></html>
"""


class NoteSite:
    """Serves the note's page on its own port, pointed at one hubbub server."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.hubbub_host = ""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = NOTE_PAGE.replace("location.host", json.dumps(site.hubbub_host)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> NoteSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def note_browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"],
    )
    yield browser
    browser.close()


@pytest.fixture
def note_site() -> Iterator[NoteSite]:
    with NoteSite() as site:
        yield site


def open_note(browser: Browser, site: NoteSite, server: ServerProcess
              ) -> tuple[Page, list[str], list[str]]:
    site.hubbub_host = f"127.0.0.1:{server.port}"
    page = browser.new_context().new_page()
    errors: list[str] = []
    alerts: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_dialog(dialog: Dialog) -> None:
        alerts.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(site.origin + "/")
    return page, errors, alerts


def test_the_note_page_chats_with_json_clients_through_hubbub(
    start_server: ServerFactory, note_site: NoteSite, note_browser: Browser,
    open_page: PageFactory,
) -> None:
    server = start_server("--allowed-origin", note_site.origin)
    post(server, "lobby", {"text": "said before the page opened", "from": "bot"})
    note, errors, alerts = open_note(note_browser, note_site, server)
    items = note.locator("ul li")
    # The plain-text protocol replays recent lobby history on connect.
    expect(items).to_have_text(["bot: said before the page opened"])

    note.locator("form input").fill("hello?")
    note.locator("form input").press("Enter")
    expect(items.nth(1)).to_have_text(re.compile(r"^guest-[0-9a-f]{4}: hello\?$"))
    expect(note.locator("form input")).to_have_value("")

    # A hubbub page in lobby sees the note's message and answers it.
    alice = open_page(server, nick="alice")
    expect(alice.messages("hello?")).to_have_count(1)
    alice.send("No.")
    expect(items.nth(2)).to_have_text("alice: No.")
    post(server, "lobby", {"data": {"build": 812}, "from": "ci"})
    expect(items.nth(3)).to_have_text('ci: {"build":812}')
    # Nothing but chat lines reaches a plain-text client: no presence, no JSON events.
    expect(items).to_have_count(4)
    assert errors == [] and alerts == []


def test_the_note_page_is_refused_without_allowed_origin(
    server: ServerProcess, note_site: NoteSite, note_browser: Browser
) -> None:
    note, errors, alerts = open_note(note_browser, note_site, server)
    note.wait_for_function("() => !window.sock")
    assert alerts == ["Server disconnected the WebSocket"]
    assert any("403" in error for error in errors), errors
    expect(note.locator("ul li")).to_have_count(0)
