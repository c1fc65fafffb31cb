"""The proposal desk without gRPC: dedupe, outcomes as events, completion last;
acceptance committed before it is answered, and recovery from the store."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from support.store_doubles import ScriptedStore, in_collection

from processor_svc.proposal_desk import (
    ERROR_MAX_CHARS,
    OrderFullError,
    PricingOutcome,
    ProposalDesk,
)
from queues.backoff import Backoff
from queues.errors import InvalidStateError, RequestConflictError
from queues.order_queues import OrderEventKind, OrderQueueManager
from queues.storage import MemoryStore, Store, StoreError


class FakePricer:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, str]] = []
        self.outcomes: dict[str, asyncio.Future[PricingOutcome[str]]] = {}
        self.followed: list[str] = []
        self._following = asyncio.Event()
        self.refuse = False
        #: handle → what tells the desk its quote awaits a human review.
        self.in_review: dict[str, Callable[[], None]] = {}
        self.withdrawn: list[str] = []
        self._withdrawing = asyncio.Event()

    async def submit(self, order_req_id: str, proposal_id: str, submission: str) -> str:
        if self.refuse:
            raise ConnectionError("quote service down")
        self.submitted.append((order_req_id, proposal_id, submission))
        handle = f"{order_req_id}/{proposal_id}"
        self._outcome(handle)
        return handle

    async def outcome(self, handle: str, in_review: Callable[[], None]) -> PricingOutcome[str]:
        self.followed.append(handle)
        self.in_review[handle] = in_review
        self._following.set()
        return await self._outcome(handle)

    async def withdraw(self, handle: str) -> None:
        self.withdrawn.append(handle)
        self._withdrawing.set()

    async def withdrawals(self, count: int) -> list[str]:
        """The handles withdrawn, once there are count of them."""
        while len(self.withdrawn) < count:
            self._withdrawing.clear()
            await self._withdrawing.wait()
        return self.withdrawn

    async def following(self, count: int) -> list[str]:
        """The handles followed, once there are count of them."""
        while len(self.followed) < count:
            self._following.clear()
            await self._following.wait()
        return self.followed

    def settle(self, handle: str, quote: str | None, error: str = "") -> None:
        self._outcome(handle).set_result(PricingOutcome(quote, error))

    def _outcome(self, handle: str) -> asyncio.Future[PricingOutcome[str]]:
        # A handle from before a restart is followed without being submitted here.
        if handle not in self.outcomes:
            self.outcomes[handle] = asyncio.get_running_loop().create_future()
        return self.outcomes[handle]


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
    await desk.stop()


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


# -- durability ------------------------------------------------------------------

OpenDesk = Callable[..., Awaitable[tuple[OrderQueueManager[str], ProposalDesk[str, str]]]]


@pytest.fixture
async def open_desk() -> AsyncIterator[OpenDesk]:
    """Start an order manager and a desk on a store, as a process start would;
    each is stopped after the test unless the test stopped it."""
    opened: list[tuple[OrderQueueManager[str], ProposalDesk[str, str]]] = []

    async def start(store: Store, pricer: FakePricer, **options: object):
        orders: OrderQueueManager[str] = OrderQueueManager(store=store)
        await orders.start()
        desk: ProposalDesk[str, str] = ProposalDesk(orders, pricer, **options)
        await desk.start()
        opened.append((orders, desk))
        return orders, desk

    yield start
    for orders, desk in opened:
        await desk.stop()
        await orders.stop()


async def stop(orders: OrderQueueManager[str], desk: ProposalDesk[str, str]) -> None:
    """What a process that stops leaves behind: only its store."""
    await desk.stop()
    await orders.stop()


def count_by_proposal(events: list[tuple[int, str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, _, text in events:
        proposal = text.partition("/")[0]
        counts[proposal] = counts.get(proposal, 0) + 1
    return counts


async def test_accepted_but_unpriced_proposals_are_priced_after_a_restart(open_desk):
    store = MemoryStore()
    before = FakePricer()
    orders, desk = await open_desk(store, before)
    for proposal in ("P1", "P2", "P3"):
        await desk.submit("ORD", proposal, f"s-{proposal}")
    before.settle("ORD/P1", "q1")
    await anext(orders.watch("ORD"))
    await stop(orders, desk)

    after = FakePricer()
    orders, desk = await open_desk(store, after)
    assert desk.in_flight == 2
    assert sorted(await after.following(2)) == ["ORD/P2", "ORD/P3"]
    assert after.submitted == []
    after.settle("ORD/P3", "q3")
    after.settle("ORD/P2", None, "declined")
    await desk.complete("ORD")
    logged = await events(orders, "ORD")
    assert [sequence for sequence, _, _ in logged] == [1, 2, 3, 4]
    assert count_by_proposal(logged) == {"P1": 1, "P2": 1, "P3": 1, "ORD": 1}
    await stop(orders, desk)

    # Priced once: a third start finds nothing in flight.
    _, desk = await open_desk(store, FakePricer())
    assert desk.in_flight == 0


async def test_repeats_and_request_id_conflicts_are_recognised_after_a_restart(open_desk):
    store = MemoryStore()
    orders, desk = await open_desk(store, FakePricer())
    assert await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a") is False
    # A repeat under a new request id: that id too is kept.
    assert await desk.submit("ORD", "P1", "s", request_id="r2", fingerprint="a") is True
    await stop(orders, desk)

    after = FakePricer()
    orders, desk = await open_desk(store, after)
    assert await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a") is True
    assert await desk.submit("ORD", "P1", "s") is True
    with pytest.raises(RequestConflictError):
        await desk.submit("ORD", "P2", "s", request_id="r1", fingerprint="a")
    with pytest.raises(RequestConflictError):
        await desk.submit("ORD", "P1", "s", request_id="r2", fingerprint="changed")
    with pytest.raises(RequestConflictError):
        await desk.submit("OTHER", "P1", "s", request_id="r2", fingerprint="a")
    assert after.submitted == []

    # A repeat is answered alike after completion; removing the order deletes
    # its records, after which its request ids are free again.
    after.settle("ORD/P1", "q")
    await desk.complete("ORD")
    assert await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a") is True
    with pytest.raises(InvalidStateError):
        await desk.submit("ORD", "P9", "s")
    assert await orders.remove_order_queue("ORD") is True
    assert await store.load("proposals") == []
    assert await store.load("proposal_requests") == []
    assert await desk.submit("NEW", "P1", "s", request_id="r1", fingerprint="b") is False


async def test_concurrent_repeats_price_once_and_answer_after_the_commit(open_desk):
    store = ScriptedStore()
    pricer = FakePricer()
    _, desk = await open_desk(store, pricer)
    store.gate = asyncio.Event()
    store.entered.clear()
    # Half under one request id, half with none: each kind alone must be one proposal.
    submits = [
        asyncio.create_task(desk.submit("ORD", "P1", "s", request_id="r", fingerprint="a"))
        for _ in range(50)
    ] + [asyncio.create_task(desk.submit("ORD", "P1", "s")) for _ in range(50)]
    await store.entered.wait()
    assert not any(task.done() for task in submits)
    store.gate.set()
    answers = await asyncio.gather(*submits)
    assert answers.count(False) == 1
    assert pricer.submitted == [("ORD", "P1", "s")]
    assert len(await store.load("proposals")) == 1


async def test_an_acceptance_the_store_refuses_accepts_nothing(open_desk):
    store = ScriptedStore()
    pricer = FakePricer()
    _, desk = await open_desk(store, pricer)
    store.refuse = in_collection("proposals")
    with pytest.raises(StoreError):
        await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a")
    assert desk.in_flight == 0
    assert await store.load("proposal_requests") == []
    store.refuse = lambda changes: False
    # Not a repeat: the proposal and its request id are accepted now.
    assert await desk.submit("ORD", "P1", "s", request_id="r1", fingerprint="a") is False
    assert desk.in_flight == 1


async def test_cancelling_the_caller_does_not_stop_an_acceptance(open_desk):
    store = ScriptedStore()
    pricer = FakePricer()
    orders, desk = await open_desk(store, pricer)
    store.gate = asyncio.Event()
    store.entered.clear()
    submitting = asyncio.create_task(desk.submit("ORD", "P1", "s"))
    await store.entered.wait()
    submitting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await submitting
    store.gate.set()
    assert await desk.submit("ORD", "P1", "s") is True
    assert await pricer.following(1) == ["ORD/P1"]
    pricer.settle("ORD/P1", "q")
    await desk.complete("ORD")
    assert [text for _, _, text in await events(orders, "ORD")] == ["P1/New", "ORD/Completed"]


async def test_an_outcome_the_store_refuses_is_recorded_once_it_takes_it(open_desk):
    store = ScriptedStore()
    pricer = FakePricer()
    refused: list[object] = []

    def refuse_the_first_event(changes) -> bool:
        if in_collection("order_events")(changes) and not refused:
            refused.append(changes)
            return True
        return False

    orders, desk = await open_desk(store, pricer, store_retry=Backoff(0.001, 0.001))
    store.refuse = refuse_the_first_event
    await desk.submit("ORD", "P1", "s")
    pricer.settle("ORD/P1", "q")
    await desk.complete("ORD")
    assert len(refused) == 1
    assert [text for _, _, text in await events(orders, "ORD")] == ["P1/New", "ORD/Completed"]


async def test_one_request_id_sent_for_two_proposals_at_once_accepts_one(open_desk):
    store = ScriptedStore()
    pricer = FakePricer()
    _, desk = await open_desk(store, pricer)
    store.gate = asyncio.Event()
    first = asyncio.create_task(desk.submit("ORD", "P1", "s", request_id="r", fingerprint="a"))
    second = asyncio.create_task(desk.submit("ORD", "P2", "s", request_id="r", fingerprint="b"))
    await store.entered.wait()
    store.gate.set()
    answers = await asyncio.gather(first, second, return_exceptions=True)
    assert answers[0] is False
    assert isinstance(answers[1], RequestConflictError)
    assert pricer.submitted == [("ORD", "P1", "s")]


async def test_an_order_takes_at_most_its_limit_of_proposals_even_at_once(orders, pricer):
    desk = ProposalDesk(orders, pricer, max_proposals=3)
    answers = await asyncio.gather(
        *(desk.submit("ORD", f"P{n}", "s") for n in range(10)), return_exceptions=True
    )
    assert answers.count(False) == 3
    refusals = [a for a in answers if isinstance(a, OrderFullError)]
    assert len(refusals) == 7
    assert refusals[0].state == "full"
    assert "holds 3 proposals, the most an order may hold" in str(refusals[0])
    accepted = [f"P{n}" for n, answer in enumerate(answers) if answer is False]
    # A repeat of an accepted proposal is still a repeat, and other orders are not full.
    assert await desk.submit("ORD", accepted[0], "s") is True
    assert await desk.submit("OTHER", "P1", "s") is False
    for proposal in accepted:
        pricer.settle(f"ORD/{proposal}", "q")
    pricer.settle("OTHER/P1", "q")
    await desk.complete("ORD")
    await desk.stop()


async def test_a_long_failure_is_cut_to_the_kept_length(orders, pricer, desk):
    await desk.submit("ORD", "P1", "s")
    pricer.settle("ORD/P1", None, "x" * 5000)
    await desk.complete("ORD")
    failed = orders.get_order_queue("ORD").events_after(0)[0]
    assert len(failed.error) == ERROR_MAX_CHARS
    assert failed.error.endswith("…")


# -- completing while proposals are in flight -------------------------------------


def texts_and_errors(orders: OrderQueueManager[str], order: str) -> list[tuple[str, str]]:
    return [(e.text, e.error) for e in orders.get_order_queue(order).events_after(0)]


async def test_completion_withdraws_a_proposal_in_review_at_once(orders, pricer):
    # A completion_wait no test would outlast: only the review can end the wait.
    desk = ProposalDesk(orders, pricer, completion_wait=3600.0)
    await desk.submit("ORD", "REVIEW", "s1")
    await desk.submit("ORD", "AUTO", "s2")
    await pricer.following(2)
    pricer.in_review["ORD/REVIEW"]()
    completing = asyncio.create_task(desk.complete("ORD"))
    pricer.settle("ORD/AUTO", "quote")
    done = await completing
    assert done.kind is OrderEventKind.ORDER_COMPLETED
    logged = texts_and_errors(orders, "ORD")
    assert [text for text, _ in logged] == ["AUTO/New", "REVIEW/Failed", "ORD/Completed"]
    assert logged[1][1].startswith("withdrawn: the order was completed while its quote")
    assert "awaiting a human review" in logged[1][1]
    assert await pricer.withdrawals(1) == ["ORD/REVIEW"]
    # The desk stopped following the quote: no second event can come of it.
    assert pricer.outcomes["ORD/REVIEW"].cancelled()
    assert await desk.complete("ORD") == done
    assert len(orders.get_order_queue("ORD")) == 3
    await desk.stop()


async def test_completion_withdraws_what_is_not_priced_within_the_wait(orders, pricer):
    desk = ProposalDesk(orders, pricer, completion_wait=0.0)
    await desk.submit("ORD", "SLOW", "s")
    await pricer.following(1)
    await desk.complete("ORD")
    logged = texts_and_errors(orders, "ORD")
    assert [text for text, _ in logged] == ["SLOW/Failed", "ORD/Completed"]
    assert "not priced within 0s" in logged[0][1]
    assert await pricer.withdrawals(1) == ["ORD/SLOW"]
    assert desk.in_flight == 0
    await desk.stop()


async def test_an_outcome_racing_the_withdrawal_gives_one_event(orders, pricer):
    desk = ProposalDesk(orders, pricer, completion_wait=0.0)
    await desk.submit("ORD", "P1", "s")
    await pricer.following(1)
    pricer.settle("ORD/P1", "q")
    await desk.complete("ORD")
    texts = [text for text, _ in texts_and_errors(orders, "ORD")]
    assert texts in (["P1/New", "ORD/Completed"], ["P1/Failed", "ORD/Completed"])
    await desk.stop()


async def test_a_completion_goes_on_when_its_caller_gives_up(orders, pricer):
    desk = ProposalDesk(orders, pricer, completion_wait=3600.0)
    await desk.submit("ORD", "P1", "s")
    caller = asyncio.create_task(desk.complete("ORD"))
    await pricer.following(1)
    # Refused at once, not only once the completion is appended.
    with pytest.raises(InvalidStateError):
        await desk.submit("ORD", "P2", "s")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    pricer.settle("ORD/P1", "q")
    completed = [e async for e in orders.watch("ORD")][-1]
    assert completed.kind is OrderEventKind.ORDER_COMPLETED
    await desk.stop()


async def test_a_completion_with_nothing_in_flight_commits_no_request(open_desk):
    store = MemoryStore()
    _, desk = await open_desk(store, FakePricer())
    await desk.complete("EMPTY")
    assert await store.load("order_completions") == []


async def test_a_completion_asked_for_before_a_restart_is_finished_after_it(open_desk):
    store, now = MemoryStore(), [1000.0]
    before = FakePricer()
    orders, desk = await open_desk(store, before, completion_wait=60.0, clock=lambda: now[0])
    await desk.submit("ORD", "P1", "s")
    await desk.submit("ORD", "P2", "s")
    waiting = asyncio.create_task(desk.complete("ORD"))
    await before.following(2)
    before.settle("ORD/P1", "q1")
    await anext(orders.watch("ORD"))
    assert [key for key, _ in await store.load("order_completions")] == ["ORD"]
    await stop(orders, desk)
    with pytest.raises(asyncio.CancelledError):
        await waiting

    # Restarted past the wait asked for: the proposal still unpriced is withdrawn.
    now[0] = 1060.0
    after = FakePricer()
    orders, desk = await open_desk(store, after, completion_wait=60.0, clock=lambda: now[0])
    with pytest.raises(InvalidStateError):
        await desk.submit("ORD", "P3", "s")
    logged = [(e.text, e.error) async for e in orders.watch("ORD")]
    assert [text for text, _ in logged] == ["P1/New", "P2/Failed", "ORD/Completed"]
    assert "not priced within 60s" in logged[1][1]
    assert await after.withdrawals(1) == ["ORD/P2"]
    assert await orders.remove_order_queue("ORD")
    assert await store.load("order_completions") == []
