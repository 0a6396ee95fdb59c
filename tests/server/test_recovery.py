"""Recovery with `since`: exactly the missed messages, in order, then live; or a reason why not."""

from __future__ import annotations

import pytest

from support.server import ServerProcess, running
from support.wsclient import join, json_client, unique

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def module_server(adapter_server: ServerProcess) -> ServerProcess:
    """These protocol tests run over both adapters (conftest's `adapter_server`)."""
    return adapter_server



async def _away_and_back(server: ServerProcess, room: str) -> tuple[str, int]:
    """Join, see 3 messages, disconnect; returns the last (epoch, offset) seen."""
    async with json_client(server.ws_url) as client:
        reply = await join(client, room)
        for i in range(3):
            await client.expect("publish", room=room, text=f"seen {i}")
        seen = await client.messages(room, 3)
        assert reply["rooms"][0]["epoch"] == seen[-1]["epoch"]
        return seen[-1]["epoch"], seen[-1]["offset"]


async def test_since_replays_exactly_the_missed_messages_then_live(
        module_server: ServerProcess) -> None:
    room = unique("recover")
    epoch, last = await _away_and_back(module_server, room)
    async with json_client(module_server.ws_url) as other:
        await join(other, room)
        for i in range(4):
            await other.expect("publish", room=room, text=f"missed {i}")
        async with json_client(module_server.ws_url) as back:
            reply = await back.request("join", rooms=[
                {"room": room, "since": {"offset": last, "epoch": epoch}}])
            assert reply["type"] == "joined"
            entry = reply["rooms"][0]
            assert entry["recovered"] is True and "reason" not in entry
            assert entry["epoch"] == epoch and entry["offset"] == last + 4
            await other.expect("publish", room=room, text="live")
            got = await back.messages(room, 5)
            assert [m["text"] for m in got] == [f"missed {i}" for i in range(4)] + ["live"]
            assert [m["offset"] for m in got] == list(range(last + 1, last + 6))
            # No duplicates: nothing else for the room is pending after a round trip.
            await back.assert_alive()
            assert not [e for e in back.pending if e["type"] == "message"]


async def test_since_at_latest_replays_nothing(module_server: ServerProcess) -> None:
    room = unique("uptodate")
    epoch, last = await _away_and_back(module_server, room)
    async with json_client(module_server.ws_url) as back:
        reply = await join(back, {"room": room, "since": {"offset": last, "epoch": epoch}})
        assert reply["rooms"][0]["recovered"] is True
        await back.assert_alive()
        assert not [e for e in back.pending if e["type"] == "message"]


async def test_wrong_epoch_is_not_recovered(module_server: ServerProcess) -> None:
    room = unique("epoch")
    epoch, last = await _away_and_back(module_server, room)
    async with json_client(module_server.ws_url) as back:
        reply = await join(back, {"room": room, "since": {"offset": 1, "epoch": "deadbeef"}})
        entry = reply["rooms"][0]
        assert entry["recovered"] is False and entry["reason"] == "epoch_changed"
        assert entry["epoch"] == epoch and entry["offset"] == last
        await back.assert_alive()
        assert not [e for e in back.pending if e["type"] == "message"]


async def test_offset_ahead_is_not_recovered(module_server: ServerProcess) -> None:
    room = unique("ahead")
    epoch, last = await _away_and_back(module_server, room)
    async with json_client(module_server.ws_url) as back:
        reply = await join(back, {"room": room, "since": {"offset": last + 1, "epoch": epoch}})
        entry = reply["rooms"][0]
        assert entry["recovered"] is False and entry["reason"] == "offset_ahead"
        await back.assert_alive()
        assert not [e for e in back.pending if e["type"] == "message"]


async def test_recovery_after_restart_with_sqlite(server: ServerProcess) -> None:
    room = unique("durable")
    epoch, last = await _away_and_back(server, room)
    server.restart()
    async with json_client(server.ws_url) as back:
        reply = await join(back, {"room": room, "since": {"offset": 1, "epoch": epoch}})
        assert reply["rooms"][0]["recovered"] is True
        replayed = await back.messages(room, last - 1)
        assert [m["offset"] for m in replayed] == list(range(2, last + 1))


async def test_epoch_changes_when_memory_store_restarts(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    room = unique("volatile")
    with running(tmp_path_factory, "--store", "memory") as server:
        epoch, last = await _away_and_back(server, room)
        server.restart()
        async with json_client(server.ws_url) as back:
            reply = await join(back, {"room": room, "since": {"offset": last, "epoch": epoch}})
            entry = reply["rooms"][0]
            assert entry["recovered"] is False and entry["reason"] == "epoch_changed"
            assert entry["epoch"] != epoch
