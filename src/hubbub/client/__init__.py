"""Python client for hubbub's `hubbub.v1` protocol, on aiohttp.

```python
async with hubbub.client.connect("ws://127.0.0.1:8080/ws", nick="ada") as chat:
    await chat.join("lobby")
    await chat.send("lobby", "hello")
    async for event in chat:
        ...
```

See `docs/python-client.md`.
"""

from hubbub.client.connection import Client, connect
from hubbub.client.errors import (
    ClientError,
    ConnectionFailed,
    ConnectionLost,
    HubbubError,
    ProtocolViolation,
    RequestTimeout,
)
from hubbub.client.events import (
    Ack,
    Disconnected,
    Event,
    HistoryPage,
    Member,
    Message,
    PresenceEvent,
    Reconnected,
    Reconnecting,
    RecoveryFailed,
    Reset,
    RoomInfo,
)
from hubbub.client.policy import ReconnectPolicy

__all__ = [
    "Ack",
    "Client",
    "ClientError",
    "ConnectionFailed",
    "ConnectionLost",
    "Disconnected",
    "Event",
    "HistoryPage",
    "HubbubError",
    "Member",
    "Message",
    "PresenceEvent",
    "ProtocolViolation",
    "ReconnectPolicy",
    "Reconnected",
    "Reconnecting",
    "RecoveryFailed",
    "RequestTimeout",
    "Reset",
    "RoomInfo",
    "connect",
]
