"""`/metrics`, `/readyz`, JSON logs: what an operator alerts on, checked on real servers."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from collections.abc import Iterator

import aiohttp
import pytest

from hubbub.server.run import JsonFormatter
from support.rawws import RawWebSocket
from support.server import Samples, ServerFactory, ServerProcess, running, scrape, wait_until
from support.wsclient import TIMEOUT, http_get_json, unique

pytestmark = pytest.mark.timeout(90)

BURST = 50
"""Requests one connection may make on `metered` before the rate limit refuses them (it
refills one per 100 s, so never during a test)."""


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0.01",
                 "--rate-burst", str(BURST)) as server:
        yield server


def changes(before: Samples, after: Samples) -> Samples:
    return {key: after[key] - before.get(key, 0.0) for key in after
            if after[key] != before.get(key, 0.0)}


async def test_traffic_refusals_and_closes_are_counted(metered: ServerProcess) -> None:
    room, elsewhere = unique("obs"), unique("obs-other")
    before = await scrape(metered)
    frames = [
        json.dumps({"type": "join", "ref": "j", "rooms": [room]}),
        # Non-ASCII: the byte count is of UTF-8, not of characters.
        json.dumps({"type": "publish", "ref": "p", "room": room, "text": "héllo ☃"},
                   ensure_ascii=False),
        "{not json",
        json.dumps({"type": "publish", "ref": "n", "room": elsewhere, "text": "x"}),
    ]
    received: list[str] = []
    http_body = json.dumps({"text": "from http"}).encode()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(metered.ws_url, protocols=("hubbub.v1",)) as ws:

            async def read() -> dict[str, object]:
                msg = await ws.receive(timeout=TIMEOUT)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                received.append(msg.data)
                event = json.loads(msg.data)
                assert isinstance(event, dict)
                return event

            assert (await read())["type"] == "welcome"
            await ws.send_str(frames[0])
            assert (await read())["type"] == "joined"
            await ws.send_str(frames[1])
            assert {(await read())["type"] for _ in range(2)} == {"ack", "message"}
            await ws.send_str(frames[2])
            assert (await read())["code"] == "bad_json"
            await ws.send_str(frames[3])
            assert (await read())["code"] == "not_joined"
            async with session.post(f"{metered.url}/api/rooms/{room}/messages",
                                    data=http_body) as response:
                assert response.status == 201
            assert (await read())["type"] == "message"
            async with session.post(f"{metered.url}/api/rooms/{room}/messages",
                                    data=b"{oops") as response:
                assert response.status == 400
            during = await scrape(metered)
        # The client closed with 1000; the server counts the close once it has seen it.

        async def closed() -> bool:
            return changes(before, await scrape(metered)).get(
                'hubbub_connections_closed_total{code="1000"}') == 1

        assert await wait_until(closed)
    after = await scrape(metered)
    delta = changes(before, after)

    assert during["hubbub_connections"] == before["hubbub_connections"] + 1
    assert after["hubbub_connections"] == before["hubbub_connections"]
    assert delta["hubbub_connections_opened_total"] == 1
    assert not [key for key in delta if key.startswith("hubbub_connections_closed_total")
                and key != 'hubbub_connections_closed_total{code="1000"}']
    assert delta['hubbub_refusals_total{code="bad_json"}'] == 2  # one WebSocket, one HTTP
    assert delta['hubbub_refusals_total{code="not_joined"}'] == 1
    assert not [key for key in delta if key.startswith("hubbub_refusals_total")
                and "bad_json" not in key and "not_joined" not in key]
    assert delta['hubbub_received_messages_total{transport="websocket"}'] == len(frames)
    assert delta['hubbub_received_bytes_total{transport="websocket"}'] == sum(
        len(frame.encode()) for frame in frames)
    assert delta['hubbub_received_messages_total{transport="http"}'] == 2
    assert delta['hubbub_received_bytes_total{transport="http"}'] == len(http_body) + 5
    assert delta["hubbub_messages_published_total"] == 2
    assert delta["hubbub_deliveries_total"] == 2
    # Everything the client read, and nothing else, was sent (payload bytes, no framing).
    assert delta["hubbub_sent_messages_total"] == len(received)
    assert delta["hubbub_sent_bytes_total"] == sum(len(text.encode()) for text in received)
    # One observation per written batch: each publish here was written in a pass of its own.
    assert delta["hubbub_publish_to_write_seconds_count"] == 2
    assert 'hubbub_rate_limit_hits_total{limit="requests"}' not in delta


async def test_rate_limit_hits_are_counted(metered: ServerProcess) -> None:
    before = await scrape(metered)
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(metered.ws_url, protocols=("hubbub.v1",)) as ws:
        await ws.receive(timeout=TIMEOUT)  # welcome
        for number in range(BURST + 3):
            await ws.send_str(json.dumps({"type": "ping", "ref": number}))
        replies = [json.loads((await ws.receive(timeout=TIMEOUT)).data)
                   for _ in range(BURST + 3)]
    assert [reply["type"] for reply in replies] == ["pong"] * BURST + ["error"] * 3
    delta = changes(before, await scrape(metered))
    assert delta['hubbub_rate_limit_hits_total{limit="requests"}'] == 3
    assert delta['hubbub_refusals_total{code="rate_limited"}'] == 3


async def test_process_collectors_loop_lag_and_connection_limit_counter_are_exposed(
        metered: ServerProcess) -> None:
    async def lag_measured() -> bool:
        return (await scrape(metered))["hubbub_loop_lag_seconds_count"] > 0

    assert await wait_until(lag_measured)
    samples = await scrape(metered)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", 'python_gc_collections_total{generation="2"}',
                 'hubbub_loop_lag_seconds_bucket{le="+Inf"}', "hubbub_outbox_bytes",
                 "hubbub_slow_closes_total"):
        assert name in samples, name
    assert samples["process_open_fds"] > 0
    async with aiohttp.ClientSession() as session, \
            session.get(metered.url + "/metrics") as response:
        text = await response.text()
    # The connection limits (counted in tests/server/test_hostile.py), from zero.
    assert 'hubbub_connection_limit_hits_total{reason="max_connections"} 0.0' in text


async def test_outbox_bytes_show_what_a_slow_client_is_holding(
        start_server: ServerFactory) -> None:
    server = start_server("--store", "memory", "--rate-per-second", "0",
                          "--outbox-max-bytes", str(64 * 1024 * 1024))
    room = unique("backlog")
    # A client that never reads, with a small receive buffer, so its backlog reaches the
    # outbox once the kernel's send buffer is full (up to ~4 MiB by default).
    slow = await RawWebSocket.connect(server.port, protocol="hubbub.v1", read_limit=4096,
                                      rcvbuf=4096)
    await slow.read_frame()
    await slow.send_text(json.dumps({"type": "join", "rooms": [room], "ref": 1}))
    assert b'"joined"' in (await slow.read_frame()).payload
    assert (await scrape(server))["hubbub_outbox_bytes"] == 0
    held = 0.0
    async with aiohttp.ClientSession() as session:
        for _ in range(40):  # at most 40 x 64 x 8 kB, about 20 MB
            for _ in range(64):
                async with session.post(f"{server.url}/api/rooms/{room}/messages",
                                        json={"text": "x" * 8000}) as response:
                    assert response.status == 201
            held = (await scrape(server))["hubbub_outbox_bytes"]
            if held:
                break
    assert held > 0
    slow.abort()

    async def released() -> bool:
        samples = await scrape(server)
        return samples["hubbub_outbox_bytes"] == 0 and samples["hubbub_connections"] == 0

    assert await wait_until(released)


async def test_readyz_is_ready_and_healthz_alive(metered: ServerProcess) -> None:
    assert await http_get_json(metered.url + "/readyz") == (200, {"status": "ready"})
    status, body = await http_get_json(metered.url + "/healthz")
    assert status == 200 and body["status"] == "ok"


async def test_readyz_reports_a_failing_store_until_it_commits_again(
        start_server: ServerFactory) -> None:
    server = start_server()  # SQLite
    url = f"{server.url}/api/rooms/{unique('ready')}/messages"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"text": "one"}) as response:
            assert response.status == 201
        samples = await scrape(server)
        assert samples["hubbub_store_commit_seconds_count"] >= 1
        commits = samples["hubbub_store_commit_seconds_count"]
        assert commits >= 1 and samples["hubbub_store_batch_size_sum"] >= commits
        # Another process holds SQLite's write lock, so the next commit fails once the
        # store's busy timeout runs out.
        blocker = sqlite3.connect(server.data_dir / "hubbub.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            async with session.post(url, json={"text": "lost"}) as response:
                assert response.status == 503
            assert await http_get_json(server.url + "/readyz") == (
                503, {"status": "store_unavailable"})
            status, _ = await http_get_json(server.url + "/healthz")
            assert status == 200  # alive all the same
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        async with session.post(url, json={"text": "two"}) as response:
            assert response.status == 201
    assert await http_get_json(server.url + "/readyz") == (200, {"status": "ready"})
    delta = (await scrape(server))['hubbub_refusals_total{code="unavailable"}']
    assert delta == 1


async def test_json_log_format_writes_one_object_per_line(start_server: ServerFactory) -> None:
    server = start_server("--store", "memory", "--log-format", "json")
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url, protocols=("hubbub.v1",)) as ws:
        await ws.receive(timeout=TIMEOUT)
        await ws.send_str("{not json")  # logged as a refusal
        await ws.receive(timeout=TIMEOUT)
    assert server.stop() == 0
    lines = [line for line in server.log_text().splitlines()
             if not line.startswith(("hubbub serving on ", "hubbub data: "))]  # stdout
    records = [json.loads(line) for line in lines]
    assert records
    for record in records:
        assert set(record) >= {"ts", "level", "logger", "message"}, record
        assert record["ts"].endswith("Z")
    assert any("refused" in record["message"] and record["level"] == "INFO"
               for record in records)
    assert records[-1]["message"] == "stopped"


def test_a_json_log_line_carries_its_traceback_as_one_string() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("hubbub.test", logging.ERROR, __file__, 1, "failed %s",
                                   ("here",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["level"], parsed["logger"], parsed["message"]) == (
        "ERROR", "hubbub.test", "failed here")
    assert parsed["exc_info"].startswith("Traceback")
    assert parsed["exc_info"].endswith("ValueError: boom")
