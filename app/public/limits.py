"""Who a public client is, and how much of the service it may use (SPEC §9, docs/security.md).

- **The client address.** The connection's peer, unless that peer is one of the trusted reverse
  proxies (`HALLQ_TRUSTED_PROXIES`, none by default): then `X-Forwarded-For` is read from the
  right, skipping trusted proxies, and the first address that is not one is the client. A client
  cannot choose its address by sending the header itself: only what a trusted proxy appended
  is believed.
- **60 requests a minute per address** (`HALLQ_PUBLIC_RATE_PER_MINUTE`), counted in PostgreSQL
  (`public_rate`, one upsert per request), so the limit holds across processes. Each process
  also counts what it saw itself: once that alone is over the limit, the process refuses the
  address without going to the database, so a flood from one address costs a dictionary look-up.
- **A bulkhead.** A process works on at most `HALLQ_PUBLIC_CONCURRENCY` public requests at once;
  `HALLQ_PUBLIC_QUEUE` more may wait, the rest get 503 at once. Sessions take database
  connections first come, first served (app/core/admission.py), so without it a flood from many
  addresses would queue ahead of every kiosk and clerk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import SessionDep
from app.core.errors import Problem
from app.tickets.rate_limit import WINDOW, too_many_in_this_minute, window_start

# Addresses a process remembers per minute; past it, new ones are counted in PostgreSQL only.
LOCAL_ADDRESSES_MAX = 100_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[Network]
) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], networks: Sequence[Network]
) -> str:
    """The client's address: `peer`, or, when `peer` is a trusted proxy, the right-most address
    of `X-Forwarded-For` (all its headers, in order) that is not a trusted proxy."""
    parsed = _parse(peer or "")
    if parsed is None:
        return "unknown"
    if not networks or not _trusted(parsed, networks):
        return str(parsed)
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = parsed
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # not an address: the last trusted hop is as far as we can believe
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


def too_many_requests(per_minute: int, now: datetime) -> Problem:
    return too_many_in_this_minute(
        "too-many-requests", f"at most {per_minute} requests a minute from one address", now
    )


def busy() -> Problem:
    return Problem(
        503,
        "busy",
        "too many requests from the public at once; try again in a few seconds",
        title="Service Unavailable",
        headers={"Retry-After": "2"},
    )


_COUNT = text(
    """
    INSERT INTO public_rate AS r (address, window_start, requests) VALUES (:address, :window, 1)
    ON CONFLICT (address, window_start) DO UPDATE SET requests = r.requests + 1
    RETURNING requests
    """
)
_FORGET = text("DELETE FROM public_rate WHERE window_start < :before")


class PublicGate:
    """One per process (`app.state.public_gate`): the local counts and the bulkhead."""

    def __init__(
        self, per_minute: int, concurrency: int, queue: int, networks: Sequence[Network] = ()
    ) -> None:
        self.per_minute = per_minute
        self.networks = tuple(networks)
        self.queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting = 0
        self._window: datetime | None = None
        self._seen: dict[str, int] = {}

    def count_locally(self, address: str, now: datetime) -> None:
        """Count the request in this process; 429 once this process alone saw too many."""
        if self.per_minute <= 0:
            return
        window = window_start(now)
        if window != self._window:
            self._window = window
            self._seen = {}
        seen = self._seen.get(address)
        if seen is None and len(self._seen) >= LOCAL_ADDRESSES_MAX:
            return
        seen = (seen or 0) + 1
        self._seen[address] = seen
        if seen > self.per_minute:
            raise too_many_requests(self.per_minute, now)

    async def count(self, session: AsyncSession, address: str, now: datetime) -> None:
        """Count the request across processes; 429 over the limit. Commits the count."""
        if self.per_minute <= 0:
            return
        requests = (
            await session.execute(_COUNT, {"address": address, "window": window_start(now)})
        ).scalar_one()
        await session.commit()
        if requests > self.per_minute:
            raise too_many_requests(self.per_minute, now)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots.locked() and self._waiting >= self.queue:
            raise busy()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


async def forget_old_counts(session: AsyncSession, now: datetime) -> None:
    async with session.begin():
        await session.execute(_FORGET, {"before": window_start(now) - WINDOW})


async def public_client(request: Request, session: SessionDep) -> AsyncIterator[str]:
    """The dependency of every public API route: the client's address, counted against the
    limit, holding a place in the bulkhead while the route runs."""
    gate: PublicGate = request.app.state.public_gate
    now = request.app.state.clock.now()
    peer = request.client.host if request.client else None
    address = client_address(peer, request.headers.getlist("x-forwarded-for"), gate.networks)
    gate.count_locally(address, now)
    async with gate.slot():
        await gate.count(session, address, now)
        yield address


PublicClient = Annotated[str, Depends(public_client)]
