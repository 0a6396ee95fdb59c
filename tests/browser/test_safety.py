"""Hostile message content stays text; links are only http(s); the CSP header holds."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from support.server import ServerProcess

from .conftest import PageFactory, post

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<img src=x onerror=window.__xss=1>",
    "<script>window.__xss=1</script>",
    '"><svg onload=window.__xss=1>',
    "javascript:window.__xss=1",
]


def test_html_in_messages_is_shown_as_literal_text(
    server: ServerProcess, open_page: PageFactory
) -> None:
    alice = open_page(server, nick="alice")
    bob = open_page(server, nick="bob")
    for payload in PAYLOADS:
        alice.send(payload)
    # Through the HTTP API too, as text and as data. (Names with markup are refused by the
    # server's nickname rule, so `from` cannot carry any.)
    post(server, "lobby", {"text": "<b>bold?</b>", "from": "bot"})
    post(server, "lobby", {"data": {"html": "<img src=x onerror=window.__xss=1>"}})

    for chat in (alice, bob):
        for payload in PAYLOADS:
            expect(chat.messages(payload)).to_have_count(1)
        expect(chat.messages("<b>bold?</b>")).to_have_count(1)
        expect(chat.page.locator("#messages .msg-data")).to_have_text(
            ['{"html":"<img src=x onerror=window.__xss=1>"}']
        )
        log = chat.page.locator("#messages")
        expect(log.locator("img, script, svg, b, i")).to_have_count(0)
        # `javascript:` is never turned into a link.
        expect(log.locator("a")).to_have_count(0)
        assert chat.page.evaluate("window.__xss") is None


def test_only_http_links_become_links_and_open_safely(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    chat.send("docs at https://example.com/a_(b)?q=1. and http://example.org, not ftp://x.y")
    links = chat.page.locator("#messages .msg-body a")
    expect(links).to_have_count(2)
    expect(links.nth(0)).to_have_attribute("href", "https://example.com/a_(b)?q=1")
    expect(links.nth(1)).to_have_attribute("href", "http://example.org/")
    for n in range(2):
        expect(links.nth(n)).to_have_attribute("rel", "noopener noreferrer")
        expect(links.nth(n)).to_have_attribute("target", "_blank")
    expect(chat.messages()).to_have_text(
        ["docs at https://example.com/a_(b)?q=1. and http://example.org, not ftp://x.y"]
    )


def test_page_is_served_under_the_content_security_policy(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice", wait=False)
    response = chat.page.goto(server.url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    chat.wait_connected()
    # Everything the page needs came from its own origin and was allowed (the fixture
    # also fails the test on any recorded violation).
    assert chat.page.evaluate("window.__cspViolations") == []
    styled = chat.page.evaluate(
        "getComputedStyle(document.querySelector('.brand-mark')).borderRadius"
    )
    assert styled == "8px", "the stylesheet did not load"


def test_data_messages_render_as_compact_json(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    post(server, "lobby", {"data": {"build": 812, "status": "green"}, "from": "ci"})
    post(server, "lobby", {"data": [1, "two", None], "text": "with text", "from": "ci"})
    data = chat.page.locator("#messages .msg-data")
    expect(data).to_have_text(['{"build":812,"status":"green"}', '[1,"two",null]'])
    expect(chat.messages("with text")).to_have_count(1)
    # Server-initiated messages carry an "app" tag instead of "you", and group together.
    expect(chat.page.locator("#messages .msg .tag-app")).to_have_count(2)
    expect(chat.page.locator("#messages .msg .tag-you")).to_have_count(0)
    expect(chat.page.locator("#messages .msg.continued")).to_have_count(1)
