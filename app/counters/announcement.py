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


def audio_version(words: CallAnnouncement, rate: float) -> str:
    """A hash of what the audio says and how: equal versions, equal audio."""
    material = json.dumps([AUDIO_FORMAT, words.zh, words.en, f"{rate:.2f}"], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()[:VERSION_LENGTH]


def audio_path(branch: str, number: str, counter: str, version: str) -> str:
    return AUDIO_ROUTE.format(branch=branch, number=number, counter=counter, version=version)


def with_audio(
    words: CallAnnouncement, *, branch: str, number: str, counter: str, rate: float
) -> CallAnnouncement:
    """`words` with the path of their audio (`counter` is the counter's code)."""
    version = audio_version(words, rate)
    return words.model_copy(update={"audio": audio_path(branch, number, counter, version)})
