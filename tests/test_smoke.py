from tests.helpers import ADMIN, issue, ok, setup_branch


async def test_issue_and_call(client):
    await setup_branch(client)
    ticket = await issue(client)
    assert ticket["number"] == "A001"
    assert ticket["position"] == 1
    await ok(await client.post("/api/v1/branches/hz01/counters/1/open", headers=ADMIN))
    called = await ok(await client.post("/api/v1/branches/hz01/counters/1/next", headers=ADMIN))
    assert called["ticket"]["number"] == "A001"
    assert called["ticket"]["status"] == "called"
    queue = await ok(await client.get("/api/v1/branches/hz01/queue", headers=ADMIN))
    assert queue["recent_calls"][0]["ticket"]["number"] == "A001"
