"""What one worker process counts for the current measurement point.

A point starts at a sequence number (`begin`); a bench message with a smaller number was
published for an earlier point (or the warm-up) and arrived late, so it is counted as
`stale` and kept out of this point's deliveries and latencies.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_SAMPLES = 5
"""Unexpected frames kept verbatim for the report: enough to diagnose, never a flood."""


@dataclass
class Tally:
    first_seq: int = 0
    received: int = 0
    stale: int = 0
    out_of_order: int = 0
    other: int = 0
    other_samples: list[str] = field(default_factory=list)
    _small: array[int] = field(default_factory=lambda: array("q"))
    _chunks: list[npt.NDArray[np.int64]] = field(default_factory=list)

    def begin(self, first_seq: int) -> None:
        self.first_seq = first_seq
        self.received = self.stale = self.out_of_order = self.other = 0
        self.other_samples = []
        self._small = array("q")
        self._chunks = []

    def one(self, seq: int, latency_ns: int) -> None:
        if seq < self.first_seq:
            self.stale += 1
            return
        self.received += 1
        self._small.append(latency_ns)

    def many(self, seqs: npt.NDArray[np.int64], latencies: npt.NDArray[np.int64]) -> None:
        fresh = seqs >= self.first_seq
        count = int(np.count_nonzero(fresh))
        self.stale += len(seqs) - count
        self.received += count
        self._chunks.append(latencies if count == len(seqs) else latencies[fresh])

    def unexpected(self, text: str) -> None:
        self.other += 1
        if len(self.other_samples) < MAX_SAMPLES:
            self.other_samples.append(text[:200])

    def latencies(self) -> npt.NDArray[np.int64]:
        parts = [np.frombuffer(self._small, dtype=np.int64), *self._chunks]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def report(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stale": self.stale,
            "out_of_order": self.out_of_order,
            "other": self.other,
            "other_samples": list(self.other_samples),
            "latencies_ns": self.latencies(),
        }
