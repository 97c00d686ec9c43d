"""The announcement behind an audio path, rebuilt from the database: the branch's wording and
speech rate, the counter's name, and the ticket number (whose prefix must be one of the
branch's business types). So any server process renders the same audio, and a path can only
ever make the server say a call, in the branch's own words, never a text of the caller's."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.announcements.speech import Speech, number_parts, spoken
from app.branches.models import Branch, Service
from app.core.errors import not_found
from app.counters.announcement import announcement, audio_path, audio_version
from app.counters.models import Counter


@dataclass(frozen=True)
class AnnouncementAudio:
    speech: Speech  # what the engine says
    version: str  # the audio's version now (the path's may be older)
    path: str  # the path of the audio now


async def find_announcement(
    session: AsyncSession, branch: str, number: str, counter: str
) -> AnnouncementAudio:
    """The call of ticket `number` to counter `counter` (a code) as the branch announces it now;
    404 for a branch, counter or business type (the number's prefix) that does not exist."""
    has_type = exists().where(Service.branch == branch, Service.prefix == number_parts(number)[0])
    row = (
        await session.execute(
            select(
                Branch.announcement_zh,
                Branch.announcement_en,
                Branch.announcement_rate,
                Counter.name,
                has_type,
            )
            .outerjoin(Counter, (Counter.branch == Branch.code) & (Counter.code == counter))
            .where(Branch.code == branch)
        )
    ).first()
    if row is None:
        raise not_found(f"branch {branch}")
    zh_template, en_template, rate, counter_name, type_exists = row
    if counter_name is None:
        raise not_found(f"counter {counter} in branch {branch}")
    if not type_exists:
        raise not_found(f"a business type with the prefix of ticket {number} in branch {branch}")
    words = announcement(number, counter_name, zh_template=zh_template, en_template=en_template)
    version = audio_version(words, rate)
    speech = spoken(
        number, counter_name, zh_template=zh_template, en_template=en_template, rate=rate
    )
    return AnnouncementAudio(
        speech=speech, version=version, path=audio_path(branch, number, counter, version)
    )
