"""A page on another site cannot publish through the HTTP API (issue 10, item 4).

Chromium's `no-cors` `fetch()` with a `text/plain` body needs no CORS preflight and
reaches the server whatever it answers; hubbub used to parse the body as JSON and publish it.
The page here is served from another port (another origin) by the note-page test's server.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Browser

from support.server import ServerProcess
from support.wsclient import unique

from .test_note_page import NoteSite, note_browser, note_site, open_note  # noqa: F401

pytestmark = pytest.mark.browser

NO_CORS_PUBLISH = """async ([url, body]) => {
    await fetch(url, {method: "POST", mode: "no-cors", body,
                      headers: {"Content-Type": "text/plain"}});
    return "sent";
}"""


def history_status(server: ServerProcess, room: str) -> int:
    try:
        with urllib.request.urlopen(f"{server.url}/api/rooms/{room}/messages") as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_cross_site_no_cors_fetch_cannot_publish(
    server: ServerProcess, note_site: NoteSite, note_browser: Browser  # noqa: F811
) -> None:
    page, _, _ = open_note(note_browser, note_site, server)
    room = unique("csrf")
    url = f"{server.url}/api/rooms/{room}/messages"
    assert page.evaluate(NO_CORS_PUBLISH, [url, '{"text": "pwned", "from": "admin"}']) == "sent"
    assert history_status(server, room) == 404  # nothing stored: the room was never used
    assert f"from origin {note_site.origin}" in server.log_text()
