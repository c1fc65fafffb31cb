"""RequestorService over real gRPC: in-process on port 0, following a scripted fake
processor, called through its stub."""

import asyncio
import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2
from support.polling import poll
from support.requestor_harness import FAILED, FINAL, NEW, FakeProcessor
from support.rpc_errors import field_violations, reason

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb

REQUESTOR = "quoteflow.requestor.v1.RequestorService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def proposals(result: pb.TaskResult) -> list[tuple[int, int, str]]:
    return [(e.sequence, e.kind, e.proposal_id) for e in result.proposals]


def is_running(result: pb.TaskResult) -> bool:
    return result.status == pb.TASK_STATUS_RUNNING


def followed(fake: FakeProcessor) -> list[str]:
    """The orders of the streams opened to follow a started order, in order."""
    return [w.order_req_id for w in fake.watches if w.after_sequence > 0]


async def test_a_task_follows_its_order_to_success_keeping_every_proposal(requestor, fake):
    submission = quote_pb.Submission(applicant_name="Ada", address="1 Rd", coverage_amount=250_000)
    placed = await requestor.place(
        "ORD-1", submission=submission, priority=pb.TASK_PRIORITY_HIGH, request_id="req-1"
    )
    assert placed.task_id and placed.queue_position == 0
    await fake.wait_watched("ORD-1", 1)
    # No event yet: it watches its order without taking a slot.
    waiting = await requestor.result(placed.task_id)
    assert waiting.status == pb.TASK_STATUS_QUEUED and not waiting.HasField("started_at")
    assert (await requestor.stats(), await requestor.waiting_tasks()) == ((1, 0, 0, 10), 1)

    fake.propose("ORD-1", "P1")
    running = await requestor.wait_result(placed.task_id, is_running, "running")
    assert running.HasField("started_at") and not running.HasField("completed_at")
    assert await requestor.waiting_tasks() == 0
    fake.propose("ORD-1", "P2", failed=True)
    fake.propose("ORD-1", "P3")
    fake.complete("ORD-1")
    result = await requestor.wait_final(placed.task_id)

    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert proposals(result) == [(1, NEW, "P1"), (2, FAILED, "P2"), (3, NEW, "P3")]
    assert list(result.proposals) == fake.events["ORD-1"][:3]
    assert (result.last_sequence, result.reconnects, result.error_message) == (4, 0, "")
    assert (result.task_id, result.order_req_id) == (placed.task_id, "ORD-1")
    assert result.priority == pb.TASK_PRIORITY_HIGH
    assert result.submission == submission
    # Placed without a timeout: the default deadline, an hour.
    deadline = result.deadline.ToNanoseconds() - result.created_at.ToNanoseconds()
    assert deadline == pytest.approx(3600e9, abs=50e6)
    created, started, completed = (
        t.ToNanoseconds() for t in (result.created_at, result.started_at, result.completed_at)
    )
    assert 0 < created <= started <= completed
    # Watched from 0 until its first event, then followed from there.
    assert fake.watched("ORD-1") == [0, 1]
    assert await requestor.stats() == (0, 0, 1, 10)


async def test_freed_slots_go_to_waiting_tasks_by_priority_then_fifo(start_requestor, fake):
    requestor = await start_requestor(max_concurrent_tasks=2)
    holders = []
    for order in ("HOLD-1", "HOLD-2"):
        holders.append(await requestor.place(order))
        fake.propose(order, "P1")
        await requestor.wait_result(holders[-1].task_id, is_running, "running")
    waiting = {}
    for order, priority in [
        ("LOW", pb.TASK_PRIORITY_LOW),
        ("MEDIUM", pb.TASK_PRIORITY_MEDIUM),
        ("HIGH-1", pb.TASK_PRIORITY_HIGH),
        ("HIGH-2", pb.TASK_PRIORITY_HIGH),
    ]:
        # Started already: each takes its place in line as soon as it is placed.
        fake.propose(order, "P1")
        waiting[order] = await requestor.place(order, priority=priority)
    assert {o: p.queue_position for o, p in waiting.items()} == {
        "LOW": 0,
        "MEDIUM": 0,
        "HIGH-1": 0,
        "HIGH-2": 1,
    }
    assert await requestor.stats() == (4, 2, 0, 2)
    await poll(requestor.waiting_tasks, lambda n: n == 0, "every order's first event")
    for placed in waiting.values():
        assert (await requestor.result(placed.task_id)).status == pb.TASK_STATUS_QUEUED

    # One slot at a time, so the order the fake sees is the order slots were given.
    for follows, finishing in enumerate(["HOLD-1", "HOLD-2", "HIGH-1", "HIGH-2"], start=3):
        fake.complete(finishing)
        await fake.wait_for(lambda n=follows: len(followed(fake)) == n)
        assert (await requestor.stats())[1] <= 2
    assert followed(fake) == [
        "HOLD-1",
        "HOLD-2",
        "HIGH-1",
        "HIGH-2",
        "MEDIUM",
        "LOW",
    ]
    fake.complete("MEDIUM")
    fake.complete("LOW")
    for placed in [*holders, *waiting.values()]:
        assert (await requestor.wait_final(placed.task_id)).status == pb.TASK_STATUS_SUCCEEDED
    assert await requestor.stats() == (0, 0, 6, 2)


async def test_freed_slots_go_to_the_fairness_keys_in_turn(start_requestor, fake):
    requestor = await start_requestor(max_concurrent_tasks=1)
    holder = await requestor.place("HOLD", fairness_key="A")
    fake.propose("HOLD", "P1")
    await requestor.wait_result(holder.task_id, is_running, "running")
    placed = {}
    for order, key in [("A-1", "A"), ("A-2", "A"), ("A-3", "A"), ("B-1", "B")]:
        fake.propose(order, "P1")
        placed[order] = await requestor.place(order, fairness_key=key)
    await poll(requestor.waiting_tasks, lambda n: n == 0, "every order's first event")
    assert (await requestor.result(placed["B-1"].task_id)).fairness_key == "B"
    for follows, finishing in enumerate(["HOLD", "B-1", "A-1", "A-2"], start=2):
        fake.complete(finishing)
        await fake.wait_for(lambda n=follows: len(followed(fake)) == n)
    # A had the first turn (HOLD), so B's one order, placed last, has the next,
    # not a place behind A's three.
    assert followed(fake) == ["HOLD", "B-1", "A-1", "A-2", "A-3"]
    fake.complete("A-3")
    for task in placed.values():
        assert (await requestor.wait_final(task.task_id)).status == pb.TASK_STATUS_SUCCEEDED


async def test_a_key_at_its_cap_leaves_the_slot_to_another(start_requestor, fake):
    requestor = await start_requestor(max_concurrent_tasks=2, max_processing_per_key=1)
    placed = {}
    for order, key in [("A-1", "A"), ("A-2", "A"), ("B-1", "B")]:
        fake.propose(order, "P1")
        placed[order] = await requestor.place(order, fairness_key=key)
    await requestor.wait_result(placed["B-1"].task_id, is_running, "running")
    await requestor.wait_result(placed["A-1"].task_id, is_running, "running")
    assert (await requestor.result(placed["A-2"].task_id)).status == pb.TASK_STATUS_QUEUED
    fake.complete("A-1")
    await requestor.wait_result(placed["A-2"].task_id, is_running, "running")
    for order in ("A-2", "B-1"):
        fake.complete(order)
    for task in placed.values():
        assert (await requestor.wait_final(task.task_id)).status == pb.TASK_STATUS_SUCCEEDED


@pytest.mark.parametrize(
    ("aging_interval", "next_slot"), [(0.01, "LOW"), (0.0, "HIGH")], ids=["aging", "no-aging"]
)
async def test_a_low_task_that_waited_intervals_takes_the_slot_before_a_new_high(
    start_requestor, fake, aging_interval, next_slot
):
    requestor = await start_requestor(max_concurrent_tasks=1, aging_interval=aging_interval)
    holder = await requestor.place("HOLD", priority=pb.TASK_PRIORITY_HIGH)
    fake.propose("HOLD", "P1")
    await requestor.wait_result(holder.task_id, is_running, "running")
    placed = {}
    fake.propose("LOW", "P1")
    placed["LOW"] = await requestor.place("LOW", priority=pb.TASK_PRIORITY_LOW)
    await poll(requestor.waiting_tasks, lambda n: n == 0, "LOW's first event")
    # Aging is time waited: LOW waits five of aging's intervals, so at least
    # two (LOW to HIGH) whatever the machine's pace, before HIGH is placed.
    aged = time.monotonic() + 0.05
    await poll(time.monotonic, lambda now: now > aged, "LOW waiting 0.05 s")
    fake.propose("HIGH", "P1")
    placed["HIGH"] = await requestor.place("HIGH", priority=pb.TASK_PRIORITY_HIGH)
    await poll(requestor.waiting_tasks, lambda n: n == 0, "HIGH's first event")
    fake.complete("HOLD")
    await fake.wait_for(lambda: len(followed(fake)) == 2)
    assert followed(fake) == ["HOLD", next_slot]
    for order in ("LOW", "HIGH"):
        fake.complete(order)
    for task in placed.values():
        assert (await requestor.wait_final(task.task_id)).status == pb.TASK_STATUS_SUCCEEDED


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, None], ids=["unavailable", "ended"])
async def test_a_lost_stream_is_reopened_from_the_last_sequence(requestor, fake, code):
    placed = await requestor.place("ORD-1")
    await fake.wait_watched("ORD-1", 1)
    fake.propose("ORD-1", "P1")
    fake.propose("ORD-1", "P2")
    await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 2, "at 2")
    fake.cut("ORD-1", code)
    assert await fake.wait_watched("ORD-1", 3) == [0, 1, 2]
    fake.propose("ORD-1", "P3")
    await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 3, "at 3")
    fake.cut("ORD-1", code)
    assert await fake.wait_watched("ORD-1", 4) == [0, 1, 2, 3]
    fake.propose("ORD-1", "P4", failed=True)
    fake.complete("ORD-1")

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert proposals(result) == [(1, NEW, "P1"), (2, NEW, "P2"), (3, NEW, "P3"), (4, FAILED, "P4")]
    assert (result.last_sequence, result.reconnects) == (5, 2)


async def test_events_sent_again_are_kept_once(requestor, fake):
    fake.ignore_cursor = True
    fake.propose("ORD-1", "P1")
    fake.propose("ORD-1", "P2")
    placed = await requestor.place("ORD-1")
    await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 2, "at 2")
    fake.cut("ORD-1")
    await fake.wait_watched("ORD-1", 3)
    fake.propose("ORD-1", "P3")
    fake.complete("ORD-1")

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert proposals(result) == [(1, NEW, "P1"), (2, NEW, "P2"), (3, NEW, "P3")]


async def test_a_stream_at_its_deadline_is_reopened_without_counting_as_a_failure(
    start_requestor, fake
):
    # A minute's backoff after a drop: only reopening at once after the
    # stream's own deadline gets the watches below within the poll deadline.
    requestor = await start_requestor(
        watch_max_seconds=0.05, reconnect_backoff_base=60.0, reconnect_backoff_cap=60.0
    )
    placed = await requestor.place("ORD-1")
    await fake.wait_watched("ORD-1", 3)
    fake.propose("ORD-1", "P1")
    await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 1, "at 1")
    seen = len(fake.watched("ORD-1"))
    await fake.wait_watched("ORD-1", seen + 2)
    fake.complete("ORD-1")

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert proposals(result) == [(1, NEW, "P1")]
    watched = fake.watched("ORD-1")
    assert watched[:3] == [0, 0, 0] and watched[-1] == 1
    # Every watch but the first, and the follow that took over from the wait
    # for the first event, reopened a stream.
    assert result.reconnects == len(watched) - 2


async def test_a_processor_restarted_without_the_events_fails_the_task_clearly(
    start_requestor, processor
):
    # Reconnects slow enough to outlast gRPC's own one-second reconnect backoff.
    requestor = await start_requestor(reconnect_backoff_base=0.05, reconnect_backoff_cap=0.5)
    placed = await requestor.place("ORD-1")
    await processor.fake.wait_watched("ORD-1", 1)
    processor.fake.propose("ORD-1", "P1")
    processor.fake.propose("ORD-1", "P2")
    await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 2, "at 2")

    await processor.stop()
    # A reconnect has failed against the stopped processor before it comes back.
    await requestor.wait_result(placed.task_id, lambda r: r.reconnects >= 2, "reconnecting")
    await processor.start(lose_events=True)

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_FAILED
    assert (
        f"processor service at {processor.address} lost the events of order 'ORD-1' "
        "(it restarted, or the order was removed)" in result.error_message
    )
    assert proposals(result) == [(1, NEW, "P1"), (2, NEW, "P2")]
    assert result.last_sequence == 2
    assert processor.fake.watched("ORD-1") == [2]

    after = await requestor.place("ORD-2")
    processor.fake.propose("ORD-2", "P1")
    processor.fake.complete("ORD-2")
    assert (await requestor.wait_final(after.task_id)).status == pb.TASK_STATUS_SUCCEEDED


async def test_a_processor_down_for_good_times_the_task_out_keeping_what_it_collected(
    requestor, processor
):
    placed = await requestor.place("ORD-1", timeout=Duration(seconds=1))
    processor.fake.propose("ORD-1", "P1")
    await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 1, "at 1")
    await processor.stop()

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_TIMED_OUT
    assert result.error_message == "deadline passed while running"
    assert proposals(result) == [(1, NEW, "P1")]
    assert result.reconnects >= 1


async def test_a_processor_outage_longer_than_the_old_drop_limit_fails_no_task(
    requestor, processor
):
    placed = await requestor.place("ORD-1")
    processor.fake.propose("ORD-1", "P1")
    await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 1, "at 1")

    await processor.stop()
    # The old limit failed the task after 21 drops in a row with nothing new.
    outage = await requestor.wait_result(
        placed.task_id, lambda r: r.reconnects > 30 or r.status in FINAL, "30 reconnects"
    )
    assert outage.status == pb.TASK_STATUS_RUNNING, outage.error_message
    await processor.start()
    processor.fake.propose("ORD-1", "P2")
    processor.fake.complete("ORD-1")

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED, result.error_message
    assert proposals(result) == [(1, NEW, "P1"), (2, NEW, "P2")]
    assert result.reconnects > 30


async def test_the_deadline_times_a_running_task_out_keeping_what_it_collected(requestor, fake):
    fake.propose("ORD-1", "P1")
    fake.propose("ORD-1", "P2", failed=True)
    placed = await requestor.place("ORD-1", timeout=Duration(nanos=500_000_000))
    await requestor.wait_result(
        placed.task_id, lambda r: r.last_sequence == 2 or r.status in FINAL, "at 2"
    )

    result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_TIMED_OUT
    assert result.error_message == "deadline passed while running"
    assert proposals(result) == [(1, NEW, "P1"), (2, FAILED, "P2")]
    deadline = result.deadline.ToNanoseconds() - result.created_at.ToNanoseconds()
    assert deadline == pytest.approx(500_000_000, abs=50_000_000)
    # Cutting the task closed its stream to the processor.
    await fake.wait_for(lambda: fake.open_streams == 0)


async def test_cancel_queued_running_finished_and_unknown(start_requestor, fake):
    requestor = await start_requestor(max_concurrent_tasks=1)
    running = await requestor.place("ORD-1")
    await fake.wait_watched("ORD-1", 1)
    fake.propose("ORD-1", "P1")
    await requestor.wait_result(running.task_id, lambda r: r.last_sequence == 1, "at 1")
    queued = await requestor.place("ORD-2")
    assert queued.queue_position == 0
    assert await requestor.stats() == (1, 1, 0, 1)

    cancelled = (
        await requestor.stub.CancelTask(pb.CancelTaskRequest(task_id=queued.task_id))
    ).result
    assert cancelled.status == pb.TASK_STATUS_CANCELLED
    assert cancelled.error_message == "cancelled while queued"
    assert not cancelled.HasField("started_at") and cancelled.HasField("completed_at")

    answer = await requestor.stub.CancelTask(pb.CancelTaskRequest(task_id=running.task_id))
    assert answer.result.status == pb.TASK_STATUS_CANCELLED
    assert answer.result.error_message == "cancelled while running"
    assert proposals(answer.result) == [(1, NEW, "P1")]
    await fake.wait_for(lambda: fake.open_streams == 0)
    assert proposals(await requestor.result(running.task_id)) == [(1, NEW, "P1")]
    assert await requestor.stats() == (0, 0, 2, 1)
    # ORD-2 only waited for its first event: it was never followed.
    assert set(fake.watched("ORD-2")) <= {0}

    with pytest.raises(grpc.aio.AioRpcError) as finished:
        await requestor.stub.CancelTask(pb.CancelTaskRequest(task_id=running.task_id))
    assert finished.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(finished.value) == "TASK_INVALID_STATE"
    for call, request in [
        (requestor.stub.CancelTask, pb.CancelTaskRequest(task_id="nope")),
        (requestor.stub.GetTaskResult, pb.GetTaskResultRequest(task_id="nope")),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await call(request)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason(unknown.value) == "TASK_NOT_FOUND"
    for call, request in [
        (requestor.stub.CancelTask, pb.CancelTaskRequest()),
        (requestor.stub.GetTaskResult, pb.GetTaskResultRequest()),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await call(request)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(empty.value) == {"task_id": "is required"}


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        (
            {"priority": 7, "timeout": Duration(seconds=0), "request_id": "r" * 129},
            {
                "order_req_id": "is required",
                "priority": "unknown TaskPriority 7",
                "timeout": "must be more than 0 s and at most 86400 s; got 0 s",
                "request_id": "must be at most 128 characters; got 129",
            },
        ),
        (
            {"order_req_id": "o" * 129, "timeout": Duration(seconds=86_401)},
            {
                "order_req_id": "must be at most 128 characters; got 129",
                "timeout": "must be more than 0 s and at most 86400 s; got 86401 s",
            },
        ),
        (
            {"order_req_id": "ORD-1", "timeout": Duration(seconds=-1)},
            {"timeout": "must be more than 0 s and at most 86400 s; got -1 s"},
        ),
    ],
)
async def test_a_bad_place_order_names_every_bad_field(requestor, request_fields, expected):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await requestor.stub.PlaceOrder(pb.PlaceOrderRequest(**request_fields))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == expected
    assert await requestor.stats() == (0, 0, 0, 10)


async def test_the_submission_is_kept_as_given_and_the_limits_are_accepted(requestor):
    # Held to SubmitQuote's limits (see test_requestor_validation.py), and kept as given.
    edge = quote_pb.Submission(applicant_name="n" * 200, address="a" * 500, coverage_amount=1)
    placed = await requestor.place(
        "o" * 128, submission=edge, timeout=Duration(seconds=86_400), request_id="r" * 128
    )
    result = await requestor.result(placed.task_id)
    assert result.submission == edge
    assert result.priority == pb.TASK_PRIORITY_MEDIUM
    assert result.deadline.seconds - result.created_at.seconds in {86_399, 86_400}


async def test_a_repeated_request_id_places_one_task(requestor, fake):
    request = pb.PlaceOrderRequest(order_req_id="ORD-1", request_id="req-1")
    answers = await asyncio.gather(*(requestor.stub.PlaceOrder(request) for _ in range(100)))
    assert len({a.task_id for a in answers}) == 1
    assert {a.queue_position for a in answers} == {0}
    queued, active, completed, _ = await requestor.stats()
    assert queued + active + completed == 1

    # MEDIUM is what an unspecified priority means: the same request.
    same = pb.PlaceOrderRequest(
        order_req_id="ORD-1", request_id="req-1", priority=pb.TASK_PRIORITY_MEDIUM
    )
    assert (await requestor.stub.PlaceOrder(same)).task_id == answers[0].task_id
    for different in [
        pb.PlaceOrderRequest(order_req_id="ORD-2", request_id="req-1"),
        pb.PlaceOrderRequest(
            order_req_id="ORD-1", request_id="req-1", priority=pb.TASK_PRIORITY_HIGH
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as conflict:
            await requestor.stub.PlaceOrder(different)
        assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert reason(conflict.value) == "REQUEST_ID_REUSED"
    queued, active, completed, _ = await requestor.stats()
    assert queued + active + completed == 1


async def test_old_results_and_their_request_ids_are_removed(start_requestor, fake):
    requestor = await start_requestor(result_retention_seconds=0.0, cleanup_interval=0.01)
    fake.propose("ORD-1", "P1")
    fake.complete("ORD-1")
    placed = await requestor.place("ORD-1", request_id="req-1")

    async def lookup() -> grpc.StatusCode:
        try:
            await requestor.result(placed.task_id)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    await poll(lookup, lambda code: code == grpc.StatusCode.NOT_FOUND, "the result removed")
    assert await requestor.stats() == (0, 0, 0, 10)
    # The request id went with the result: it now places a new task.
    again = await requestor.place("ORD-2", request_id="req-1")
    assert again.task_id != placed.task_id


async def test_readiness_follows_the_processor(start_requestor, processor):
    await processor.stop()
    requestor = await start_requestor()
    assert await requestor.health_status("") == SERVING
    assert await requestor.health_status(REQUESTOR) == NOT_SERVING

    await processor.start()
    await poll(lambda: requestor.health_status(REQUESTOR), lambda s: s == SERVING, "SERVING")
    assert await requestor.health_status("") == SERVING

    await processor.stop()
    await poll(
        lambda: requestor.health_status(REQUESTOR), lambda s: s == NOT_SERVING, "NOT_SERVING"
    )
    assert await requestor.health_status("") == SERVING


async def test_a_drained_requestor_hands_running_tasks_back_and_refuses_orders(
    start_requestor, fake
):
    requestor = await start_requestor()
    placed = await requestor.place("ORD-1")
    fake.propose("ORD-1", "P1")
    await requestor.wait_result(placed.task_id, is_running, "running")
    await requestor.requestor.drain()

    # Queued again, not cancelled: the next start follows its order again.
    result = await requestor.result(placed.task_id)
    assert result.status == pb.TASK_STATUS_QUEUED
    assert not result.HasField("started_at") and not result.HasField("completed_at")
    assert result.error_message == ""
    await fake.wait_for(lambda: fake.open_streams == 0)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await requestor.place("ORD-2")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(refused.value) == "SHUTTING_DOWN"
