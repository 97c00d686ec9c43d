"""What the lobby speaker says when a ticket is called. Change the wording per branch with the
branch's `announcement` templates: {number} is the ticket number, {counter} the counter's name
as configured, {place} the counter as spoken ("3号窗口" / "counter 3" for a counter named "3",
the name itself for a named place such as "3号窗口" or "VIP室")."""

from __future__ import annotations

from app.events.catalog import CallAnnouncement

DEFAULT_ZH = "请{number}号到{place}办理"
DEFAULT_EN = "Ticket {number}, please go to {place}"


def _is_plain_number(name: str) -> bool:
    # "3", "12", "A3": a bare counter number that needs "号窗口" / "counter" around it.
    return name.isascii() and name.isalnum() and any(ch.isdigit() for ch in name)


def announcement(
    number: str,
    counter_name: str,
    *,
    zh_template: str | None = None,
    en_template: str | None = None,
) -> CallAnnouncement:
    plain = _is_plain_number(counter_name)
    place_zh = f"{counter_name}号窗口" if plain else counter_name
    place_en = f"counter {counter_name}" if plain else counter_name
    return CallAnnouncement(
        zh=(zh_template or DEFAULT_ZH).format(number=number, counter=counter_name, place=place_zh),
        en=(en_template or DEFAULT_EN).format(number=number, counter=counter_name, place=place_en),
    )
