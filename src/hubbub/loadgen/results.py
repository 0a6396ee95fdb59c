"""Measured results and the judgements made on them (sustainable or not)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

RATIO_TARGET = 0.999
"""A point is sustainable only if at least this share of deliveries arrived."""
GENERATOR_BUSY = 90.0
"""Generator CPU (% of the cores it may use) above which its numbers are suspect."""


@dataclass
class Latency:
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, latencies_ns: npt.NDArray[np.int64]) -> Latency:
        if latencies_ns.size == 0:
            return cls(None, None, None, None)
        p50, p90, p99 = np.percentile(latencies_ns, [50, 90, 99]) / 1e6
        return cls(round(float(p50), 3), round(float(p90), 3), round(float(p99), 3),
                   round(float(latencies_ns.max()) / 1e6, 3))


@dataclass
class Point:
    rate: float  # offered messages per second
    subscribers: int
    duration_s: float
    scheduled: int
    sent: int
    received: int
    delivery_ratio: float
    deliveries_per_s: float
    latency: Latency
    stale: int
    out_of_order: int
    unexpected: int
    unexpected_samples: list[str]
    subscribers_closed: int
    close_codes: dict[str, int]
    publisher_on_time: bool
    publisher_lag_p99_ms: float
    generator_cpu_pct: float
    generator_bound: bool
    other_cpu_pct: float  # everything else on the machine: noise when it is not near 0
    server_cpu_pct: float | None = None
    server_peak_rss_mib: float | None = None

    @property
    def offered_deliveries_per_s(self) -> float:
        return self.rate * self.subscribers

    def sustainable(self, p99_budget_ms: float) -> bool:
        p99 = self.latency.p99_ms
        return (self.delivery_ratio >= RATIO_TARGET and p99 is not None
                and p99 < p99_budget_ms and self.publisher_on_time)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["offered_deliveries_per_s"] = self.offered_deliveries_per_s
        return data


@dataclass
class Stalled:
    stalled: int
    closed: int
    close_codes: dict[str, int]


@dataclass
class Idle:
    connections: int
    rss_before_mib: float
    rss_after_mib: float
    kib_per_connection: float


@dataclass
class TargetResult:
    target: str
    url: str
    started_by_bench: bool
    points: list[Point] = field(default_factory=list)
    stalled: Stalled | None = None
    idle: Idle | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def max_sustainable_rate(self, p99_budget_ms: float) -> float | None:
        """Highest offered rate that was sustainable (only meaningful for a sweep)."""
        good = [p.rate for p in self.points if p.sustainable(p99_budget_ms)]
        return max(good) if good else None

    def as_dict(self, p99_budget_ms: float) -> dict[str, Any]:
        best = self.max_sustainable_rate(p99_budget_ms)
        subscribers = self.points[0].subscribers if self.points else 0
        return {
            "target": self.target,
            "url": self.url,
            "started_by_bench": self.started_by_bench,
            "points": [
                {**p.as_dict(), "sustainable": p.sustainable(p99_budget_ms)} for p in self.points
            ],
            "max_sustainable_rate": best,
            "max_sustainable_deliveries_per_s": best * subscribers if best else None,
            "stalled": asdict(self.stalled) if self.stalled else None,
            "idle": asdict(self.idle) if self.idle else None,
            "notes": self.notes,
            "error": self.error,
        }
