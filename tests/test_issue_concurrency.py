"""Many kiosks issuing at once, through two server processes: numbers unique and gap-free."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.helpers import ADMIN
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/ic"


async def test_concurrent_issuing_gives_exactly_001_to_n(database_url):
    with running_servers(database_url, 2) as servers:
        urls = [s.url for s in servers]
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            for path, body in [
                ("", {"name": "Issue hall", "timezone": "Asia/Shanghai"}),
                ("/services/a", {"name": "A", "prefix": "A"}),
                ("/services/b", {"name": "B", "prefix": "B"}),
            ]:
                assert (
                    await http.put(f"{urls[0]}{B}{path}", json=body, headers=ADMIN)
                ).status_code == 201

            async def kiosk(i: int) -> httpx.Response:
                return await http.post(
                    f"{urls[i % 2]}{B}/tickets",
                    json={"service": "a" if i % 5 else "b"},
                    headers=ADMIN,
                )

            responses = await asyncio.gather(*(kiosk(i) for i in range(150)))
            # Retries of 20 of them with Idempotency-Keys, racing each other across processes.
            keyed = await asyncio.gather(
                *(
                    http.post(
                        f"{urls[i % 2]}{B}/tickets",
                        json={"service": "a"},
                        headers={**ADMIN, "Idempotency-Key": f"key-{i // 3}"},
                    )
                    for i in range(60)
                )
            )
    assert all(r.status_code == 201 for r in responses + keyed)
    numbers = [r.json()["number"] for r in responses]
    a_numbers = sorted(n for n in numbers if n.startswith("A"))
    b_numbers = sorted(n for n in numbers if n.startswith("B"))
    assert a_numbers == [f"A{i:03d}" for i in range(1, 121)]
    assert b_numbers == [f"B{i:03d}" for i in range(1, 31)]
    # Three racing requests per key: one ticket each, numbered right after the others.
    by_key: dict[int, set[str]] = {}
    for i, r in enumerate(keyed):
        by_key.setdefault(i // 3, set()).add(r.json()["number"])
    assert all(len(n) == 1 for n in by_key.values())
    assert sorted(n.pop() for n in by_key.values()) == [f"A{i:03d}" for i in range(121, 141)]
