"""The join boundary without sockets, against a store that behaves like SQLite's.

SQLite's readers see a commit as soon as the writer thread has made it, while the event
loop learns of it (its room state, its delivery, its appends' return) a little later: the
window in which a join used to replay messages that then also came live, or skip some.
`LaggyStore` reproduces that window with in-memory messages, its length drawn by
hypothesis per commit, and joins of every form start at drawn moments while a publisher
keeps publishing. Every joiner's sequence is then checked exactly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.core.message import Draft, Message
from hubbub.core.store import HistoryPage, Outcome, RoomState
from hubbub.stores.memory import MemoryStore
from test_hub import connect, make_hub, of_type, request, settle

PUBLISHED = 60
HISTORY_MAX = 7  # `make_hub`'s history_page_max: replays span several pages


class LaggyStore(MemoryStore):
    """Readable once committed; counted in `room_state`, delivered and returned only some
    loop passes later, in commit order, the way `SQLiteStore` hands commits to the loop."""

    def __init__(self, lags: Iterator[int], read_lags: Iterator[int]) -> None:
        super().__init__()
        self._lags = lags
        self._read_lags = read_lags
        self._known: dict[str, int] = {}
        self._pending: list[tuple[Message, Outcome]] = []

    def submit(self, draft: Draft, then: Outcome) -> None:
        room = self._room(draft.room)
        room.offset += 1
        message = Message.from_draft(draft, offset=room.offset, epoch=room.epoch)
        room.messages.append(message)  # committed: readers see it from now on
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._hand_over, next(self._lags))
        self._pending.append((message, then))

    def _hand_over(self, passes: int) -> None:
        if passes:
            asyncio.get_running_loop().call_soon(self._hand_over, passes - 1)
            return
        batch, self._pending = self._pending, []
        for message, _ in batch:
            self._known[message.room] = message.offset
        self._stored([message for message, _ in batch])
        for message, then in batch:
            then(message)

    async def room_state(self, room: str, *, create: bool = False) -> RoomState | None:
        state = await super().room_state(room, create=create)
        if state is None:
            return None
        return RoomState(state.epoch, self._known.get(room, 0), state.first_offset)

    async def read(self, room: str, *, after: int | None = None, before: int | None = None,
                   limit: int) -> HistoryPage | None:
        for _ in range(next(self._read_lags)):
            await asyncio.sleep(0)
        return await super().read(room, after=after, before=before, limit=limit)


Join = tuple[str, int, int]  # form, loop passes before joining, since-distance or history


async def _scenario(lags: list[int], read_lags: list[int], joins: list[Join]) -> None:
    store = LaggyStore(itertools.cycle(lags), itertools.cycle(read_lags))
    hub = make_hub("auto", store)
    publisher, _ = connect(hub, "pub")
    await request(publisher, type="join", rooms=["r"])
    for n in range(20):
        await request(publisher, type="publish", room="r", text=str(n))
    await settle()
    state = await store.room_state("r")
    assert state is not None

    async def publish_more() -> None:
        for n in range(20, PUBLISHED):
            await request(publisher, type="publish", room="r", text=str(n))
            await asyncio.sleep(0)

    async def join(form: str, delay: int, amount: int) -> tuple[Any, ...]:
        conn, sock = connect(hub)
        for _ in range(delay):
            await asyncio.sleep(0)
        known = (await store.room_state("r")).offset  # type: ignore[union-attr]
        since = max(known - amount, 0)
        spec: Any = {"plain": "r", "history": {"room": "r", "history": amount},
                     "since": {"room": "r", "since": {"epoch": state.epoch, "offset": since}},
                     }[form]
        await request(conn, type="join", rooms=[spec])
        return form, amount, since, sock

    publishing = asyncio.create_task(publish_more())
    joined = await asyncio.gather(*(join(*spec) for spec in joins))
    await publishing
    await settle()
    for form, amount, since, sock in joined:
        boundary = of_type(sock, "joined")[0]["rooms"][0]["offset"]
        first = {"plain": boundary + 1, "since": since + 1,
                 "history": max(boundary - amount + 1, 1)}[form]
        offsets = [e["offset"] for e in of_type(sock, "message")]
        assert offsets == list(range(first, PUBLISHED + 1)), (form, amount, boundary)


@settings(max_examples=80, deadline=None)
@given(
    lags=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    read_lags=st.lists(st.integers(0, 4), min_size=1, max_size=8),
    joins=st.lists(st.tuples(st.sampled_from(["plain", "history", "since"]),
                             st.integers(0, 40), st.integers(1, HISTORY_MAX)),
                   min_size=1, max_size=6),
)
def test_every_join_form_is_exact_while_commits_reach_the_loop_late(
        lags: list[int], read_lags: list[int], joins: list[Join]) -> None:
    asyncio.run(_scenario(lags, read_lags, joins))
