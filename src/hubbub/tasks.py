"""Background tasks that are never lost: referenced until done, failures logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Generator
from contextvars import copy_context
from typing import Any

log = logging.getLogger("hubbub.tasks")

_running: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
    """Start `coro` in the background; its exception, if any, is logged with a traceback."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task %s failed", task.get_name(), exc_info=exc)


def start_eagerly(coro: Coroutine[Any, None, None], name: str) -> asyncio.Task[None] | None:
    """Run `coro` now, up to its first suspension, in a context of its own; if it did
    suspend, return the task that finishes it, else None (what Python 3.12's eager tasks do).

    The part before the first suspension runs before the caller continues, in call order,
    and a coroutine that never suspends (a publish to the memory store) costs no task.
    Unlike 3.12's, `asyncio.current_task()` is still the caller's task during that part,
    so it must not enter `asyncio.timeout()` (nothing on the publish path does).
    """
    context = copy_context()
    try:
        pending = context.run(coro.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_Resumed(coro, pending).wait(), name=name,
                                                  context=context)


class _Resumed:
    """Drives a coroutine already started by hand from inside a task: the future it last
    yielded goes to the task, and what the task sends or throws back goes to the coroutine."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, None, None], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    async def wait(self) -> None:
        await self

    def __await__(self) -> Generator[Any, None, None]:
        coro, pending = self.coro, self.pending
        self.pending = None
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # cancellation included: the coroutine decides
                try:
                    pending = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = coro.send(value)
                except StopIteration:
                    return
