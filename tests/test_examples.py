"""The embedding examples start as they are run by hand and work, on real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from support.server import free_port
from support.sseclient import sse_stream
from support.wsclient import handshake_refusal, join, json_client

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).parent.parent / "examples"


@contextmanager
def example(name: str, tmp_path: Path, ready: str) -> Iterator[str]:
    """`python examples/<name>` on a free port until `ready` answers; stopped with SIGINT
    (Ctrl-C), which must end it cleanly."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / name)], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(url + ready, timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield url
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_aiohttp_example_team_rooms_behind_its_own_login(tmp_path: Path) -> None:
    with example("aiohttp_embed.py", tmp_path, "/") as url:
        ws_url = url.replace("http", "ws") + "/chat/ws"
        assert await handshake_refusal(ws_url) == 403  # no login
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/login", data={"user": "ann", "team": "red"},
                                    allow_redirects=False) as response:
                assert response.status == 303
                cookie = {"Cookie": f"session={response.cookies['session'].value}"}
            async with session.get(url + "/chat/") as page:
                assert page.status == 200 and "static/js/main.js" in await page.text()
        async with json_client(ws_url, headers=cookie) as ws:
            assert ws.welcome["nick"] == "ann"
            await join(ws, "team-red")
            other = await ws.request("join", rooms=["team-blue"])
            assert other["type"] == "error" and other["code"] == "forbidden"
            async with sse_stream(url + "/chat/api/rooms/team-red/events", cookie) as sse:
                await sse.started()
                ack = await ws.request("publish", room="team-red", text="hi team")
                assert ack["type"] == "ack"
                event = (await sse.next_of("message")).json()
            assert event["text"] == "hi team" and event["from"] == "ann"


async def test_fastapi_example_mounts_hubbub_and_runs_its_lifespan(tmp_path: Path) -> None:
    with example("fastapi_embed.py", tmp_path, "/chat/healthz") as url:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/chat/readyz") as response:
                assert (await response.json()) == {"status": "ready"}
            async with session.get(url + "/chat", allow_redirects=False) as response:
                # Starlette's own redirect, before hubbub is asked
                assert response.status in (307, 308)
                assert response.headers["Location"].endswith("/chat/")
            async with session.get(url + "/chat/static/style.css") as response:
                assert response.status == 200
        async with json_client(url.replace("http", "ws") + "/chat/ws") as ws, \
                sse_stream(url + "/chat/api/rooms/lobby/events") as sse:
            await join(ws, "lobby")
            await sse.started()
            async with aiohttp.ClientSession() as session, session.post(
                    url + "/notify", params={"text": "from fastapi"}) as response:
                assert response.status == 200
            over_ws = await ws.wait_for(lambda e: e["type"] == "message")
            assert over_ws["text"] == "from fastapi"
            assert (await sse.next_of("message")).json() == over_ws
