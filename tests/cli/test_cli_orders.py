"""quoteflow order …, against a requestor following a processor pricing through a
quote service, all three in-process."""

ADA = ("--name", "Ada Lovelace", "--address", "12 St James's Square", "--coverage")


async def test_place_follow_prints_proposals_as_they_come_then_the_result(order_cli):
    follow = order_cli.start("--json", "order", "place", "ORD1", "--priority", "high", "--follow")
    [placed] = await follow.stdout.wait_for_lines(1)
    for proposal, coverage in (("P1", "250000"), ("P2", "80000")):
        proposed = await order_cli("order", "propose", "ORD1", proposal, *ADA, coverage)
        assert proposed.code == 0, proposed.stderr
        assert proposed.stdout.startswith(f"proposal {proposal} of order ORD1 accepted")
    again = await order_cli("--json", "order", "propose", "ORD1", "P1", *ADA, "250000")
    assert again.json()["duplicate"] is True
    # Both proposals show while the order is still open.
    await follow.stdout.wait_for_lines(3)
    completed = await order_cli("--json", "order", "complete", "ORD1")
    assert completed.code == 0, completed.stderr
    assert completed.json()["event"]["kind"] == "ORDER_EVENT_KIND_ORDER_COMPLETED"

    result = await follow.result()
    assert result.code == 0, result.stderr
    placed, *events, final = result.json_lines()
    assert placed["task_id"]
    assert {event["event"]["proposal_id"] for event in events} == {"P1", "P2"}
    assert all(e["event"]["quote"]["result"]["annual_premium_cents"] > 0 for e in events)
    task = final["result"]
    assert task["status"] == "TASK_STATUS_SUCCEEDED"
    assert task["priority"] == "TASK_PRIORITY_HIGH"
    assert len(task["proposals"]) == 2

    shown = await order_cli("order", "result", placed["task_id"])
    assert shown.code == 0
    assert "succeeded" in shown.stdout
    assert "P2" in shown.stdout


async def test_watch_streams_the_orders_events_until_it_completes(order_cli):
    await order_cli("order", "propose", "ORD1", "P1", *ADA, "250000")
    await order_cli("order", "complete", "ORD1")
    watched = await order_cli("--json", "order", "watch", "ORD1")
    assert watched.code == 0, watched.stderr
    kinds = [line["event"]["kind"] for line in watched.json_lines()]
    assert kinds == ["ORDER_EVENT_KIND_PROPOSAL_NEW", "ORDER_EVENT_KIND_ORDER_COMPLETED"]
    after = await order_cli("order", "watch", "ORD1", "--after", "1")
    assert after.code == 0
    assert after.stdout.startswith("#2 ")
    assert "order ORD1 completed" in after.stdout


async def test_cancel_then_result_of_a_cancelled_task(order_cli):
    placed = await order_cli("--json", "order", "place", "ORD2")
    task_id = placed.json()["task_id"]
    cancelled = await order_cli("order", "cancel", task_id)
    assert cancelled.code == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    result = await order_cli("--json", "order", "result", task_id)
    assert result.code == 1  # the task ended without its result
    assert result.json()["result"]["status"] == "TASK_STATUS_CANCELLED"
    again = await order_cli("order", "cancel", task_id)
    assert again.code == 4
    unknown = await order_cli("order", "result", "no-such-task")
    assert unknown.code == 3
    assert unknown.stderr.startswith("quoteflow: the requestor service at ")


async def test_follow_of_a_task_that_times_out_exits_1(order_cli):
    result = await order_cli("--json", "order", "place", "ORD3", "--timeout", "0.2", "--follow")
    assert result.code == 1
    assert result.json_lines()[-1]["result"]["status"] == "TASK_STATUS_TIMED_OUT"


async def test_an_unreachable_processor_is_named(cli):
    # The cli fixture's processor address refuses connections.
    result = await cli("order", "propose", "ORD1", "P1", *ADA, "250000")
    assert result.code == 5
    assert result.stderr.startswith("quoteflow: cannot reach the processor service at ")
