"""Encode a server-to-client WebSocket text frame (RFC 6455 §5.2) once for many sockets.

Server frames are unmasked, so the same bytes are valid on every connection that did not
negotiate an extension (permessage-deflate makes each connection's bytes its own).
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying `payload` (which must be UTF-8)."""
    size = len(payload)
    if size < 126:
        header = bytes((_FIN_TEXT, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload
