"""How an announcement is said, as opposed to how it is written: the words the speech engine
gets for a call.

The screens show "请A001号到3号窗口办理"; said that way, an engine reads "A001" as "A one"
or "A thousand and one" and an alphanumeric counter "A3" as a pinyin syllable. A hall says a
ticket number letter by letter and digit by digit ("A 零零一", "A zero zero one"), so the
number is put into the branch's templates in that spoken form, and letters are set apart from
digits in the counter's name. Everything else is the branch's own wording; the Chinese in the
English words (a counter named "VIP室") is said by the Mandarin voice (`chinese_runs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.vocabulary import places
from app.counters.announcement import DEFAULT_EN, DEFAULT_ZH

ZH_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")
# Chinese characters and punctuation (CJK radicals to unified ideographs, compatibility
# ideographs, full-width forms).
_CHINESE = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]+")
_TICKET_NUMBER = re.compile(r"^([A-Z]+)([0-9]+)$")
# Between a letter and a digit, either way round: "A3" -> "A 3".
_LETTER_DIGIT = re.compile(r"(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")


@dataclass(frozen=True)
class Speech:
    """What the engine says, and how fast (1.0: its normal speed). Equal speeches render to
    equal audio, which is what the audio cache relies on."""

    zh: str
    en: str
    rate: float


def number_parts(number: str) -> tuple[str, str]:
    match = _TICKET_NUMBER.match(number)
    return (match.group(1), match.group(2)) if match else ("", number)


def number_zh(number: str) -> str:
    """A001 -> "A零零一", AB012 -> "A B零一二": Mandarin reads the digits one by one."""
    letters, digits = number_parts(number)
    return " ".join(letters) + digits.translate(ZH_DIGITS)


def number_en(number: str) -> str:
    """A001 -> "A0 0 1": the digits one by one. The first stays joined to the letters, or a
    lone "A" would be read as the article."""
    letters, digits = number_parts(number)
    return letters + " ".join(digits)


def chinese_runs(text: str) -> list[tuple[str, bool]]:
    """`text` cut into runs of Chinese (True) and of other characters (False), runs with
    nothing to say left out. An English voice reads each Chinese character as "Chinese
    letter": in the English words, a place named in Chinese ("VIP室") is said in Mandarin."""
    runs: list[tuple[str, bool]] = []
    at = 0
    for match in _CHINESE.finditer(text):
        runs += [(text[at : match.start()], False), (match.group(), True)]
        at = match.end()
    runs.append((text[at:], False))
    return [(run.strip(), chinese) for run, chinese in runs if any(c.isalnum() for c in run)]


def set_apart(name: str) -> str:
    """A3号窗口 -> "A 3号窗口": letters and digits as separate words."""
    return _LETTER_DIGIT.sub(" ", name)


def spoken(
    number: str,
    counter_name: str,
    *,
    zh_template: str | None,
    en_template: str | None,
    rate: float,
) -> Speech:
    """The call of `number` to the counter named `counter_name`, as the engine should say it
    (the branch's templates, as app.counters.announcement fills them for the screens)."""
    place_zh, place_en = places(counter_name)
    zh = (zh_template or DEFAULT_ZH).format(
        number=number_zh(number), counter=set_apart(counter_name), place=set_apart(place_zh)
    )
    en = (en_template or DEFAULT_EN).format(
        number=number_en(number), counter=counter_name, place=place_en
    )
    return Speech(zh=zh, en=en, rate=rate)
