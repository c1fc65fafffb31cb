"""What bounds every task, over real gRPC against the scripted fake processor:
orders that never start hold no slot and end at their deadline, a removed
order ends its task, and a result never outgrows one answer."""

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from support.requestor_harness import NEW

from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from requestor_svc.order_follower import MAX_PROPOSAL_BYTES

#: gRPC's default limit on a message a client receives.
DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024


async def test_orders_that_never_start_do_not_delay_a_high_order_that_does(requestor, fake):
    # As many as there are slots (10): before, they held every one of them.
    never = [await requestor.place(f"NEVER-{n}", priority=pb.TASK_PRIORITY_LOW) for n in range(10)]
    await fake.wait_for(lambda: fake.open_streams == 10)
    assert await requestor.waiting_tasks() == 10

    high = await requestor.place("REAL", priority=pb.TASK_PRIORITY_HIGH)
    fake.propose("REAL", "P1")
    fake.complete("REAL")
    result = await requestor.wait_final(high.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert [e.proposal_id for e in result.proposals] == ["P1"]

    for placed in never:
        waiting = await requestor.result(placed.task_id)
        assert waiting.status == pb.TASK_STATUS_QUEUED
        assert not waiting.HasField("started_at")
    assert await requestor.stats() == (10, 0, 1, 10)
    assert await requestor.waiting_tasks() == 10


async def test_a_task_for_an_order_that_never_starts_ends_at_the_default_deadline(
    start_requestor, fake
):
    requestor = await start_requestor(default_task_timeout=0.3)
    defaulted = await requestor.place("NEVER")
    # PlaceOrder's own timeout wins over the default.
    given = await requestor.place("GIVEN", timeout=Duration(seconds=3600))

    result = await requestor.wait_final(defaulted.task_id)
    assert result.status == pb.TASK_STATUS_TIMED_OUT
    assert result.error_message == "deadline passed while waiting for its order's first event"
    assert not result.HasField("started_at") and list(result.proposals) == []
    deadline = result.deadline.ToNanoseconds() - result.created_at.ToNanoseconds()
    assert deadline == pytest.approx(300_000_000, abs=50_000_000)

    other = await requestor.result(given.task_id)
    assert other.status == pb.TASK_STATUS_QUEUED
    assert other.deadline.seconds - other.created_at.seconds in {3599, 3600}
    # Its wait for the order ended with it: only GIVEN still watches.
    await fake.wait_for(lambda: fake.open_streams == 1)
    assert await requestor.waiting_tasks() == 1


@pytest.mark.parametrize("started", [True, False], ids=["running", "waiting"])
async def test_a_task_whose_order_was_removed_fails_naming_it(requestor, fake, started):
    placed = await requestor.place("GONE")
    await fake.wait_watched("GONE", 1)
    if started:
        fake.propose("GONE", "P1")
        await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 1, "at 1")
    fake.remove("GONE")

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_FAILED
    assert result.error_message.startswith("OrderNotFoundError: processor service at ")
    assert "has no order 'GONE' any more (it expired or was removed)" in result.error_message
    assert "order 'GONE' expired" in result.error_message
    received = "its events up to sequence 1" if started else "none of its events"
    assert f"the task received {received}" in result.error_message
    assert [e.proposal_id for e in result.proposals] == (["P1"] if started else [])
    await fake.wait_for(lambda: fake.open_streams == 0)


async def test_a_result_never_outgrows_one_answer(requestor, fake):
    placed = await requestor.place("BIG")
    # 45 events of 100 kB: 4.5 MB together, more than a client may receive.
    for n in range(45):
        fake.propose("BIG", f"P{n}", text="x" * 100_000)
    fake.complete("BIG")

    # The answer arrives: it is under the client's default limit.
    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_FAILED
    assert "order 'BIG' has more proposals than one task result can carry" in (result.error_message)
    kept = len(result.proposals)
    assert 0 < kept < 45
    assert [e.proposal_id for e in result.proposals] == [f"P{n}" for n in range(kept)]
    assert sum(e.ByteSize() for e in result.proposals) <= MAX_PROPOSAL_BYTES
    assert pb.GetTaskResultResponse(result=result).ByteSize() < DEFAULT_MAX_RECEIVE
    assert {e.kind for e in result.proposals} == {NEW}


async def test_a_stream_refused_for_too_many_watches_is_tried_again(requestor, fake):
    placed = await requestor.place("BUSY")
    await fake.wait_watched("BUSY", 1)
    fake.cut("BUSY", grpc.StatusCode.RESOURCE_EXHAUSTED)
    await fake.wait_watched("BUSY", 2)
    fake.propose("BUSY", "P1")
    fake.complete("BUSY")
    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert result.reconnects == 1


async def test_an_order_completed_without_proposals_ends_the_task_at_its_first_event(
    requestor, fake
):
    fake.complete("EMPTY")
    placed = await requestor.place("EMPTY")
    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert (list(result.proposals), result.last_sequence) == ([], 1)
    # Its wait for the first event saw the order complete: nothing more to follow.
    assert fake.watched("EMPTY") == [0]
