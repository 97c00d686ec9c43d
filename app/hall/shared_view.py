"""The queue view exactly as of an event seq, read once for all of a branch's clients in a
process (app/events/shared_reads.py): GET /queue and the stream's snapshots alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.events.shared_reads import SharedReads
from app.hall.schemas import QueueView
from app.hall.service import queue_view


@dataclass
class SeqView:
    """The queue view of a branch exactly as of event `seq`."""

    seq: int
    view: QueueView
    _json: bytes | None = field(default=None, repr=False)

    def json(self) -> bytes:
        """The view as the API sends it, serialised once for all who share it."""
        if self._json is None:
            self._json = self.view.model_dump_json(by_alias=True).encode()
        return self._json


async def read_seq_view(
    session: AsyncSession, branch: str, now: datetime, settings: Settings
) -> SeqView:
    """The view and the seq it includes, from one snapshot. Ends `session`'s transaction."""
    seq, view = await queue_view(session, branch, now, settings)
    await session.commit()
    return SeqView(seq, view)


async def shared_seq_view(
    reads: SharedReads,
    session: AsyncSession,
    branch: str,
    now: datetime,
    settings: Settings,
    seq: int | None = None,
) -> SeqView:
    """The view as a read now would find it; `seq`: the branch's committed seq, just read."""
    return await reads.read(
        session, branch, "queue", now, lambda: read_seq_view(session, branch, now, settings), seq
    )
