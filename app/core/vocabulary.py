"""The fixed vocabularies of the domain (ticket status, priority, channel, counter state, alert
kind, announcement mode), each a StrEnum defined once, here at the bottom so that the models'
check constraints, the API's schemas, the calling order and the event catalog all use the same
one. Their members are the wire and database values themselves: `TicketStatus.WAITING ==
"waiting"`."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Priority(StrEnum):
    """Priority class: `special` (the green channel for elderly, sick, disabled and pregnant
    customers and people carrying babies) goes before `vip` goes before `normal`."""

    NORMAL = "normal"
    VIP = "vip"
    SPECIAL = "special"


class Channel(StrEnum):
    """Where the ticket was issued."""

    KIOSK = "kiosk"
    STAFF = "staff"
    ONLINE = "online"
    APPOINTMENT = "appointment"


class TicketStatus(StrEnum):
    """waiting -> called -> serving -> done; called -> no_show -> (re-queued) waiting;
    waiting -> cancelled; called or serving -> (transferred) waiting; waiting, called or
    no_show -> expired when the business day is closed out (SPEC §5)."""

    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    DONE = "done"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class CounterState(StrEnum):
    """closed -> open (a clerk signs in) <-> paused; closing: no new calls, closed once the
    current ticket is done."""

    CLOSED = "closed"
    OPEN = "open"
    PAUSED = "paused"
    CLOSING = "closing"


class AlertKind(StrEnum):
    """long_wait: a waiting ticket passed its business type's target wait; queue_length: more
    waiting per open counter serving the type than its threshold; too_few_counters: fewer
    counters open in business hours than the branch minimum."""

    LONG_WAIT = "long_wait"
    QUEUE_LENGTH = "queue_length"
    TOO_FEW_COUNTERS = "too_few_counters"


class AnnouncementMode(StrEnum):
    """How a branch's lobby screens speak a call (SPEC §3): `browser` with the browser's own
    voice (no server audio), `server` by playing the audio hallq renders, `auto` with a Chinese
    browser voice if the screen has one, else the server's audio."""

    BROWSER = "browser"
    SERVER = "server"
    AUTO = "auto"


def sql_list(values: Iterable[str]) -> str:
    """`('a', 'b')`: the values as an SQL list, e.g. for a check constraint's `IN`."""
    quoted = []
    for value in values:
        if "'" in value:
            raise ValueError(f"not a vocabulary value: {value!r}")
        quoted.append(f"'{value}'")
    return f"({', '.join(quoted)})"


def is_plain_number(name: str) -> bool:
    # "3", "12", "A3": a bare counter number that needs "号窗口" / "counter" around it.
    return name.isascii() and name.isalnum() and any(ch.isdigit() for ch in name)


def places(counter_name: str) -> tuple[str, str]:
    """The counter as spoken and written for customers, in Chinese and in English: the
    announcements' {place} and the texts' {counter} ("3" -> 3号窗口 / counter 3)."""
    if is_plain_number(counter_name):
        return f"{counter_name}号窗口", f"counter {counter_name}"
    return counter_name, counter_name
