"""Latency and throughput summaries, shared by the load generator and the report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Summary:
    """What one measured run did: `count` successful requests in `seconds`."""

    count: int
    errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def of(cls, latencies_ms: Sequence[float], errors: int, seconds: float) -> Summary:
        return cls(
            count=len(latencies_ms),
            errors=errors,
            seconds=seconds,
            p50_ms=percentile(latencies_ms, 50),
            p90_ms=percentile(latencies_ms, 90),
            p99_ms=percentile(latencies_ms, 99),
            max_ms=max(latencies_ms) if latencies_ms else math.nan,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        return cls(**{k: v for k, v in data.items() if k != "rate"})

    def describe(self) -> str:
        return (
            f"{self.rate:.0f}/s (n={self.count}, p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, errors {self.errors})"
        )
