"""ListMessages cuts its pages by serialized size, so a page of the largest
messages still arrives through a client keeping gRPC's default 4 MiB limit."""

import asyncio

import pytest
from support.quote_harness import QuoteHarness, submission

from quote_svc import servicer
from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.submission_limits import (
    ADDRESS_MAX_CHARS,
    APPLICANT_NAME_MAX_CHARS,
    COVERAGE_MAX,
    PRIOR_CLAIMS_MAX,
)

GRPC_DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024
ID_MAX_CHARS = 128
REVIEWER_MAX_CHARS = 200
NOTE_MAX_CHARS = 2000
# A 4-byte UTF-8 letter (MATHEMATICAL FRAKTUR CAPITAL A): the most bytes a character can take.
WIDE = "\U0001d504"
# 320 reviewed messages of the largest kind make one count-based page of
# about 4.9 MB, past the default limit; a few more leave a margin.
MESSAGES = 330


def _wide(prefix: str, chars: int) -> str:
    return prefix + WIDE * (chars - len(prefix))


def _largest_submission(i: int) -> pb.SubmitQuoteRequest:
    # Coverage above 2,000,000 holds the quote AWAITING_REVIEW, where it waits
    # for the review that makes it the largest a message gets.
    return pb.SubmitQuoteRequest(
        submission=pb.Submission(
            applicant_name=_wide(f"n{i}", APPLICANT_NAME_MAX_CHARS),
            address=_wide(f"a{i}", ADDRESS_MAX_CHARS),
            coverage_amount=COVERAGE_MAX,
            property_type=pb.PROPERTY_TYPE_COMMERCIAL,
            year_built=1800,
            prior_claims=PRIOR_CLAIMS_MAX,
        ),
        use_agentic=True,
        request_id=_wide(f"r{i}-", ID_MAX_CHARS),
    )


async def _await_review(quote: QuoteHarness, message_id: str) -> None:
    async for response in quote.stub.WatchMessage(pb.WatchMessageRequest(id=message_id)):
        if response.message.status == pb.MESSAGE_STATUS_AWAITING_REVIEW:
            return
    raise AssertionError(f"{message_id} ended without awaiting review")


async def _fill_with_reviewed(quote: QuoteHarness) -> list[str]:
    submitted = await asyncio.gather(
        *(quote.stub.SubmitQuote(_largest_submission(i)) for i in range(MESSAGES))
    )
    ids = [s.message.id for s in submitted]
    await asyncio.gather(*(_await_review(quote, message_id) for message_id in ids))
    reviewed = await asyncio.gather(
        *(
            quote.stub.ReviewQuote(
                pb.ReviewQuoteRequest(
                    id=message_id,
                    decision=pb.REVIEW_DECISION_APPROVE,
                    reviewer=_wide("rv", REVIEWER_MAX_CHARS),
                    note=_wide("note", NOTE_MAX_CHARS),
                )
            )
            for message_id in ids
        )
    )
    assert {r.message.status for r in reviewed} == {pb.MESSAGE_STATUS_COMPLETED}
    return ids


async def _list_all(quote: QuoteHarness, **filters: object) -> list[pb.ListMessagesResponse]:
    pages: list[pb.ListMessagesResponse] = []
    token = ""
    while True:
        # The harness channel keeps gRPC's default receive limit of 4 MiB.
        page = await quote.stub.ListMessages(
            pb.ListMessagesRequest(page_size=1000, page_token=token, **filters)  # type: ignore[arg-type]
        )
        pages.append(page)
        token = page.next_page_token
        if not token:
            return pages
        assert len(pages) < MESSAGES, "listing does not advance"


def _assert_pages_cover_exactly(pages: list[pb.ListMessagesResponse], ids: list[str]) -> None:
    assert len(pages) > 1
    assert all(0 < page.ByteSize() <= GRPC_DEFAULT_MAX_RECEIVE for page in pages)
    assert all(page.messages for page in pages)
    listed = [m.id for page in pages for m in page.messages]
    # Submitted concurrently, the messages were created in no known order.
    assert len(listed) == len(set(listed)), "a message was listed twice"
    assert set(listed) == set(ids)


async def test_a_listing_of_the_largest_messages_arrives_in_pages_under_4_mib(
    quote: QuoteHarness,
) -> None:
    ids = await _fill_with_reviewed(quote)
    pages = await _list_all(quote)
    _assert_pages_cover_exactly(pages, ids)
    filtered = await _list_all(quote, status=pb.MESSAGE_STATUS_COMPLETED)
    _assert_pages_cover_exactly(filtered, ids)


async def _watch_to_end(quote: QuoteHarness, message_id: str) -> pb.QueueMessage:
    last: pb.QueueMessage | None = None
    async for response in quote.stub.WatchMessage(pb.WatchMessageRequest(id=message_id)):
        last = response.message
    assert last is not None
    return last


async def test_the_dead_letter_listing_is_cut_by_bytes_too(
    quote: QuoteHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of a few messages stands for 4 MiB, so a small queue needs pages.
    monkeypatch.setattr(servicer, "MAX_PAGE_BYTES", 1_000)
    dead: list[str] = []
    kept: list[str] = []
    for i in range(12):
        name = f"dead{i}" if i % 3 else f"kept{i}"
        if i % 3:
            quote.rating.failures[name] = 1
        request = pb.SubmitQuoteRequest(submission=submission(name), max_retries=0)
        message_id = (await quote.stub.SubmitQuote(request)).message.id
        (dead if i % 3 else kept).append(message_id)
        await _watch_to_end(quote, message_id)
    pages = await _list_all(quote, dead_lettered_only=True)
    assert len(pages) > 1
    assert all(len(page.messages) > 0 for page in pages)
    assert any(len(page.messages) > 1 for page in pages)
    # Created one after another, so creation order is known here.
    assert [m.id for page in pages for m in page.messages] == dead
    for page in pages[:-1]:
        entries = sum(servicer._entry_bytes(m.ByteSize()) for m in page.messages)
        token = len(page.next_page_token.encode())
        # The accounting is exact: the page is its entries and its token field.
        assert page.ByteSize() == entries + 1 + servicer._varint_bytes(token) + token
        assert entries <= 1_000


async def test_a_message_larger_than_the_budget_still_gets_a_page_of_its_own(
    quote: QuoteHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servicer, "MAX_PAGE_BYTES", 1)
    ids = []
    for i in range(3):
        request = pb.SubmitQuoteRequest(submission=submission(f"one{i}"))
        ids.append((await quote.stub.SubmitQuote(request)).message.id)
        await _watch_to_end(quote, ids[-1])
    pages = await _list_all(quote)
    assert [[m.id for m in page.messages] for page in pages] == [[i] for i in ids]
