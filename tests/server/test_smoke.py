from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from hubbub.server.run import LISTEN_BACKLOG
from support.server import ServerProcess


async def test_plain_client_sees_its_own_line(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url + "?nick=ann") as ws:
        await ws.send_str("hello?")
        msg = await ws.receive(timeout=5)
        assert msg.data == "ann: hello?"


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_listen_queue_holds_a_reconnect_storm(server: ServerProcess) -> None:
    # For a listening socket, ss shows the accept backlog as Send-Q.
    out = subprocess.run(["ss", "-tlnH", f"sport = :{server.port}"], capture_output=True,
                         text=True, check=True).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(out[2]) == min(LISTEN_BACKLOG, somaxconn) > 128
