"""The HTTP API's JSON error body, shared by the API and the request guard in front of it."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def error_response(status: int, code: str, reason: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "reason": reason}, status=status,
                             headers=headers or None, dumps=dumps)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
