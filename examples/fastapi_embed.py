"""hubbub mounted in a FastAPI app, served by uvicorn (`pip install hubbub[asgi] fastapi`).

    python examples/fastapi_embed.py        # then open http://127.0.0.1:8000/chat/

`/chat` is hubbub (its page, `/chat/ws`, the HTTP API and SSE under `/chat/api`), and the
app's own `POST /notify?text=...` publishes to the lobby through the hub. Starlette does not
run a mounted application's lifespan, so the app's lifespan enters hubbub's. Set PORT to
choose the port.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import hubbub
import hubbub.asgi

chat = hubbub.asgi.create_app(hubbub.settings(store="memory"))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with chat.lifespan():  # opens the store; on exit closes sockets and the store
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/chat", chat)


@app.post("/notify")
async def notify(text: str) -> dict[str, int]:
    message = await chat.hub.publish("lobby", text=text)
    return {"offset": message.offset}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
