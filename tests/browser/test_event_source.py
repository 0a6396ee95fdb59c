"""Chromium's own `EventSource` on `GET /api/rooms/{room}/events`: it reconnects by itself
after the server is killed and restarted (SQLite store, so history survives) and, through
`Last-Event-ID`, receives every message exactly once, in order."""

from __future__ import annotations

import signal

import pytest

from support.server import ServerProcess

from .conftest import PageFactory, post

pytestmark = pytest.mark.browser

_LISTEN = """
(url) => {
  window.received = [];
  window.opened = 0;
  const source = new EventSource(url);
  source.onopen = () => { window.opened += 1; };
  source.addEventListener("message", (event) => {
    window.received.push([event.lastEventId, JSON.parse(event.data).text]);
  });
}
"""


def test_event_source_survives_a_server_kill_and_restart_without_loss(
        server: ServerProcess, open_page: PageFactory) -> None:
    chat = open_page(server, nick=None, url=f"{server.url}/healthz", wait=False)
    # Chromium logs the stream the kill cut short, each refused reconnection attempt while
    # the server is down, and the /favicon.ico a JSON page does not have.
    chat.allow_console(r"ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_CONNECTION_REFUSED")
    chat.allow_console(r"status of 404 \(Not Found\)")
    page = chat.page
    page.evaluate(_LISTEN, f"{server.url}/api/rooms/news/events")
    page.wait_for_function("() => window.opened === 1")
    sent = []
    for n in range(3):
        post(server, "news", {"text": f"before {n}"})
        sent.append(f"before {n}")
    page.wait_for_function("() => window.received.length === 3")

    server.stop(signal.SIGKILL)
    server.start()
    # Published before the browser is back: it must get them from history.
    for n in range(3):
        post(server, "news", {"text": f"while away {n}"})
        sent.append(f"while away {n}")
    page.wait_for_function("() => window.opened === 2")
    page.wait_for_function("() => window.received.length >= 6")
    post(server, "news", {"text": "live again"})
    sent.append("live again")
    page.wait_for_function("() => window.received.length >= 7")

    received = page.evaluate("window.received")
    assert [text for _, text in received] == sent
    offsets = [int(last_id.rsplit(":", 1)[1]) for last_id, _ in received]
    assert offsets == list(range(1, 8))
