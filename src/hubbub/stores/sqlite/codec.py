"""The `data` column's codec: message data as JSON text, integers beyond 64 bits kept exactly."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from hubbub.core.store import StoreError

_LONG_NUMBER = re.compile(r"\d{19}")


def encode_data(data: Any) -> str:
    """`data` as compact JSON text; integers beyond 64 bits are kept exactly."""
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        pass
    try:
        # orjson refuses integers beyond 64 bits; the standard library keeps them exactly.
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"message data cannot be stored as JSON: {exc}") from exc


def decode_data(text: str) -> Any:
    # orjson would turn integers beyond 64 bits into floats; such text has 19+ digit runs.
    if _LONG_NUMBER.search(text):
        return json.loads(text)
    return orjson.loads(text)
