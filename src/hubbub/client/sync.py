"""Blocking helpers for scripts that do not use asyncio.

Only publishing: a script that wants to *receive* messages needs an event loop anyway, and
`asyncio.run` around `hubbub.client.connect` is the honest way to write it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.client import http
from hubbub.client.events import Ack


def publish(
    url: str,
    room: str,
    text: str | None = None,
    data: Any = None,
    *,
    sender_name: str | None = None,
    api_key: str | None = None,
    id: str | None = None,
    timeout: float = 10.0,
) -> Ack:
    """Publish one message over the HTTP API and wait for the ack (`http.publish`).

    Must not be called from inside a running event loop (use `http.publish` there).
    """
    return asyncio.run(
        http.publish(
            url, room, text, data, sender_name=sender_name, api_key=api_key, id=id,
            request_timeout=timeout,
        )
    )
