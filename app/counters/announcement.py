"""What the lobby speaker says when a ticket is called. Change the wording per branch with the
branch's `announcement` templates: {number} is the ticket number, {counter} the counter's name
as configured, {place} the counter as spoken ("3号窗口" / "counter 3" for a counter named "3",
the name itself for a named place such as "3号窗口" or "VIP室").

A call also names where its audio is (`audio_path`): a path made of what the text is built from
(the ticket number and the counter) and a version, a hash of the words and the speech rate.
Any server process rebuilds the words from the database and renders the same audio
(app/announcements); the version changes whenever the words would, so the audio behind one
path never changes and may be cached for good (docs/announcements.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from string import Formatter

from app.core.vocabulary import places
from app.events.catalog import CallAnnouncement

DEFAULT_ZH = "请{number}号到{place}办理"
DEFAULT_EN = "Ticket {number}, please go to {place}"

# The route of an announcement's audio (app/announcements/views.py serves it).
AUDIO_ROUTE = "/api/v1/branches/{branch}/announcements/{number}/{counter}/{version}.wav"
# Part of every version: bump it when the audio of the same words changes (the spoken forms of
# app/announcements/speech.py, the engine's voices or pause), so screens fetch it anew.
AUDIO_FORMAT = "espeak-ng/1"
VERSION_LENGTH = 12  # hex digits of the hash: the server checks it, so it needs no more


def announcement(
    number: str,
    counter_name: str,
    *,
    zh_template: str | None = None,
    en_template: str | None = None,
) -> CallAnnouncement:
    """The words of a call (without audio: see `with_audio`)."""
    place_zh, place_en = places(counter_name)
    return CallAnnouncement(
        zh=(zh_template or DEFAULT_ZH).format(number=number, counter=counter_name, place=place_zh),
        en=(en_template or DEFAULT_EN).format(number=number, counter=counter_name, place=place_en),
    )


def version_material(words: CallAnnouncement, rate: float) -> str:
    """What the audio's version hashes: the words and the rate, as JSON."""
    return json.dumps([AUDIO_FORMAT, words.zh, words.en, f"{rate:.2f}"], ensure_ascii=False)


def audio_version(words: CallAnnouncement, rate: float) -> str:
    """A hash of what the audio says and how: equal versions, equal audio."""
    return hashlib.sha256(version_material(words, rate).encode()).hexdigest()[:VERSION_LENGTH]


def audio_path(branch: str, number: str, counter: str, version: str) -> str:
    return AUDIO_ROUTE.format(branch=branch, number=number, counter=counter, version=version)


def with_audio(
    words: CallAnnouncement, *, branch: str, number: str, counter: str, rate: float
) -> CallAnnouncement:
    """`words` with the path of their audio (`counter` is the counter's code)."""
    version = audio_version(words, rate)
    return words.model_copy(update={"audio": audio_path(branch, number, counter, version)})


# -- A call rendered before its number is known ---------------------------------------------
# `next` chooses its ticket inside its statement (app/counters/next_statement.py), so the words
# are rendered here with the number left open, and the statement puts it in (`announcement_sql`).
# Private-use characters mark the open places; a ticket number (capital letters and digits)
# needs no escaping in JSON, so the version material stays exactly what `audio_version` hashes.
NUMBER_MARK = "\ue000"
VERSION_MARK = "\ue001"


@dataclass(frozen=True)
class CallPattern:
    """A call's words, audio path and version material, with NUMBER_MARK for the number (and
    VERSION_MARK for the version in the path); no audio in browser mode."""

    zh: str
    en: str
    audio_path: str | None
    audio_material: str | None


def _leaves_number_open(template: str) -> bool:
    """The number appears only as a plain `{number}` (no format spec, conversion, index)."""
    for _literal, field, spec, conversion in Formatter().parse(template):
        if (
            field is not None
            and field.startswith("number")
            and (field, spec, conversion)
            != (
                "number",
                "",
                None,
            )
        ):
            return False
    return NUMBER_MARK not in template and VERSION_MARK not in template


def call_pattern(
    *,
    branch: str,
    counter: str,
    counter_name: str,
    zh_template: str | None,
    en_template: str | None,
    audio: bool,
    rate: float,
) -> CallPattern | None:
    """The call at `counter` (its code) with the number left open, or None where a template
    formats the number itself (`{number:>6}`) or a name holds a mark: such a call is rendered
    once the number is known."""
    templates = (zh_template or DEFAULT_ZH, en_template or DEFAULT_EN)
    marks = NUMBER_MARK in counter_name or VERSION_MARK in counter_name
    if marks or not all(_leaves_number_open(t) for t in templates):
        return None
    words = announcement(
        NUMBER_MARK, counter_name, zh_template=zh_template, en_template=en_template
    )
    if not audio:
        return CallPattern(words.zh, words.en, None, None)
    path = audio_path(branch, NUMBER_MARK, counter, VERSION_MARK)
    return CallPattern(words.zh, words.en, path, version_material(words, rate))


def announcement_sql(number: str) -> str:
    """SQL for the `CallAnnouncement` of a call as jsonb, from a `CallPattern` in the
    parameters :zh_words, :en_words, :audio_path, :audio_material and the number (SQL)."""

    def filled(param: str) -> str:
        return f"replace(CAST({param} AS text), chr({ord(NUMBER_MARK)}), {number})"

    digest = f"sha256(convert_to({filled(':audio_material')}, 'UTF8'))"
    version = f"left(encode({digest}, 'hex'), {VERSION_LENGTH})"
    audio = f"replace({filled(':audio_path')}, chr({ord(VERSION_MARK)}), {version})"
    return (
        f"jsonb_build_object('zh', {filled(':zh_words')}, 'en', {filled(':en_words')},"
        f" 'audio', {audio})"
    )
