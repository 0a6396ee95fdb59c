"""Render the README screenshot: a real server, three browser sessions, a short conversation.

    .venv/bin/python scripts/screenshot.py [--output docs/img/screenshot.png] [--dark]

Starts `python -m hubbub serve` on a free port with a throwaway data directory, drives
Debian's Chromium (/usr/bin/chromium) through Playwright, and writes a 1280x800 PNG of
alice's view. Everything runs on 127.0.0.1 and is stopped before the script exits.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
WIDTH, HEIGHT = 1280, 800


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"hubbub exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("hubbub did not become healthy in 20 s")


def post(base: str, room: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{base}/api/rooms/{room}/messages", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def open_session(browser: Browser, base: str, nick: str, scheme: str, rooms: list[str]) -> Page:
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT},
                                  color_scheme=scheme)  # type: ignore[arg-type]
    context.add_init_script(
        f"localStorage.setItem('hubbub.nick', {json.dumps(json.dumps(nick))});"
        f"localStorage.setItem('hubbub.rooms', {json.dumps(json.dumps(rooms))});"
    )
    page = context.new_page()
    page.goto(f"{base}/#/room/lobby")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page


def say(page: Page, text: str) -> None:
    page.locator("#composer-input").fill(text)
    page.locator("#composer-input").press("Enter")
    expect(page.locator("#messages .msg-body").last).to_have_text(text)


def open_room(page: Page, room: str) -> None:
    page.locator(f'#room-list a[data-room="{room}"]').click()
    expect(page.locator("#room-name")).to_have_text(room)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "img" / "screenshot.png")
    parser.add_argument("--dark", action="store_true", help="emulate a dark colour scheme")
    args = parser.parse_args()
    scheme = "dark" if args.dark else "light"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="hubbub-shot-") as tmp:
        server = start_server(Path(tmp) / "data", port)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                rooms = ["lobby", "design", "releases"]
                alice = open_session(browser, base, "Alice Martin", scheme, rooms)
                bob = open_session(browser, base, "bob", scheme, rooms)
                carol = open_session(browser, base, "Carol Ng", scheme, ["lobby", "design"])

                say(alice, "Morning all! 0.4 goes out this afternoon.")
                say(alice, "Draft release notes: https://example.com/hubbub/releases/0.4")
                say(bob, "Nice. Did the reconnect fix make it in?")
                say(carol, "It did. I killed the server twice mid-conversation yesterday:\n"
                           "every message came back after the reconnect, none doubled.")
                post(base, "lobby", {"from": "ci", "text": "main passed",
                                     "data": {"build": 812, "tests": 1432, "status": "passed"}})
                say(bob, "Ship it then")
                say(alice, "Tagging at 15:00, shout if anything blocks it.")

                open_room(carol, "design")
                say(carol, "Room list mock-ups are up, unread badges included")
                say(carol, "Feedback welcome before Friday")
                open_room(bob, "releases")
                say(bob, "0.4 checklist: notes, tag, announce")

                alice.locator("#composer-input").fill("Sounds good, I'll write the announcement")
                expect(alice.locator("#room-list .badge")).to_have_count(2)
                alice.locator("#log").evaluate("el => { el.scrollTop = el.scrollHeight; }")
                args.output.parent.mkdir(parents=True, exist_ok=True)
                alice.screenshot(path=str(args.output))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
