"""The bench's message format: fixed-size text that carries a sequence number and a clock.

A message is `bench <seq:10 digits> <send time:19 digits> ` followed by `x` padding up to
the requested size. Fixed widths make every relayed frame on a connection the same length
(a relay adds the same `name: ` prefix to every message of one publisher), which is what
lets `client.py` parse thousands of frames at once with numpy instead of one by one.

The send time is the *scheduled* send time on `time.monotonic_ns()` (CLOCK_MONOTONIC is
shared by all processes on a Linux machine), so a publisher held back by a server that
stops reading shows up as latency instead of being hidden (coordinated omission).
"""

from __future__ import annotations

MAGIC = b"bench "
SEQ_DIGITS = 10
TIME_DIGITS = 19
SEQ_OFFSET = len(MAGIC)
TIME_OFFSET = SEQ_OFFSET + SEQ_DIGITS + 1
SEQ_END = SEQ_OFFSET + SEQ_DIGITS
TIME_END = TIME_OFFSET + TIME_DIGITS
HEADER_SIZE = TIME_END + 1
"""Smallest message: magic, sequence number and send time with their separators."""

MIN_SIZE = HEADER_SIZE
MAX_SIZE = 1024 * 1024
"""Largest message: far beyond any relay's useful frame size, small enough to stay sane."""


def make(seq: int, send_ns: int, size: int) -> str:
    """The text of message `seq` scheduled at `send_ns`, exactly `size` bytes long."""
    head = f"bench {seq:010d} {send_ns:019d} "
    return head + "x" * (size - len(head))


def parse(text: bytes) -> tuple[int, int] | None:
    """(seq, send_ns) of a relayed bench message, after any `name: ` prefix; else None."""
    at = text.find(MAGIC)
    if at < 0 or len(text) < at + HEADER_SIZE:
        return None
    seq_field = text[at + SEQ_OFFSET : at + SEQ_OFFSET + SEQ_DIGITS]
    time_field = text[at + TIME_OFFSET : at + TIME_OFFSET + TIME_DIGITS]
    if not (seq_field.isdigit() and time_field.isdigit()):
        return None
    return int(seq_field), int(time_field)
