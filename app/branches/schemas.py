from __future__ import annotations

from datetime import UTC, date, datetime
from string import Formatter
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.branches.hours import (
    SPECIAL_HOURS_MAX,
    clock_change_at,
    parse_day_start,
    parse_hours,
    parse_special_hours,
)
from app.branches.models import (
    ANNOUNCEMENT_RATE_MAX,
    ANNOUNCEMENT_RATE_MIN,
    ANNOUNCEMENT_REPEAT_MAX,
    ANNOUNCEMENT_VOICE_MAX,
    SERVICE_LEVEL_PCT_MAX,
    SERVICE_LEVEL_PCT_MIN,
    STAFF_NUMBER_MAX,
    STAFFING_WEEKS_MAX,
    STAFFING_WEEKS_MIN,
)
from app.core.codes import Code, Name
from app.core.vocabulary import AnnouncementMode

HHMM = Annotated[str, StringConstraints(max_length=5)]
# {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], ...}: up to two periods a day.
WeeklyHoursIn = dict[
    str, Annotated[list[Annotated[list[HHMM], Field(max_length=2)]], Field(max_length=8)]
]
GUIDE_MAX = 500
GuideText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=GUIDE_MAX)
]
StaffNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=STAFF_NUMBER_MAX
    ),
]
Template = Annotated[str, StringConstraints(min_length=1, max_length=200)]


VoiceName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ANNOUNCEMENT_VOICE_MAX)
]


class Announcement(BaseModel):
    """How calls are announced: the wording, `{number}`, and `{counter}` (the counter's name)
    or `{place}` (the counter as spoken: "3号窗口" for a counter named "3"), see
    app.counters.announcement; and how screens speak it (docs/announcements.md)."""

    model_config = ConfigDict(extra="forbid")

    zh: Template | None = None
    en: Template | None = None
    mode: AnnouncementMode = Field(
        default=AnnouncementMode.AUTO,
        description="browser: screens speak with a browser voice and calls carry no audio; "
        "server: screens play the audio hallq renders; auto: a Chinese browser voice if the "
        "screen has one, else the audio",
    )
    repeat: Annotated[int, Field(ge=1, le=ANNOUNCEMENT_REPEAT_MAX)] = Field(
        default=1, description="how many times screens speak each call, 1-3"
    )
    rate: Annotated[float, Field(ge=ANNOUNCEMENT_RATE_MIN, le=ANNOUNCEMENT_RATE_MAX)] = Field(
        default=1.0,
        description="speech rate, 0.5-2.0 (1.0: normal), for browser voices and the server's "
        "audio; kept to two decimals",
    )
    voice: VoiceName | None = Field(
        default=None,
        description="the browser voice screens prefer, by name (e.g. Microsoft Huihui); null: "
        "the screen picks a Chinese voice itself",
    )

    @field_validator("rate")
    @classmethod
    def _two_decimals(cls, value: float) -> float:
        # The rate is part of the audio's version (app/counters/announcement.py): 1.0 and
        # 1.0000001 must not render, and cache, twice.
        return round(value, 2)

    @field_validator("zh", "en")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            names = announcement_placeholders(value)
            if "number" not in names or not names & {"counter", "place"}:
                raise ValueError("a template must contain {number} and {counter} or {place}")
        return value


ANNOUNCEMENT_PLACEHOLDERS = ("number", "counter", "place")
_PLAIN_ONLY = (
    "only {number}, {counter} and {place} may appear in braces, each as written here: no "
    "format spec, conversion or index such as {number:>6} or {number[0]} (write {{ and }} for "
    "a brace)"
)


def announcement_placeholders(template: str) -> set[str]:
    """The placeholders of an announcement template; ValueError for anything in braces but a
    plain {number}, {counter} or {place}. `next` fills the number in SQL, where only a plain
    {number} can be (app/counters/announcement.py: `call_pattern`)."""
    try:
        fields = [(f, s, c) for _, f, s, c in Formatter().parse(template) if f is not None]
    except ValueError as exc:  # an unmatched brace
        raise ValueError(_PLAIN_ONLY) from exc
    if any(field not in ANNOUNCEMENT_PLACEHOLDERS or spec or conv for field, spec, conv in fields):
        raise ValueError(_PLAIN_ONLY)
    return {field for field, _spec, _conv in fields}


class SpecialHoursRange(BaseModel):
    """Hours for the dates `from` to `to` (both included), replacing the weekly hours there."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: date = Field(alias="from", description="the first date of the range")
    to: date = Field(description="the last date of the range (the same date: one day)")
    hours: WeeklyHoursIn = Field(
        description="weekly hours as `hours`; a weekday left out is closed within the range"
    )

    @model_validator(mode="after")
    def _valid(self) -> SpecialHoursRange:
        parse_special_hours([self.as_config()])
        return self

    def as_config(self) -> dict[str, Any]:
        """As stored (JSONB) and as `Schedule.from_config` takes it."""
        return {"from": self.from_.isoformat(), "to": self.to.isoformat(), "hours": self.hours}


class OnlineJoin(BaseModel):
    """Remote join (SPEC §9): customers take a `normal` ticket from their phone at
    /join/{branch}. Off unless enabled."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    daily_limit: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=200, description="remote joins per business day; then 409 online-join-full"
    )
    services: Annotated[list[Code], Field(max_length=100)] | None = Field(
        default=None, description="the business types open to remote join; null: all"
    )


SMS_PLACEHOLDERS = ("number", "counter", "ahead", "branch")
SmsText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class SmsTemplates(BaseModel):
    """The wording of the texts sent to a customer's phone (SPEC §9), with `{number}`,
    `{counter}`, `{ahead}` and `{branch}`. (The sending itself is not built yet.)"""

    model_config = ConfigDict(extra="forbid")

    near: SmsText
    called: SmsText

    @field_validator("near", "called")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(**{name: "x" for name in SMS_PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                "only {number}, {counter}, {ahead} and {branch} may appear in braces"
            ) from exc
        return value


class BranchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    hours: WeeklyHoursIn | None = None
    special_hours: Annotated[list[SpecialHoursRange], Field(max_length=SPECIAL_HOURS_MAX)] = Field(
        default=[],
        description="date ranges whose hours replace the weekly hours (summer hours, a special "
        "day); they may not overlap; holidays still close the day",
    )
    holidays: Annotated[list[date], Field(max_length=400)] = []
    issue_cutoff_min: Annotated[int, Field(ge=0, le=720)] = 0
    min_open_counters: Annotated[int, Field(ge=0, le=1000)] = 0
    requeue_after: Annotated[int, Field(ge=0, le=50)] = 2
    announcement: Announcement | None = None
    day_starts_at: HHMM = Field(
        default="00:00",
        description="the boundary of the business day, HH:MM in the branch's timezone",
    )
    clerks_may_pick: bool = False
    notify_ahead: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=3,
        description="ticket.near once a waiting ticket has at most this many ahead (SPEC §9); "
        "null: no near notices",
    )
    online_join: OnlineJoin | None = Field(
        default=None, description="remote join at /join/{branch}; null or absent: disabled"
    )
    sms_templates: SmsTemplates | None = None
    service_level_pct: Annotated[int, Field(ge=SERVICE_LEVEL_PCT_MIN, le=SERVICE_LEVEL_PCT_MAX)] = (
        Field(
            default=80,
            description="staffing (SPEC §11): the % of customers the plan calls within their "
            f"type's target wait, {SERVICE_LEVEL_PCT_MIN}-{SERVICE_LEVEL_PCT_MAX}",
        )
    )
    staffing_weeks: Annotated[int, Field(ge=STAFFING_WEEKS_MIN, le=STAFFING_WEEKS_MAX)] = Field(
        default=8,
        description="staffing: the weeks of history the arrivals forecast reads, "
        f"{STAFFING_WEEKS_MIN}-{STAFFING_WEEKS_MAX}",
    )

    @field_validator("day_starts_at")
    @classmethod
    def _valid_day_start(cls, value: str, info: ValidationInfo) -> str:
        start = parse_day_start(value)
        timezone = info.data.get("timezone")  # absent if it was refused itself
        if timezone is not None:
            # The coming years of the zone's rules, from the real date: a validation window.
            this_year = datetime.now(UTC).year
            day = clock_change_at(ZoneInfo(timezone), start, range(this_year, this_year + 10))
            if day is not None:
                raise ValueError(
                    f"{value} falls in a daylight-saving change in {timezone} (on "
                    f"{day.isoformat()}): choose a time the clocks never skip or repeat"
                )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a known IANA timezone (e.g. Asia/Shanghai)"
            ) from None
        return value

    @field_validator("special_hours")
    @classmethod
    def _no_overlaps(cls, value: list[SpecialHoursRange]) -> list[SpecialHoursRange]:
        parse_special_hours([special.as_config() for special in value])
        return sorted(value, key=lambda special: special.from_)

    @field_validator("hours")
    @classmethod
    def _valid_hours(
        cls, value: dict[str, list[list[str]]] | None
    ) -> dict[str, list[list[str]]] | None:
        if value is not None:
            parse_hours(value)
        return value


class BranchSummary(BaseModel):
    """A line of the branch list (`GET /api/v1/branches`): what the console's index shows."""

    code: str
    name: str
    timezone: str


class BranchOut(BaseModel):
    code: str
    name: str
    timezone: str
    hours: dict[str, list[list[str]]] | None
    special_hours: list[SpecialHoursRange]
    holidays: list[date]
    issue_cutoff_min: int
    min_open_counters: int
    requeue_after: int
    announcement: Announcement
    day_starts_at: str
    clerks_may_pick: bool
    notify_ahead: int | None
    online_join: OnlineJoin
    sms_templates: SmsTemplates | None
    service_level_pct: int
    staffing_weeks: int


PrefixStr = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,3}$")]


class Guide(BaseModel):
    """What a customer should know after choosing the type (documents to bring, a self-service
    hint, where to wait): the kiosk shows it and prints it on the ticket."""

    model_config = ConfigDict(extra="forbid")

    zh: GuideText
    en: GuideText | None = None


class ServiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    prefix: PrefixStr = Field(description="1-3 capital letters, e.g. A")
    target_wait_s: Annotated[int, Field(ge=1, le=86400)] = 600
    max_wait_s: Annotated[int, Field(ge=1, le=86400)] | None = 1800
    queue_alert_per_counter: Annotated[int, Field(ge=1, le=1000)] = 10
    guide: Guide | None = Field(
        default=None, description=f"{{zh, en?}}, at most {GUIDE_MAX} characters each"
    )


class ServiceOut(BaseModel):
    code: str
    name: str
    prefix: str
    target_wait_s: int
    max_wait_s: int | None
    queue_alert_per_counter: int
    guide: Guide | None


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Annotated[str, StringConstraints(pattern=r"^(clerk|manager)$")] = Field(
        description="clerk or manager"
    )
    number: StaffNumber | None = Field(
        default=None,
        description=f"the staff number (工号), 1-{STAFF_NUMBER_MAX} letters, digits, '-' or '_'",
    )


class StaffOut(BaseModel):
    code: str
    name: str
    role: str
    number: str | None


class StaffCard(BaseModel):
    """A staff member as the hall sees them (the name badge, the counter screen): no role."""

    code: str
    name: str
    number: str | None


class BranchConfigOut(BranchOut):
    """A branch with its business types and staff: what kiosks and screens need to draw
    themselves (a counter screen names the clerk and their staff number)."""

    services: list[ServiceOut]
    staff: list[StaffCard]
    sms: bool = Field(
        default=False,
        description="texts go to customers' phones (HALLQ_SMS_URL is set): the kiosk then "
        "offers a phone number field",
    )
