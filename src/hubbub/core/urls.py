"""Redis URLs as they may be shown: in errors, logs and `describe()`."""

from __future__ import annotations

import re
from typing import Any

_PASSWORD_PARAMETER = re.compile(r"(?i)(password=)[^&#]*")


def masked_url(value: Any) -> Any:
    """A Redis URL with its password (anything before the `@` of its authority, but a user
    name) and any `password=` parameter replaced by `***`, for errors and logs. Works on
    text that is no valid URL too, since errors show exactly that."""
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    if "@" in rest and not rest.startswith("/"):
        # The last `@`: a password may hold an unescaped one; showing too little is safe.
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = (f"{user}:***@" if colon else "***@") + rest
    return _PASSWORD_PARAMETER.sub(r"\1***", f"{scheme}://{rest}")
