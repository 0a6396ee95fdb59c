"""The page's pure modules, run in Chromium and checked against the server's own rules."""

from __future__ import annotations

import pytest

from hubbub.core.names import is_valid_nick, is_valid_room
from support.server import ServerProcess

from .conftest import PageFactory

pytestmark = pytest.mark.browser

NAMES = [
    "lobby", "dev.ops", "a:b@c-d_e", "café", "日本語", "١٢٣", "x" * 64, "x" * 65, "", " ",
    "has space", "tab\there", "new\nline", "emoji😀", "slash/", "dollar$", "e\u0301",
    "Robert B.", "O'Neil", "two  spaces", " lead", "trail ", "x" * 32, "x" * 33,
    "\u00bd", "\u2167", "a_b-c.d'e", "zero\u200bwidth", "<b>", "null\x00",
    "\u0430dmin", "\u3164", "a\uffa0", "server", "SERVER", "\uff4c\uff4f\uff42\uff42\uff59",
    "\u0418\u0432\u0430\u043d Smith", "\u03bfk", "soft\u00adhyphen",
]


def test_name_rules_match_the_server_exactly(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    result = chat.page.evaluate(
        """async (names) => {
            const m = await import("/static/js/names.js");
            return names.map((n) => [m.isValidRoom(n), m.isValidNick(n)]);
        }""",
        NAMES,
    )
    expected = [[is_valid_room(n), is_valid_nick(n)] for n in NAMES]
    mismatches = [(n, got, want) for n, got, want in zip(NAMES, result, expected, strict=True)
                  if got != want]
    assert mismatches == []


def test_backoff_grows_exponentially_with_jitter_and_a_cap(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    delays = chat.page.evaluate(
        """async () => {
            const { backoffDelay } = await import("/static/js/connection.js");
            return [0, 1, 2, 3, 10, 50].map((a) => [backoffDelay(a, () => 0),
                                                    backoffDelay(a, () => 0.999999)]);
        }"""
    )
    assert delays == [[250, 500], [500, 1000], [1000, 2000], [2000, 4000],
                      [15000, 30000], [15000, 30000]]


def test_linkify_keeps_everything_else_as_text(
    server: ServerProcess, open_page: PageFactory
) -> None:
    chat = open_page(server, nick="alice")
    cases = {
        "see https://a.example/x.": [("text", "see "), ("a", "https://a.example/x"),
                                     ("text", ".")],
        "(https://a.example/wiki/A_(b))": [("text", "("),
                                           ("a", "https://a.example/wiki/A_(b)"),
                                           ("text", ")")],
        "javascript:alert(1) data:text/html,x": [("text", "javascript:alert(1) data:text/html,x")],
        "HTTP://A.EXAMPLE": [("a", "HTTP://A.EXAMPLE")],
        "http://": [("text", "http://")],
        "<a href=https://a.example>": [("text", "<a href="), ("a", "https://a.example"),
                                       ("text", ">")],
    }
    for text, expected in cases.items():
        nodes = chat.page.evaluate(
            """async (text) => {
                const { appendLinkified } = await import("/static/js/format.js");
                const div = document.createElement("div");
                appendLinkified(div, text);
                div.normalize();
                return [...div.childNodes].map((n) => [n.nodeName === "A" ? "a" : "text",
                                                       n.textContent]);
            }""",
            text,
        )
        assert [tuple(n) for n in nodes] == expected, text
