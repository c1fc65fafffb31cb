"""The console in headless Chromium (Playwright), against the three services and
the console as real processes: what a person does with it, checked on the page.

One set of processes and one browser serve the whole module; each test has a
page of its own. Every wait is a Playwright expectation with a deadline.
Screenshots of the main views go to test-artifacts/console/.
"""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from console.support import (
    ARTIFACTS,
    Stack,
    browser_or_skip,
    closed_address,
    running_console,
    running_stack,
)
from playwright.async_api import Browser, Locator, Page, async_playwright, expect
from support.service_process import running_service

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

#: How long the page may take to show what a stream brings: generous for a shared machine.
SHOWN_WITHIN_MS = 15_000
RPC_PATH = re.compile(r"/quoteflow\.\w+\.v1\.(\w+)/(\w+)$")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = browser_or_skip()
    async with async_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root, which CI is.
        launched = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(browser: Browser) -> AsyncIterator[Stack]:
    # browser first: with no Chromium the module skips before starting anything.
    retries = ("--max-retries", "1", "--backoff-base", "0.05", "--backoff-cap", "0.1")
    async with running_stack("--workers", "2", *retries) as started:
        yield started


class Calls:
    """The RPCs the page made, by method name, in order."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        #: The same, as Service/Method.
        self.rpcs: list[str] = []

    def record(self, url: str) -> None:
        match = RPC_PATH.search(url)
        if match:
            self.methods.append(match.group(2))
            self.rpcs.append(f"{match.group(1)}/{match.group(2)}")


@dataclass
class Tab:
    page: Page
    calls: Calls


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, stack: Stack) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    calls = Calls()
    opened.on("request", lambda request: calls.record(request.url))
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield Tab(opened, calls)
    await context.close()
    assert errors == [], f"the page threw: {errors}"


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def fill_submission(page: Page, name: str, *, coverage: str = "250000") -> None:
    await shown(page).get_by_label("Applicant's full name").fill(name)
    await shown(page).get_by_label("Property address").fill("12 St James's Square, London")
    await shown(page).get_by_label("Coverage (whole currency units)").fill(coverage)


async def submit_and_follow(page: Page, stack: Stack, name: str, **options: str) -> str:
    """Submit a quote through the form and return its id, once the page follows it."""
    await page.goto(f"{stack.url}/#/submit")
    await fill_submission(page, name, **options)
    await shown(page).get_by_role("button", name="Submit").click()
    await expect(page).to_have_url(re.compile(r"#/follow/\w+"), timeout=SHOWN_WITHIN_MS)
    return page.url.rpartition("/")[2]


def shown(page: Page) -> Locator:
    """The view on show: the hidden views have fields of the same names."""
    return page.locator("main > section:not([hidden])")


def timeline(page: Page, status: str) -> Locator:
    return page.locator(f"#timeline li[data-status={status}]")


async def test_an_async_quote_shows_its_status_change_live_without_polling(tab, stack):
    page, calls = tab.page, tab.calls
    await page.goto(f"{stack.url}/#/submit")
    # Marks this document: a reload would lose it.
    await page.evaluate("window.quoteflowMark = 42")
    await fill_submission(page, "Ada Async")
    await shown(page).get_by_role("button", name="Submit").click()

    await expect(timeline(page, "COMPLETED")).to_have_count(1, timeout=SHOWN_WITHIN_MS)
    # A worker takes it within the pace, so it was seen PROCESSING before COMPLETED.
    statuses = await page.locator("#timeline li").evaluate_all(
        "items => items.map(item => item.dataset.status)"
    )
    assert statuses[-1] == "COMPLETED"
    assert "PROCESSING" in statuses, statuses
    await expect(page.locator("#annual-premium")).to_have_text(re.compile(r"\d"))
    await expect(page.locator("#factors tbody tr").first).to_be_visible()
    assert await page.evaluate("window.quoteflowMark") == 42, "the page reloaded"
    # One stream brought every change: no GetMessage, no repeated call.
    assert calls.methods == ["SubmitQuote", "WatchMessage"]
    await screenshot(page, "follow")


async def test_a_sync_quote_runs_now_and_shows_its_underwriting(tab, stack):
    page, calls = tab.page, tab.calls
    await page.goto(f"{stack.url}/#/submit")
    await shown(page).get_by_label("Run now (sync: RunQuote)").check()
    await shown(page).get_by_label("Step-by-step underwriting (use_agentic)").check()
    await shown(page).get_by_label("Priority").select_option(label="Urgent")
    await fill_submission(page, "Sid Sync")
    await shown(page).get_by_role("button", name="Submit").click()

    await expect(timeline(page, "COMPLETED")).to_have_count(1, timeout=SHOWN_WITHIN_MS)
    # Run inline: final when the page first sees it.
    await expect(page.locator("#timeline li")).to_have_count(1)
    await expect(page.locator("#steps li")).to_have_count(4)
    await expect(page.locator("#message-detail")).to_contain_text("urgent")
    assert calls.methods[0] == "RunQuote"
    assert "SubmitQuote" not in calls.methods


async def test_field_violations_show_next_to_their_fields(tab, stack):
    page = tab.page
    await page.goto(f"{stack.url}/#/submit")
    await fill_submission(page, "", coverage="0")
    await shown(page).get_by_role("button", name="Submit").click()

    await expect(page.locator("#applicant-name-error")).to_contain_text("required")
    await expect(page.locator("#coverage-error")).to_contain_text("between 1 and 50,000,000")
    await expect(shown(page).get_by_label("Applicant's full name")).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(page.locator("#address-error")).to_be_empty()
    assert "#/submit" in page.url
    await screenshot(page, "submit")


async def test_a_quote_awaiting_review_is_approved_with_reviewer_and_note(tab, stack):
    page = tab.page
    await submit_and_follow(page, stack, "Rita Review", coverage="3000000")
    await expect(timeline(page, "AWAITING_REVIEW")).to_have_count(1, timeout=SHOWN_WITHIN_MS)
    await shown(page).get_by_label("Reviewer").fill("Grace Hopper")
    await shown(page).get_by_label("Note").fill("large but sound")
    await shown(page).get_by_role("button", name="Approve").click()

    await expect(timeline(page, "COMPLETED")).to_have_count(1, timeout=SHOWN_WITHIN_MS)
    review = await page.locator("#review").inner_text()
    assert "approved" in review
    assert "Grace Hopper" in review
    assert "large but sound" in review


async def test_a_dead_letter_is_redriven_and_followed_again(tab, stack):
    page = tab.page
    await submit_and_follow(page, stack, "fail Fred")
    await expect(timeline(page, "FAILED")).to_have_count(1, timeout=SHOWN_WITHIN_MS)
    await expect(page.locator("#message-detail")).to_contain_text("scripted failure of fail Fred")
    await shown(page).get_by_role("button", name="Redrive").click()

    # Back to PENDING, then it fails again (it always does), seen on the same page.
    await expect(timeline(page, "FAILED")).to_have_count(2, timeout=SHOWN_WITHIN_MS)
    assert await timeline(page, "PENDING").count() >= 1

    # Dead again: this time every matching dead letter is redriven from the list,
    # and this one is the only one there is.
    await page.get_by_role("link", name="Messages").click()
    await shown(page).get_by_label("Dead letters only").check()
    await shown(page).get_by_role("button", name="List", exact=True).click()
    await expect(page.locator("#messages-table tbody tr")).to_have_count(1)
    await shown(page).get_by_role("button", name="Redrive every matching dead letter").click()
    outcome = page.locator("#messages-outcome")
    await expect(outcome).to_have_text("Redrove 1 dead letter.", timeout=SHOWN_WITHIN_MS)


async def test_a_processing_message_is_cancelled_from_the_list(tab, stack):
    page = tab.page
    message_id = await submit_and_follow(page, stack, "slow Sam")
    await expect(timeline(page, "PROCESSING")).to_have_count(1, timeout=SHOWN_WITHIN_MS)

    await page.get_by_role("link", name="Messages").click()
    await shown(page).get_by_label("Status").select_option(label="processing")
    await shown(page).get_by_role("button", name="List", exact=True).click()
    row = page.locator(f'#messages-table tr[data-id="{message_id}"]')
    await expect(row).to_be_visible(timeout=SHOWN_WITHIN_MS)
    await screenshot(page, "messages")
    await row.get_by_role("button", name=f"Cancel {message_id}").click()

    await expect(page.locator("#messages-outcome")).to_contain_text(f"Cancelled {message_id}")
    await expect(row).to_have_count(0)  # no longer processing
    await shown(page).get_by_label("Status").select_option(label="cancelled")
    await shown(page).get_by_role("button", name="List", exact=True).click()
    await expect(row).to_contain_text("cancelled", timeout=SHOWN_WITHIN_MS)
    assert await row.get_by_role("button", name=f"Cancel {message_id}").count() == 0


async def test_an_order_is_placed_watched_and_completed(tab, stack):
    page, calls = tab.page, tab.calls
    await page.goto(f"{stack.url}/#/orders")
    await shown(page).get_by_label("Order id").fill("order-browser-1")
    await shown(page).get_by_role("button", name="Place order").click()
    await expect(page.locator("#task-id")).to_be_visible(timeout=SHOWN_WITHIN_MS)
    await shown(page).get_by_role("button", name="Submit proposal").click()
    events = page.locator("#order-events li")
    await expect(events.and_(page.locator("[data-kind=PROPOSAL_NEW]"))).to_have_count(
        1, timeout=SHOWN_WITHIN_MS
    )
    await shown(page).get_by_role("button", name="Complete order").click()

    completed = page.locator("#order-events li[data-kind=ORDER_COMPLETED]")
    await expect(completed).to_have_attribute("data-sequence", "2", timeout=SHOWN_WITHIN_MS)
    await expect(events.first).to_have_attribute("data-sequence", "1")
    await expect(page.locator("#task-status")).to_have_text("succeeded", timeout=SHOWN_WITHIN_MS)
    await expect(page.locator("#task-proposals li")).to_contain_text("PROP1")
    assert calls.methods.count("WatchOrder") == 1
    await screenshot(page, "orders")


async def test_the_dashboard_counts_move(tab, stack):
    page, calls = tab.page, tab.calls
    await page.goto(f"{stack.url}/#/dashboard")
    completed = page.locator('#status-counts td[data-count="completed"]')
    await expect(completed).to_have_text(re.compile(r"^\d+$"), timeout=SHOWN_WITHIN_MS)
    before = int(await completed.inner_text())
    async with grpc.aio.insecure_channel(stack.quote.address) as channel:
        stub = quote_grpc.QuoteServiceStub(channel)
        submission = quote_pb.Submission(
            applicant_name="Dana Dashboard", address="1 Chart Row", coverage_amount=120_000
        )
        await stub.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=submission))

    await expect(completed).not_to_have_text(str(before), timeout=SHOWN_WITHIN_MS)
    assert int(await completed.inner_text()) > before
    await expect(page.locator("#processor-stats")).to_be_visible()
    await expect(page.locator("#requestor-stats")).to_be_visible()
    await expect(page.locator("#queue-chart svg polyline")).to_have_count(2)
    # The quote queue's counts were pushed by one stream, never read again.
    assert calls.methods.count("WatchStats") == 1
    assert "QuoteService/GetStats" not in calls.rpcs
    assert "ProcessorService/GetStats" in calls.rpcs
    await screenshot(page, "dashboard")


async def test_a_keyed_delayed_quote_shows_its_key_and_schedule(tab, stack):
    page = tab.page
    await page.goto(f"{stack.url}/#/submit")
    await fill_submission(page, "Kay Keyed")
    await shown(page).get_by_label("Fairness key (tenant or broker)").fill("broker-7")
    await shown(page).get_by_label("Delay (seconds)").fill("3600")
    await shown(page).get_by_role("button", name="Submit").click()
    await expect(page).to_have_url(re.compile(r"#/follow/\w+"), timeout=SHOWN_WITHIN_MS)
    await expect(page.locator("#message-fairness-key")).to_have_text("broker-7")
    await expect(page.locator("#message-schedule-time")).to_have_text(re.compile(r"\d"))
    await expect(page.locator("#message-status")).to_contain_text("pending")
    message_id = page.url.rpartition("/")[2]
    async with grpc.aio.insecure_channel(stack.quote.address) as channel:
        stub = quote_grpc.QuoteServiceStub(channel)
        held = await stub.GetMessage(quote_pb.GetMessageRequest(id=message_id))
        assert held.message.fairness_key == "broker-7"
        assert held.message.schedule_time.seconds > held.message.created_at.seconds + 3500
        await stub.CancelMessage(quote_pb.CancelMessageRequest(id=message_id))


async def test_the_dashboard_sets_a_rate_limit(tab, stack):
    page, calls = tab.page, tab.calls
    await page.goto(f"{stack.url}/#/dashboard")
    form = page.locator("#rate-limit-form")
    await form.get_by_label("Fairness key (empty: messages without one)").fill("slow-tenant")
    await form.get_by_label("Per second (0 lifts the limit)").fill("2.5")
    await form.get_by_role("button", name="Set limit").click()
    await expect(page.locator("#rate-limit-outcome")).to_have_text(
        "Key slow-tenant: at most 2.5 a second, burst 3.", timeout=SHOWN_WITHIN_MS
    )
    assert "SetRateLimit" in calls.methods
    await form.get_by_label("Per second (0 lifts the limit)").fill("-1")
    await form.get_by_role("button", name="Set limit").click()
    await expect(page.locator("#rate-limit-outcome")).to_contain_text("per_second")


async def test_the_page_fits_a_phone_width(tab, stack):
    page = tab.page
    await page.set_viewport_size({"width": 390, "height": 844})
    for view in ("submit", "dashboard", "messages", "orders"):
        await page.goto(f"{stack.url}/#/{view}")
        await expect(page.locator("section:not([hidden]) h2")).to_be_visible()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{view} is {overflow} px wider than a phone"


async def test_a_full_queue_shows_its_retry_hint(browser):
    # A queue of one, with no worker to empty it, behind a console of its own.
    dead = closed_address()
    full_queue = ("--store", "memory", "--workers", "0", "--max-size", "1")
    async with (
        running_service("quote_svc", *full_queue) as quote,
        running_console(quote=quote.address, processor=dead, requestor=dead) as console,
    ):
        context = await browser.new_context()
        page = await context.new_page()
        for name in ("First In", "Second Out"):
            await page.goto(f"http://{console.address}/#/submit")
            await fill_submission(page, name)
            await shown(page).get_by_role("button", name="Submit").click()
            if name == "First In":
                await expect(page).to_have_url(re.compile(r"#/follow/\w+"), timeout=SHOWN_WITHIN_MS)
        error = page.locator("#submit-error")
        await expect(error).to_contain_text("queue is full", timeout=SHOWN_WITHIN_MS)
        shown_text = await error.inner_text()
        await context.close()
    assert re.search(r"Try again in [\d.]+ (ms|s)\.", shown_text), shown_text


async def test_broken_streams_reconnect_and_resume_when_the_console_is_back(browser, stack):
    # A console of its own on a port the test chooses, so that a second one can
    # take its place there, as a restarted console (or another replica) would.
    port = closed_address().rpartition(":")[2]
    addresses = {
        "quote": stack.quote.address,
        "processor": stack.processor.address,
        "requestor": stack.requestor.address,
    }
    context = await browser.new_context()
    follower, orders = await context.new_page(), await context.new_page()
    async with grpc.aio.insecure_channel(stack.quote.address) as channel:
        quote = quote_grpc.QuoteServiceStub(channel)
        slow = quote_pb.Submission(applicant_name="slow Stream", address="1 Outage Way")
        slow.coverage_amount = 150_000
        queued = await quote.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=slow))
        message_id = queued.message.id
        async with running_console("--port", port, **addresses) as first:
            url = f"http://{first.address}"
            await follower.goto(f"{url}/#/follow/{message_id}")
            await expect(timeline(follower, "PROCESSING")).to_have_count(1, timeout=SHOWN_WITHIN_MS)
            await orders.goto(f"{url}/#/orders")
            await shown(orders).get_by_label("Order id").fill("order-outage")
            await shown(orders).get_by_role("button", name="Submit proposal").click()
            await shown(orders).get_by_role("button", name="Watch order").click()
            events = orders.locator("#order-events li")
            await expect(events).to_have_count(1, timeout=SHOWN_WITHIN_MS)
        # The console drained: each page's stream ended, and each page says so.
        await expect(follower.locator("#follow-connection")).to_contain_text(
            re.compile("reconnecting", re.IGNORECASE)
        )
        await expect(orders.locator("#order-connection")).to_contain_text(
            re.compile("resuming after event 1", re.IGNORECASE)
        )
        async with running_console("--port", port, **addresses):
            await shown(orders).get_by_role("button", name="Complete order").click()
            await quote.CancelMessage(quote_pb.CancelMessageRequest(id=message_id))
            # Each page reopened its stream: the message read again, the order
            # resumed after its last sequence, with nothing missed or repeated.
            await expect(timeline(follower, "CANCELLED")).to_have_count(1, timeout=SHOWN_WITHIN_MS)
            await expect(events).to_have_count(2, timeout=SHOWN_WITHIN_MS)
            sequences = await events.evaluate_all("items => items.map(i => i.dataset.sequence)")
    await context.close()
    assert sequences == ["1", "2"]


async def test_an_unreachable_service_is_said_in_words(browser):
    # A console whose services are all where nothing listens.
    dead = closed_address()
    async with running_console(quote=dead, processor=dead, requestor=dead) as console:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"http://{console.address}/#/dashboard")
        await expect(page.locator("#quote-stats")).to_contain_text(
            f"quote service unreachable at {dead}", timeout=SHOWN_WITHIN_MS
        )
        others = await page.locator("#other-stats").inner_text()
        await context.close()
    assert f"processor service unreachable at {dead}" in others
    assert f"requestor service unreachable at {dead}" in others


def carries_token(request) -> bool:
    """A call of the contract with the token the test gives the page."""
    authorization = request.headers.get("authorization")
    return RPC_PATH.search(request.url) is not None and authorization == "Bearer a.b.c"


async def test_a_token_given_in_the_header_goes_with_every_call(tab, stack):
    page = tab.page
    await page.goto(f"{stack.url}/#/dashboard")
    await page.get_by_label("Access token").fill("a.b.c")
    async with page.expect_request(
        carries_token,
        timeout=SHOWN_WITHIN_MS,
    ):
        await page.get_by_role("button", name="Use").click()
    # Kept for the tab: a reload calls with it still.
    async with page.expect_request(
        carries_token,
        timeout=SHOWN_WITHIN_MS,
    ):
        await page.reload()
