"""Adding up the parts of the figures (app/reports/figures.py) over any run of days, into the
rows of the reports. Counts and sums add; the waits of the parts are merged, so that averages
are weighted by their counts and the 90th percentile is taken over every wait of the run, as
PostgreSQL's `percentile_disc(0.9)` would over all of them. The share within target uses each
business type's current target."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The parts of a row of a report (one scope and code) over the days read.


@dataclass
class Tally:
    issued: int = 0
    called: int = 0
    served: int = 0
    no_show: int = 0
    cancelled: int = 0
    transferred: int = 0
    expired: int = 0
    within_target: int = 0
    waits: list[float] = field(default_factory=list)
    service_sum: float = 0.0
    service_n: int = 0
    rating_sum: int = 0
    ratings: int = 0
    satisfied: int = 0
    open_s: float = 0.0
    serving_s: float = 0.0
    signed_in_s: float = 0.0
    paused_s: float = 0.0
    estimates: int = 0  # first calls of tickets whose quote was kept
    estimate_abs_error_s: float = 0.0
    estimate_error_s: float = 0.0
    estimate_in_range: int = 0

    def add(self, part: Any, targets: Mapping[str, int]) -> None:
        for name in ("issued", "called", "served", "no_show", "cancelled", "transferred"):
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.expired += part.expired
        waits = part.waits or []
        self.waits.extend(waits)
        target = targets.get(part.service)
        if target is not None:
            # the part's waits are sorted
            self.within_target += bisect_right(waits, target)
        self.service_sum += part.service_sum
        self.service_n += part.service_n
        self.rating_sum += part.rating_sum
        self.ratings += part.ratings
        self.satisfied += part.satisfied
        self.open_s += part.open_s
        self.serving_s += part.serving_s
        self.signed_in_s += part.signed_in_s
        self.paused_s += part.paused_s
        self.estimates += part.estimates
        self.estimate_abs_error_s += part.estimate_abs_error_s
        self.estimate_error_s += part.estimate_error_s
        self.estimate_in_range += part.estimate_in_range

    # -- the figures (docs/reports.md) --------------------------------------------------------

    def avg_wait_s(self) -> float | None:
        return round1(math.fsum(self.waits) / len(self.waits)) if self.waits else None

    def p90_wait_s(self) -> float | None:
        """Nearest rank, as `percentile_disc(0.9)`: the first wait in order whose position is
        at least 0.9 of their number."""
        if not self.waits:
            return None
        ordered = sorted(self.waits)
        return round1(ordered[max(math.ceil(0.9 * len(ordered)), 1) - 1])

    def max_wait_s(self) -> float | None:
        return round1(max(self.waits)) if self.waits else None

    def within_target_pct(self) -> float | None:
        return pct(self.within_target, self.called)

    def abandoned_pct(self) -> float | None:
        return pct(self.expired + self.cancelled + self.no_show, self.issued)

    def avg_service_s(self) -> float | None:
        return round1(self.service_sum / self.service_n) if self.service_n else None

    def rating_avg(self) -> float | None:
        return round(self.rating_sum / self.ratings, 2) if self.ratings else None

    def satisfaction_pct(self) -> float | None:
        return pct(self.satisfied, self.ratings)

    def utilisation(self) -> float | None:
        return round(self.serving_s / self.open_s, 3) if self.open_s > 0 else None

    def served_per_hour(self) -> float | None:
        hours = self.signed_in_s / 3600
        return round1(self.served / hours) if hours > 0 else None

    def figures(self, *, name: str | None, for_type: bool) -> dict[str, Any]:
        """The figures every row carries (`Figures` in app/reports/schemas.py). `issued`,
        `cancelled` and `abandoned_pct` are a business type's only, and so is the estimate's
        accuracy (`EstimateAccuracy`: the quote is the hall's, not a counter's)."""
        accuracy = self.estimate_accuracy() if for_type else {}
        return {
            **accuracy,
            "name": name,
            "issued": self.issued if for_type else None,
            "called": self.called,
            "served": self.served,
            "no_show": self.no_show,
            "cancelled": self.cancelled if for_type else None,
            "transferred": self.transferred,
            "expired": self.expired,
            "abandoned_pct": self.abandoned_pct() if for_type else None,
            "avg_wait_s": self.avg_wait_s(),
            "p90_wait_s": self.p90_wait_s(),
            "avg_service_s": self.avg_service_s(),
            "within_target_pct": self.within_target_pct(),
            "rating_avg": self.rating_avg(),
            "ratings": self.ratings,
            "satisfaction_pct": self.satisfaction_pct(),
        }

    def estimate_accuracy(self) -> dict[str, Any]:
        """How good the quoted waits of the first calls were (`EstimateAccuracy`); null
        without a quote."""
        n = self.estimates
        return {
            "estimate_mae_s": round1(self.estimate_abs_error_s / n) if n else None,
            "estimate_bias_s": round1(self.estimate_error_s / n) if n else None,
            "estimate_in_range_pct": pct(self.estimate_in_range, n),
        }

    def counter_time(self) -> dict[str, Any]:
        return {
            "utilisation": self.utilisation(),
            "open_s": round1(self.open_s),
            "serving_s": round1(self.serving_s),
        }

    def staff_time(self) -> dict[str, Any]:
        return {
            "signed_in_s": round1(self.signed_in_s),
            "paused_s": round1(self.paused_s),
            "served_per_hour": self.served_per_hour(),
        }


def round1(value: float) -> float:
    return round(float(value), 1)


def pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


@dataclass
class Tallies:
    """The parts of a run of days added up per scope and code, per day (business types
    together) and per local hour."""

    rows: dict[str, dict[str, Tally]] = field(
        default_factory=lambda: {"service": {}, "counter": {}, "staff": {}, "hour": {}}
    )
    days: dict[str, Tally] = field(default_factory=dict)  # ISO date -> its business types
    total: Tally = field(default_factory=Tally)  # every business type, every day

    @classmethod
    def of(cls, parts: Iterable[Any], targets: Mapping[str, int]) -> Tallies:
        tallies = cls()
        for part in parts:
            tallies.rows[part.scope].setdefault(part.code, Tally()).add(part, targets)
            if part.scope == "service":
                tallies.days.setdefault(part.day.isoformat(), Tally()).add(part, targets)
                tallies.total.add(part, targets)
        return tallies
