"""The proposal desk without gRPC: dedupe, outcomes as events, completion last."""

import asyncio

import pytest

from processor_svc.proposal_desk import PricingOutcome, ProposalDesk
from queues.errors import InvalidStateError, RequestConflictError
from queues.order_queues import OrderEventKind, OrderQueueManager


class FakePricer:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, str]] = []
        self.outcomes: dict[str, asyncio.Future[PricingOutcome[str]]] = {}
        self.refuse = False

    async def submit(self, order_req_id: str, proposal_id: str, submission: str) -> str:
        if self.refuse:
            raise ConnectionError("quote service down")
        self.submitted.append((order_req_id, proposal_id, submission))
        handle = f"{order_req_id}/{proposal_id}"
        self.outcomes[handle] = asyncio.get_running_loop().create_future()
        return handle

    async def outcome(self, handle: str) -> PricingOutcome[str]:
        return await self.outcomes[handle]

    def settle(self, handle: str, quote: str | None, error: str = "") -> None:
        self.outcomes[handle].set_result(PricingOutcome(quote, error))


@pytest.fixture
def orders() -> OrderQueueManager[str]:
    return OrderQueueManager()


@pytest.fixture
def pricer() -> FakePricer:
    return FakePricer()


@pytest.fixture
async def desk(orders, pricer):
    desk = ProposalDesk(orders, pricer)
    yield desk
    await desk.close()


async def events(orders: OrderQueueManager[str], order: str) -> list[tuple[int, str, str]]:
    return [(e.sequence, e.kind.value, e.text) async for e in orders.watch(order)]


async def test_outcomes_become_events_and_completion_waits_for_every_proposal(orders, pricer, desk):
    assert await desk.submit("ORD", "P1", "s1") is False
    assert await desk.submit("ORD", "P2", "s2") is False
    completing = asyncio.create_task(desk.complete("ORD"))
    await asyncio.sleep(0)
    assert not completing.done()
    # Completion refuses late proposals at once, while it waits for the others.
    with pytest.raises(InvalidStateError, match="completed"):
        await desk.submit("ORD", "P3", "s3")
    pricer.settle("ORD/P2", "quote-2")
    pricer.settle("ORD/P1", None, "quote ended FAILED: boom")
    done = await completing
    assert done.kind is OrderEventKind.ORDER_COMPLETED
    assert await events(orders, "ORD") == [
        (1, "proposal_new", "P2/New"),
        (2, "proposal_failed", "P1/Failed"),
        (3, "order_completed", "ORD/Completed"),
    ]
    failed = orders.get_order_queue("ORD").events_after(1)[0]
    assert failed.error == "quote ended FAILED: boom"
    assert orders.get_order_queue("ORD").events_after(0)[0].data == "quote-2"
    assert desk.in_flight == 0
    assert (await desk.complete("ORD")) == done


async def test_the_same_proposal_is_priced_once(orders, pricer, desk):
    assert await desk.submit("ORD", "P1", "s") is False
    assert await desk.submit("ORD", "P1", "s") is True
    assert pricer.submitted == [("ORD", "P1", "s")]
    pricer.settle("ORD/P1", "q")
    await desk.complete("ORD")
    assert [e[2] for e in await events(orders, "ORD")] == ["P1/New", "ORD/Completed"]


async def test_a_proposal_the_pricer_refuses_is_not_accepted(orders, pricer, desk):
    pricer.refuse = True
    with pytest.raises(ConnectionError):
        await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a")
    assert desk.in_flight == 0
    pricer.refuse = False
    assert await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a") is False
    pricer.settle("ORD/P1", "q")
    await desk.complete("ORD")


async def test_a_request_id_reused_for_another_proposal_is_refused(pricer, desk):
    await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a")
    assert await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a") is True
    with pytest.raises(RequestConflictError):
        await desk.submit("ORD", "P2", "s", request_id="r1", fingerprint="b")
    pricer.settle("ORD/P1", "q")


async def test_a_pricer_that_raises_produces_a_failed_event(orders, pricer, desk):
    await desk.submit("ORD", "P1", "s")
    pricer.outcomes["ORD/P1"].set_exception(RuntimeError("lost"))
    await desk.complete("ORD")
    first = orders.get_order_queue("ORD").events_after(0)[0]
    assert (first.kind, first.error) == (OrderEventKind.PROPOSAL_FAILED, "RuntimeError: lost")
