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
# A private-use character marks the open place: the first one that neither the templates nor
# the counter's name holds, so that `replace()` finds only the number's places. A ticket number
# (capital letters and digits) needs no escaping in JSON, so the version material stays exactly
# what `audio_version` hashes. The templates name the number only as a plain `{number}` (the
# branch settings refuse a format spec: app/branches/schemas.py), so the mark stands for it.

# The first choices; `call_pattern` takes the next free ones where a text holds them.
NUMBER_MARK = "\ue000"
VERSION_MARK = "\ue001"
_PRIVATE_USE = range(ord(NUMBER_MARK), 0xF900)


@dataclass(frozen=True)
class CallPattern:
    """A call's words, audio path and version material, with `number_mark` for the number (and
    `version_mark` for the version in the path); no audio in browser mode."""

    zh: str
    en: str
    audio_path: str | None
    audio_material: str | None
    number_mark: str = NUMBER_MARK
    version_mark: str = VERSION_MARK


def _free_marks(*texts: str) -> tuple[str, str]:
    """Two private-use characters that none of `texts` holds (they are short: 6,400 choices)."""
    used = set("".join(texts))
    free = (chr(code) for code in _PRIVATE_USE if chr(code) not in used)
    return next(free), next(free)


def call_pattern(
    *,
    branch: str,
    counter: str,
    counter_name: str,
    zh_template: str | None,
    en_template: str | None,
    audio: bool,
    rate: float,
) -> CallPattern:
    """The call at `counter` (its code) with the number left open."""
    zh, en = zh_template or DEFAULT_ZH, en_template or DEFAULT_EN
    number_mark, version_mark = _free_marks(zh, en, counter_name, *places(counter_name))
    words = announcement(number_mark, counter_name, zh_template=zh, en_template=en)
    if not audio:
        return CallPattern(words.zh, words.en, None, None, number_mark, version_mark)
    path = audio_path(branch, number_mark, counter, version_mark)
    material = version_material(words, rate)
    return CallPattern(words.zh, words.en, path, material, number_mark, version_mark)


def announcement_sql(number: str) -> str:
    """SQL for the `CallAnnouncement` of a call as jsonb, from a `CallPattern` in the
    parameters :zh_words, :en_words, :audio_path, :audio_material, :number_mark,
    :version_mark and the number (SQL)."""

    def filled(param: str) -> str:
        return f"replace(CAST({param} AS text), CAST(:number_mark AS text), {number})"

    digest = f"sha256(convert_to({filled(':audio_material')}, 'UTF8'))"
    version = f"left(encode({digest}, 'hex'), {VERSION_LENGTH})"
    audio = f"replace({filled(':audio_path')}, CAST(:version_mark AS text), {version})"
    return (
        f"jsonb_build_object('zh', {filled(':zh_words')}, 'en', {filled(':en_words')},"
        f" 'audio', {audio})"
    )
