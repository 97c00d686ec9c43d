"""What the lobby speaker says when a ticket is called. Change the wording per branch with the
branch's `announcement` templates ({number} and {counter} are filled in)."""

from __future__ import annotations

DEFAULT_ZH = "请{number}号到{counter}号窗口办理"
DEFAULT_EN = "Ticket {number}, please go to counter {counter}"


def announcement(
    number: str,
    counter_name: str,
    *,
    zh_template: str | None = None,
    en_template: str | None = None,
) -> dict[str, str]:
    return {
        "zh": (zh_template or DEFAULT_ZH).format(number=number, counter=counter_name),
        "en": (en_template or DEFAULT_EN).format(number=number, counter=counter_name),
    }
