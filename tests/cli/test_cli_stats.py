"""quoteflow stats: the three services' counters in one table or one JSON object."""

import json


async def test_stats_of_all_three_services(order_cli, quote, requestor):
    await order_cli("quote", "submit", "--name", "A", "--address", "B", "--coverage", "9", "--wait")
    result = await order_cli("--json", "stats")
    assert result.code == 0, result.stderr
    stats = result.json()
    assert stats["quote"]["completed_count"] == 1
    assert stats["quote"]["workers"] == 1
    assert stats["processor"]["order_queues_count"] == 0
    assert stats["requestor"]["max_concurrent_tasks"] == 10
    for_people = await order_cli("stats")
    assert for_people.code == 0
    for counter in ("completed", "order queues", "tasks running"):
        assert counter in for_people.stdout


async def test_a_service_that_cannot_be_reached_is_shown_with_the_others(cli):
    # The cli fixture has no processor or requestor: their addresses refuse connections.
    result = await cli("--json", "stats")
    assert result.code == 5
    stats = result.json()
    assert stats["quote"]["max_size"] == 1000
    assert stats["processor"]["error"]["code"] == "UNAVAILABLE"
    assert stats["requestor"]["error"]["code"] == "UNAVAILABLE"
    errors = [json.loads(line)["error"] for line in result.stderr.splitlines()]
    assert [error["service"] for error in errors] == ["processor", "requestor"]
