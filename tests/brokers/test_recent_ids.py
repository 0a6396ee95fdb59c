"""`RecentIds` (`hubbub.brokers.local`), sans I/O: plain calls, outcomes recorded."""

from __future__ import annotations

import time

from hubbub.brokers.local import RecentIds
from hubbub.core.message import Draft, Message
from hubbub.core.store import Outcome, StoreError


def draft(message_id: str, room: str = "r") -> Draft:
    return Draft(room=room, nick="n", sender=None, text="t", id=message_id, dedupe=True)


def stored(d: Draft, offset: int = 1) -> Message:
    return Message.from_draft(d, offset=offset, epoch="e1")


class Told:
    """An `Outcome` that records what it was told."""

    def __init__(self) -> None:
        self.outcomes: list[Message | StoreError] = []

    def __call__(self, outcome: Message | StoreError) -> None:
        self.outcomes.append(outcome)


def claim_and_store(recent: RecentIds, d: Draft, offset: int = 1) -> Told:
    told = Told()
    submit = recent.claim(d, told)
    assert submit is not None
    submit(stored(d, offset))
    return told


def test_a_repeat_is_answered_with_the_original_now_or_once_it_is_known() -> None:
    recent = RecentIds()
    first, waiting, later = Told(), Told(), Told()
    submit: Outcome | None = recent.claim(draft("a"), first)
    assert submit is not None
    assert recent.claim(draft("a"), waiting) is None  # pending: it waits
    assert waiting.outcomes == []
    original = stored(draft("a"), 4)
    submit(original)
    assert first.outcomes == [original]
    [repeat] = waiting.outcomes
    assert isinstance(repeat, Message) and repeat.duplicate and repeat.offset == 4
    assert recent.claim(draft("a"), later) is None  # settled: answered at once
    assert later.outcomes == [repeat]
    # Another room's id of the same name is not a repeat.
    assert recent.claim(draft("a", room="other"), Told()) is not None


def test_a_refused_publish_can_be_retried_and_its_waiters_are_refused_too() -> None:
    recent = RecentIds()
    first, waiting = Told(), Told()
    submit = recent.claim(draft("a"), first)
    assert submit is not None
    assert recent.claim(draft("a"), waiting) is None
    refusal = StoreError("disk full")
    submit(refusal)
    assert first.outcomes == [refusal] and waiting.outcomes == [refusal]
    assert len(recent) == 0
    retry = claim_and_store(recent, draft("a"))
    assert isinstance(retry.outcomes[0], Message) and not retry.outcomes[0].duplicate


def test_ids_are_forgotten_after_the_window() -> None:
    recent = RecentIds(window=0.01)
    claim_and_store(recent, draft("a"))
    time.sleep(0.02)  # past the window, whatever the machine's load
    assert recent.claim(draft("b"), Told()) is not None  # claiming forgets expired ids
    assert len(recent) == 1
    assert recent.claim(draft("a"), Told()) is not None  # new again


def test_the_cap_forgets_the_oldest_ids_first() -> None:
    recent = RecentIds(cap=3)
    for name in ("a", "b", "c", "d"):
        claim_and_store(recent, draft(name))
    assert len(recent) == 3
    assert recent.claim(draft("d"), Told()) is None  # the newest are kept
    assert recent.claim(draft("a"), Told()) is not None  # the oldest was forgotten


def test_a_pending_id_is_never_forgotten_while_its_waiters_wait() -> None:
    recent = RecentIds(cap=1)
    first, waiting = Told(), Told()
    submit = recent.claim(draft("a"), first)
    assert submit is not None
    claim_and_store(recent, draft("b"))  # over the cap, but "a" is pending
    assert recent.claim(draft("a"), waiting) is None
    submit(stored(draft("a")))
    assert [m.duplicate for m in waiting.outcomes if isinstance(m, Message)] == [True]


def test_an_id_pending_when_its_record_was_reached_is_still_forgotten_later() -> None:
    recent = RecentIds(window=0.01, cap=2)
    submit = recent.claim(draft("a"), Told())
    assert submit is not None
    claim_and_store(recent, draft("b"))
    claim_and_store(recent, draft("c"))  # reaches "a"'s record while "a" is pending
    submit(stored(draft("a")))
    time.sleep(0.02)
    claim_and_store(recent, draft("d"))  # forgets everything expired
    assert recent.claim(draft("a"), Told()) is not None, "a is remembered past its window"
