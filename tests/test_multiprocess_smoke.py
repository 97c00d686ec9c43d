import httpx
import pytest

from tests.helpers import ADMIN
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess


async def test_two_processes_share_one_database(database_url):
    with running_servers(database_url, 2) as (one, two):
        async with httpx.AsyncClient() as http:
            r = await http.put(
                f"{one.url}/api/v1/branches/mp",
                json={"name": "MP", "timezone": "UTC"},
                headers=ADMIN,
            )
            assert r.status_code == 201, r.text
            r = await http.get(f"{two.url}/api/v1/branches/mp", headers=ADMIN)
            assert r.status_code == 200 and r.json()["name"] == "MP"
