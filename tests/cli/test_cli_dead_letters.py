"""quoteflow dead-letters list | redrive, against a quote service whose rating the
test makes fail (max_retries 0: one failed attempt dead-letters a quote)."""

from support.quote_harness import submission

from quoteflow.quote.v1 import quote_service_pb2 as pb


async def dead_letter(quote, name: str) -> str:
    quote.rating.failures[name] = 1
    queued = await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission(name)))
    last: pb.QueueMessage | None = None
    async for state in quote.stub.WatchMessage(pb.WatchMessageRequest(id=queued.message.id)):
        last = state.message
    assert last is not None and last.dead_lettered, last
    return last.id


async def test_list_follows_every_page(cli, quote):
    ids = [await dead_letter(quote, name) for name in ("D1", "D2", "D3")]
    listed = await cli("--json", "dead-letters", "list", "--page-size", "1")
    assert listed.code == 0, listed.stderr
    assert [m["id"] for m in listed.json()["messages"]] == ids
    assert all(m["dead_lettered"] for m in listed.json()["messages"])
    for_people = await cli("dead-letters", "list")
    assert "3 dead letters" in for_people.stdout
    assert all(quote_id in for_people.stdout for quote_id in ids)  # unbroken, to be copied
    assert "rating" in for_people.stdout


async def test_redrive_one_puts_it_back_and_it_is_priced(cli, quote):
    quote_id = await dead_letter(quote, "D1")
    redriven = await cli("--json", "dead-letters", "redrive", quote_id)
    assert redriven.code == 0, redriven.stderr
    [message] = redriven.json()["redriven"]
    assert message["status"] == "MESSAGE_STATUS_PENDING"
    assert message["retry_count"] == 0
    watched = await cli("quote", "watch", quote_id)
    assert watched.code == 0
    assert "completed" in watched.stdout


async def test_redrive_all_empties_the_dead_letter_queue(cli, quote):
    for name in ("D1", "D2"):
        await dead_letter(quote, name)
    redriven = await cli("dead-letters", "redrive", "--all")
    assert redriven.code == 0, redriven.stderr
    assert "2 of 2 redriven" in redriven.stdout
    listed = await cli("--json", "dead-letters", "list")
    assert listed.json()["messages"] == []


async def test_redrive_reports_each_quote_it_could_not_redrive(cli, quote):
    quote_id = await dead_letter(quote, "D1")
    result = await cli("--json", "dead-letters", "redrive", "nope", quote_id)
    assert result.code == 3  # the first failure's
    report = result.json()
    assert [m["id"] for m in report["redriven"]] == [quote_id]
    assert report["failed"][0]["id"] == "nope"
    assert report["failed"][0]["error"]["code"] == "NOT_FOUND"
    again = await cli("dead-letters", "redrive", quote_id)
    assert again.code == 4  # no longer a dead letter
    assert "FAILED_PRECONDITION" in again.stderr


async def test_redrive_wants_ids_or_all_not_both(cli):
    assert (await cli("dead-letters", "redrive")).code == 2
    both = await cli("dead-letters", "redrive", "x", "--all")
    assert both.code == 2
    assert both.stderr == "quoteflow: name the quotes to redrive, or give --all (not both)\n"
