"""quoteflow quote submit | watch | get | review | cancel, and how every kind of
failure reads, against a quote service in-process."""

import re

from support.quote_harness import submission

from quoteflow.quote.v1 import quote_service_pb2 as pb

ADA = ("--name", "Ada Lovelace", "--address", "12 St James's Square, London")


async def test_submit_queues_and_answers_id_position_and_estimate(cli, quote):
    quote.rating.gate("Ada Lovelace")
    result = await cli("--json", "quote", "submit", *ADA, "--coverage", "250,000")
    assert result.code == 0, result.stderr
    queued = result.json()
    assert queued["message"]["status"] == "MESSAGE_STATUS_PENDING"
    assert queued["message"]["payload"]["coverage_amount"] == 250_000  # a number, not a string
    assert queued["queue_position"] == 0
    assert queued["estimated_processing_time"].endswith("s")
    assert result.stderr == ""


async def test_submit_for_people_names_the_quote_and_its_place(cli, quote):
    quote.rating.gate("Ada Lovelace")
    result = await cli("quote", "submit", *ADA, "--coverage", "250000", "--priority", "urgent")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("queued quote ")
    assert "position 0, priority urgent" in result.stdout


async def test_submit_sync_prices_at_once(cli):
    result = await cli(
        "quote", "submit", *ADA, "--coverage", "250000", "--property-type", "apartment", "--sync"
    )
    assert result.code == 0, result.stderr
    assert "completed" in result.stdout
    assert "annual premium" in result.stdout
    assert "property_type" in result.stdout  # the factors table


async def test_submit_wait_prints_the_queued_quote_then_each_state_to_completed(cli):
    result = await cli("--json", "quote", "submit", *ADA, "--coverage", "250000", "--wait")
    assert result.code == 0, result.stderr
    queued, *states = result.json_lines()
    assert "queue_position" in queued
    assert states[-1]["message"]["status"] == "MESSAGE_STATUS_COMPLETED"
    assert states[-1]["message"]["result"]["annual_premium_cents"] > 0


async def test_watch_prints_one_json_line_per_state_as_it_comes(cli, quote):
    quote.rating.gate("Ada Lovelace")
    queued = await quote.stub.SubmitQuote(
        pb.SubmitQuoteRequest(submission=submission("Ada Lovelace"))
    )
    await quote.rating.wait_started("Ada Lovelace")
    watch = cli.start("quote", "watch", queued.message.id, "--json")
    # The watch has printed the state it found before the quote moves on.
    await watch.stdout.wait_for_lines(1)
    quote.rating.gates["Ada Lovelace"].set()
    result = await watch.result()
    assert result.code == 0, result.stderr
    statuses = [line["message"]["status"] for line in result.json_lines()]
    assert statuses == ["MESSAGE_STATUS_PROCESSING", "MESSAGE_STATUS_COMPLETED"]


async def test_watch_of_a_quote_that_fails_exits_1(cli, quote):
    quote.rating.failures["Ada Lovelace"] = 1
    queued = await quote.stub.SubmitQuote(
        pb.SubmitQuoteRequest(submission=submission("Ada Lovelace"))
    )
    result = await cli("quote", "watch", queued.message.id)
    assert result.code == 1
    assert "failed" in result.stdout
    assert "rating backend refused Ada Lovelace" in result.stdout


async def test_a_quote_for_review_settles_awaiting_it_then_review_decides(cli):
    submitted = await cli("--json", "quote", "submit", *ADA, "--coverage", "3000000", "--wait")
    assert submitted.code == 0, submitted.stderr
    settled = submitted.json_lines()[-1]["message"]
    assert settled["status"] == "MESSAGE_STATUS_AWAITING_REVIEW"
    assert "review threshold" in settled["result"]["review_reason"]

    reviewed = await cli(
        "--json", "quote", "review", settled["id"], "--approve", "--reviewer", "Grace"
    )
    assert reviewed.code == 0, reviewed.stderr
    message = reviewed.json()["message"]
    assert message["status"] == "MESSAGE_STATUS_COMPLETED"
    assert message["review"]["reviewer"] == "Grace"

    again = await cli("quote", "review", settled["id"], "--reject", "--reviewer", "Grace")
    assert again.code == 4
    assert again.stderr.startswith("quoteflow: the quote service at ")
    assert "FAILED_PRECONDITION" in again.stderr


async def test_get_of_a_rejected_quote_shows_it_and_exits_1(cli):
    submitted = await cli("--json", "quote", "submit", *ADA, "--coverage", "3000000", "--wait")
    quote_id = submitted.json_lines()[-1]["message"]["id"]
    rejected = await cli(
        "quote", "review", quote_id, "--reject", "--reviewer", "Grace", "--note", "too large"
    )
    assert rejected.code == 0, rejected.stderr
    got = await cli("quote", "get", quote_id)
    assert got.code == 1
    assert "rejected" in got.stdout
    assert "too large" in got.stdout


async def test_cancel_a_pending_quote_then_again(cli, quote):
    quote.rating.gate("busy")
    await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("busy")))
    await quote.rating.wait_started("busy")
    waiting = await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("Ada")))
    cancelled = await cli("--json", "quote", "cancel", waiting.message.id)
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["message"]["status"] == "MESSAGE_STATUS_CANCELLED"
    again = await cli("quote", "cancel", waiting.message.id)
    assert again.code == 4
    assert len(again.stderr.splitlines()) == 1


async def test_invalid_argument_exits_2_naming_the_field_in_one_line(cli):
    result = await cli("quote", "submit", *ADA, "--coverage", "0")
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "quoteflow: invalid request: submission.coverage_amount: "
        "must be between 1 and 50,000,000; got 0\n"
    )


async def test_invalid_argument_with_json_is_a_json_error_with_the_violations(cli):
    result = await cli("--json", "quote", "submit", *ADA, "--coverage", "0", "--year-built", "1")
    assert result.code == 2
    error = result.error()
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["service"] == "quote"
    assert {v["field"] for v in error["field_violations"]} == {
        "submission.coverage_amount",
        "submission.year_built",
    }


async def test_not_found_exits_3(cli):
    result = await cli("quote", "get", "no-such-quote")
    assert result.code == 3
    assert result.stderr == (
        f"quoteflow: the quote service at {cli.addresses['quote']} answered NOT_FOUND "
        "(MESSAGE_NOT_FOUND): message 'no-such-quote' not found\n"
    )


async def test_a_full_queue_exits_6_saying_when_to_retry(start_quote, cli_at):
    quote = await start_quote(max_size=1)
    quote.rating.gate("busy")
    await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("busy")))
    cli = cli_at(quote=quote.server.address)
    result = await cli("quote", "submit", *ADA, "--coverage", "250000")
    assert result.code == 6
    assert "RESOURCE_EXHAUSTED (QUEUE_FULL)" in result.stderr
    # The delay is the service's estimate of when a worker frees up.
    assert re.search(r"; it asks to retry after [0-9.]+ s$", result.stderr)
    as_json = await cli("--json", "quote", "submit", *ADA, "--coverage", "250000")
    assert as_json.code == 6
    assert as_json.error()["retry_delay_seconds"] >= 0.5


async def test_an_unreachable_service_exits_5_in_one_line(cli_at, dead_address):
    result = await cli_at(quote=dead_address)("quote", "watch", "any")
    assert result.code == 5
    [line] = result.stderr.splitlines()
    assert line.startswith(f"quoteflow: cannot reach the quote service at {dead_address} ")
    assert "(UNAVAILABLE)" in line


async def test_bad_usage_exits_2_in_one_line(cli):
    result = await cli("quote", "submit", *ADA, "--coverage", "lots")
    assert result.code == 2
    assert result.stderr == (
        "quoteflow: quote submit: argument --coverage: not a whole number: 'lots' "
        "(see quoteflow quote submit --help)\n"
    )
    as_json = await cli("quote", "review", "id", "--reviewer", "Grace", "--json")
    assert as_json.code == 2
    assert as_json.error()["code"] == "USAGE"
    assert "--approve" in as_json.error()["message"]


async def test_help_lists_the_exit_codes(cli):
    result = await cli("--help")
    assert result.code == 0
    assert "exit codes:" in result.stdout
    assert "6    resource exhausted" in result.stdout


async def test_submit_with_a_key_and_a_delay_shows_both(cli, quote):
    result = await cli(
        "--json", "quote", "submit", *ADA, "--coverage", "250000",
        "--fairness-key", "broker-7", "--fairness-weight", "2", "--delay", "3600",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    message = result.json()["message"]
    assert message["fairness_key"] == "broker-7"
    assert message["status"] == "MESSAGE_STATUS_PENDING"
    assert message["schedule_time"] == message["next_attempt_at"]
    shown = await cli("quote", "get", message["id"])
    assert "broker-7" in shown.stdout and "scheduled for" in shown.stdout
    assert quote.rating.started == []


async def test_submit_at_a_time_without_a_zone_is_a_usage_error(cli, quote):
    result = await cli("quote", "submit", *ADA, "--coverage", "250000", "--at", "2030-01-01T10:00")
    assert result.code != 0
    assert "zone" in result.stderr
    assert (await quote.stub.GetStats(pb.GetStatsRequest())).pending_count == 0


async def test_submit_sync_with_a_delay_is_refused_by_the_service(cli, quote):
    result = await cli("quote", "submit", *ADA, "--coverage", "250000", "--sync", "--delay", "5")
    assert result.code != 0
    assert "cannot be scheduled" in result.stderr
    assert quote.rating.started == []


async def test_rate_limit_sets_and_lifts_a_keys_limit(cli, quote):
    result = await cli("--json", "quote", "rate-limit", "slow", "--per-second", "0.5")
    assert result.code == 0, result.stderr
    assert result.json() == {"fairness_key": "slow", "per_second": 0.5, "burst": 1}
    lifted = await cli("quote", "rate-limit", "slow", "--lift")
    assert lifted.code == 0, lifted.stderr
    assert "no rate limit" in lifted.stdout
    refused = await cli("quote", "rate-limit", "slow", "--per-second", "-1")
    assert refused.code != 0 and "per_second" in refused.stderr
