"""The simulated hall that the benchmark (B6) and the tests run: its business types, counters,
and how its customers behave, and what the engine needs to simulate it (docs/estimate.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.simulation.hall import Behaviour, HallModel, ServiceTime


@dataclass(frozen=True)
class HallType:
    """A business type of the simulated hall and how its customers behave."""

    code: str
    name: str
    prefix: str
    per_hour: float  # Poisson arrival rate
    mean_service_s: float
    cv: float  # coefficient of variation of the (lognormal) service time
    priorities: tuple[tuple[str, float], ...] = (("normal", 0.90), ("vip", 0.06), ("special", 0.04))

    def service_time(self, exponential: bool = False) -> ServiceTime:
        if exponential:
            return ServiceTime(self.mean_service_s, 1.0, exponential=True)
        return ServiceTime(self.mean_service_s, self.cv)


# A mid-sized telecom hall: ~110 customers an hour on 8 counters; the counters are busy (a
# customer called or at the counter) ~80% of the time, walking up and no-shows included.
DEFAULT_TYPES: tuple[HallType, ...] = (
    HallType("a", "综合业务", "A", per_hour=50, mean_service_s=270, cv=0.6),
    HallType("b", "缴费充值", "B", per_hour=44, mean_service_s=100, cv=0.5),
    HallType("c", "新开户", "C", per_hour=5.5, mean_service_s=540, cv=0.4),
    HallType(
        "v", "全球通VIP", "V", per_hour=11.5, mean_service_s=240, cv=0.6, priorities=(("vip", 1.0),)
    ),
)
DEFAULT_COUNTERS: dict[str, tuple[str, ...]] = {
    "1": ("a", "b"),
    "2": ("a", "b"),
    "3": ("a", "c"),
    "4": ("b", "a"),
    "5": ("b", "a"),
    "6": ("c", "a"),
    "7": ("v", "a"),
    "8": ("a", "b"),
}
# Customers walk up in 10-40 s; 3% never come (recalled at 45 s, marked a no-show at 90 s).
DEFAULT_BEHAVIOUR = Behaviour(walk_s=(10.0, 40.0), no_show_rate=0.03, no_show_s=90.0)


def hall_model(
    types: Sequence[HallType] = DEFAULT_TYPES,
    counters: Mapping[str, Sequence[str]] = DEFAULT_COUNTERS,
    *,
    load: float = 1.0,
    exponential: bool = False,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
) -> HallModel:
    """The hall of `types` and `counters`, arrival rates times `load`."""
    return HallModel(
        counters={code: tuple(profile) for code, profile in counters.items()},
        service_times={t.code: t.service_time(exponential) for t in types},
        priorities={t.code: t.priorities for t in types},
        arrivals_per_hour={t.code: t.per_hour * load for t in types},
        behaviour=behaviour,
    )
