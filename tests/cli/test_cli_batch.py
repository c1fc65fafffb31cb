"""quoteflow quote batch: JSON lines and CSV, bad rows, a full queue, the summary."""

import json
import logging

import pytest
from support.polling import poll

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb


def jsonl(tmp_path, *lines: str):
    path = tmp_path / "quotes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def row(name: str, coverage: object = 250_000, **extra: object) -> str:
    return json.dumps(
        {"applicant_name": name, "address": "1 Main St", "coverage_amount": coverage, **extra}
    )


async def test_jsonl_with_bad_rows_and_wait_reports_each_row_and_the_outcomes(cli, quote, tmp_path):
    quote.rating.failures["Bad"] = 1  # with max_retries 0, it ends FAILED
    path = jsonl(
        tmp_path,
        row("Ada"),  # 1: completes
        row("Big", "3,000,000", priority="urgent"),  # 2: awaits review
        '{"applicant_name": "Cy", "address": "3 Main St"',  # 3: not JSON
        row("Bad"),  # 4: fails
        row("Zero", 0),  # 5: refused by the service
        '{"applicant_name": "Di", "coverage_amount": 5}',  # 6: no address
        "",
        "[1, 2]",  # 8: not an object
    )
    result = await cli("--json", "quote", "batch", path, "--wait")
    assert result.code == 1
    report = result.json()
    assert report["summary"] == {
        "rows": 7,
        "submitted": 3,
        "skipped": 3,
        "refused": {"INVALID_ARGUMENT": 1},
        "no_answer": 0,
        "not_sent": 0,
        "retries": 0,
        "settled": {
            "completed": 1,
            "awaiting_review": 1,
            "failed": 1,
            "rejected": 0,
            "cancelled": 0,
        },
    }
    rows = {r["line"]: r for r in report["rows"]}
    assert rows[1]["status"] == "MESSAGE_STATUS_COMPLETED"
    assert rows[2]["status"] == "MESSAGE_STATUS_AWAITING_REVIEW"
    assert rows[3]["outcome"] == "skipped"
    assert rows[3]["error"].startswith("not JSON:")
    assert rows[4]["status"] == "MESSAGE_STATUS_FAILED"
    assert rows[4]["error"].endswith("rating backend refused Bad")
    assert rows[5]["outcome"] == "refused"
    assert "submission.coverage_amount" in rows[5]["error"]
    assert rows[6]["error"] == "missing address"
    assert rows[8]["error"].startswith("not a JSON object")
    assert result.stderr == ""


async def test_csv_with_a_short_row_shows_people_a_summary_and_the_rows_left_out(cli, tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text(
        "applicant_name,address,coverage_amount,property_type\n"
        'Ada,"1 Main St, London",250000,apartment\n'
        "Bob,2 Main St\n"
        "Cy,3 Main St,120000,\n"
    )
    result = await cli("quote", "batch", str(path))
    assert result.code == 1
    assert "submitted" in result.stdout
    assert "skipped (bad rows)" in result.stdout
    assert "rows that did not go through" in result.stdout
    assert "2 values for the header's 4 columns" in result.stdout


async def test_every_row_through_exits_0(cli, tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text("applicant_name,address,coverage_amount\nAda,1 Main St,250000\nBo,2 St,9\n")
    result = await cli("--json", "quote", "batch", str(path), "--wait")
    assert result.code == 0, result.stderr
    assert result.json()["summary"]["settled"]["completed"] == 2


async def test_a_full_queue_is_waited_out_and_retried(start_quote, cli_at, rpc_answers, tmp_path):
    quote = await start_quote(max_size=1)
    quote.rating.gate("First")
    refused = rpc_answers("BatchSubmitQuotes", "RESOURCE_EXHAUSTED")
    path = jsonl(tmp_path, row("First"), row("Second"))
    cli = cli_at(quote=quote.server.address)
    # A row a call, one call at a time: First fills the queue (its pricing held),
    # so Second is refused.
    batch = cli.start("--json", "quote", "batch", path, "--concurrency", "1", "--batch-size", "1")
    await refused.wait()
    quote.rating.gates["First"].set()
    result = await batch.result()
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["summary"]["submitted"] == 2
    assert report["summary"]["retries"] >= 1
    assert report["rows"][1]["retries"] >= 1


async def test_a_queue_still_full_after_the_retries_refuses_the_row(start_quote, cli_at, tmp_path):
    quote = await start_quote(max_size=1)
    quote.rating.gate("First")
    path = jsonl(tmp_path, row("First"), row("Second"))
    cli = cli_at(quote=quote.server.address)
    result = await cli("--json", "quote", "batch", path, "--concurrency", "1", "--retries", "0")
    assert result.code == 1
    summary = result.json()["summary"]
    assert summary["submitted"] == 1
    assert summary["refused"] == {"QUEUE_FULL": 1}


async def test_an_unreachable_service_stops_the_batch_and_exits_5(cli_at, dead_address, tmp_path):
    path = jsonl(tmp_path, row("A"), row("B"), row("C"))
    cli = cli_at(quote=dead_address)
    result = await cli("--json", "quote", "batch", path, "--concurrency", "1", "--batch-size", "2")
    assert result.code == 5
    outcomes = [r["outcome"] for r in result.json()["rows"]]
    # The first chunk may or may not have been queued; the second was never sent.
    assert outcomes == ["no answer", "no answer", "not sent"]
    [error] = result.stderr.splitlines()
    assert json.loads(error)["error"]["code"] == "UNAVAILABLE"


async def test_a_file_that_cannot_be_read_as_rows_exits_2(cli, tmp_path):
    header = tmp_path / "quotes.csv"
    header.write_text("name,address,coverage_amount\nAda,1 Main St,250000\n")
    result = await cli("quote", "batch", str(header))
    assert result.code == 2
    assert "unknown column name; no applicant_name column" in result.stderr
    unknown = tmp_path / "quotes.txt"
    unknown.write_text(row("Ada"))
    result = await cli("quote", "batch", str(unknown))
    assert result.code == 2
    assert "give --format jsonl or csv" in result.stderr
    assert (await cli("quote", "batch", str(unknown), "--format", "jsonl")).code == 0
    missing = await cli("quote", "batch", str(tmp_path / "nowhere.jsonl"))
    assert missing.code == 2
    assert missing.stderr.startswith("quoteflow: cannot read ")


# -- BatchSubmitQuotes: chunks, rows refused alone, request ids -----------------


@pytest.fixture
def rpc_calls(caplog: pytest.LogCaptureFixture):
    """rpc_calls(method, code=None): the calls of method the services in this process
    have answered (with code, if given), from the one log line every RPC gets."""
    caplog.set_level(logging.INFO, logger="service_runtime.rpc")

    def answered(method: str, code: str | None = None) -> list[str]:
        found = []
        for record in caplog.records:
            fields = getattr(record, "fields", {})
            if record.name != "service_runtime.rpc":
                continue
            ours = str(fields.get("method", "")).endswith(f"/{method}")
            if ours and (code is None or fields.get("code") == code):
                found.append(str(fields.get("code")))
        return found

    return answered


async def calls_of(rpc_calls, method: str, expected: int, code: str | None = None) -> list[str]:
    """The calls of method once as many as expected are logged (a call's line is
    written as it ends, so the CLI may have its answer a moment before)."""
    return await poll(
        lambda: rpc_calls(method, code), lambda calls: len(calls) >= expected, f"{expected} calls"
    )


async def pending(quote) -> int:
    stats = await quote.stub.GetStats(quote_pb.GetStatsRequest())
    return stats.pending_count


async def queued_names(quote) -> dict[str, str]:
    """Every queued quote's applicant, by the quote's id."""
    names: dict[str, str] = {}
    token = ""
    while True:
        page = await quote.stub.ListMessages(
            quote_pb.ListMessagesRequest(page_size=1000, page_token=token)
        )
        names.update((m.id, m.payload.applicant_name) for m in page.messages)
        token = page.next_page_token
        if not token:
            return names


def many(tmp_path, count: int, **bad_rows: dict[str, object]) -> str:
    """A file of count rows, "Applicant N" on line N; bad_rows["line_N"] overrides fields."""
    lines = []
    for line in range(1, count + 1):
        fields = {"coverage_amount": 250_000, **bad_rows.get(f"line_{line}", {})}
        lines.append(row(f"Applicant {line}", **fields))
    return jsonl(tmp_path, *lines)


async def test_2500_rows_go_in_3_batch_calls_of_at_most_1000(
    start_quote, cli_at, rpc_calls, tmp_path
):
    quote = await start_quote(workers=0, max_size=5000)
    path = many(tmp_path, 2500)
    result = await cli_at(quote=quote.server.address)("--json", "quote", "batch", path)
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["summary"]["submitted"] == 2500
    assert len({r["id"] for r in report["rows"]}) == 2500
    assert await calls_of(rpc_calls, "BatchSubmitQuotes", 3) == ["OK", "OK", "OK"]
    assert rpc_calls("SubmitQuote") == []
    assert await pending(quote) == 2500
    # Each row's id is the quote queued from that row.
    names = await queued_names(quote)
    assert all(names[r["id"]] == f"Applicant {r['line']}" for r in report["rows"])


async def test_batch_size_sets_the_rows_per_call(start_quote, cli_at, rpc_calls, tmp_path):
    quote = await start_quote(workers=0)
    cli = cli_at(quote=quote.server.address)
    result = await cli("--json", "quote", "batch", many(tmp_path, 5), "--batch-size", "2")
    assert result.code == 0, result.stderr
    assert await calls_of(rpc_calls, "BatchSubmitQuotes", 3) == ["OK", "OK", "OK"]
    assert await pending(quote) == 5
    for wrong in ("0", "1001"):
        refused = await cli("quote", "batch", many(tmp_path, 5), "--batch-size", wrong)
        assert refused.code == 2
        assert "--batch-size" in refused.stderr
    assert await pending(quote) == 5


async def test_a_bad_row_is_refused_alone_naming_its_line_and_field(
    start_quote, cli_at, rpc_calls, tmp_path
):
    quote = await start_quote(workers=0, max_size=5000)
    # Line 1500 is item 499 of the second call.
    bad = {"coverage_amount": 0, "prior_claims": 99}
    path = many(tmp_path, 2500, line_1500=bad)
    result = await cli_at(quote=quote.server.address)("--json", "quote", "batch", path)
    assert result.code == 1
    report = result.json()
    assert report["summary"]["submitted"] == 2499
    assert report["summary"]["refused"] == {"INVALID_ARGUMENT": 1}
    rows = {r["line"]: r for r in report["rows"]}
    assert rows[1500]["outcome"] == "refused"
    error = rows[1500]["error"]
    assert error.startswith("invalid request: submission.coverage_amount: ")
    assert "; submission.prior_claims: " in error
    assert "requests[" not in error
    assert all(r["outcome"] == "submitted" for line, r in rows.items() if line != 1500)
    # The second chunk is refused whole, then sent again without line 1500.
    calls = await calls_of(rpc_calls, "BatchSubmitQuotes", 4)
    assert sorted(calls) == ["INVALID_ARGUMENT", "OK", "OK", "OK"]
    assert await pending(quote) == 2499
    names = await queued_names(quote)
    assert "Applicant 1500" not in names.values()
    assert all(names[r["id"]] == f"Applicant {r['line']}" for r in rows.values() if "id" in r)


async def test_people_see_the_line_of_a_row_the_service_refused(cli, tmp_path):
    path = jsonl(tmp_path, row("Ada"), row("Bo", year_built=1066), row("Cy"))
    result = await cli("quote", "batch", path)
    assert result.code == 1
    assert "rows that did not go through" in result.stdout
    [listed] = [line for line in result.stdout.splitlines() if "year_built" in line]
    assert listed.split()[1] == "2"  # the line column


async def test_the_same_file_twice_with_request_ids_queues_each_row_once(
    start_quote, cli_at, tmp_path
):
    quote = await start_quote(workers=0)
    cli = cli_at(quote=quote.server.address)
    rows = [row(f"Applicant {n}", request_id=f"req-{n}") for n in range(1, 6)]
    path = jsonl(tmp_path, *rows)
    first = await cli("--json", "quote", "batch", path, "--batch-size", "2")
    assert first.code == 0, first.stderr
    second = await cli("--json", "quote", "batch", path)
    assert second.code == 0, second.stderr
    ids = [r["id"] for r in first.json()["rows"]]
    assert len(set(ids)) == 5
    assert [r["id"] for r in second.json()["rows"]] == ids
    assert await pending(quote) == 5
    # A request_id reused for another request is that row's refusal alone.
    rows[2] = row("Someone else", request_id="req-3")
    changed = await cli("--json", "quote", "batch", jsonl(tmp_path, *rows))
    assert changed.code == 1
    report = changed.json()
    assert report["summary"]["refused"] == {"REQUEST_ID_REUSED": 1}
    assert [r["outcome"] for r in report["rows"]] == ["submitted"] * 2 + ["refused"] + [
        "submitted"
    ] * 2
    assert "req-3" in report["rows"][2]["error"]
    assert "item " not in report["rows"][2]["error"]
    assert [r.get("id") for r in report["rows"]] == [*ids[:2], None, *ids[3:]]
    assert await pending(quote) == 5


async def test_rows_repeating_a_request_id_answer_as_repeats(start_quote, cli_at, tmp_path):
    quote = await start_quote(workers=0)
    path = jsonl(
        tmp_path,
        row("Ada", request_id="a"),
        row("Bo", request_id="b"),
        row("Ada", request_id="a"),  # the same request: Ada's quote
        row("Cy", request_id="a"),  # another request: refused
    )
    result = await cli_at(quote=quote.server.address)("--json", "quote", "batch", path)
    assert result.code == 1
    rows = result.json()["rows"]
    assert [r["outcome"] for r in rows] == ["submitted", "submitted", "submitted", "refused"]
    assert rows[2]["id"] == rows[0]["id"]
    assert rows[3]["reason"] == "REQUEST_ID_REUSED"
    assert await pending(quote) == 2


async def test_a_chunk_larger_than_the_queue_is_split(start_quote, cli_at, rpc_calls, tmp_path):
    quote = await start_quote(workers=0, max_size=2)
    path = many(tmp_path, 3)
    cli = cli_at(quote=quote.server.address)
    result = await cli("--json", "quote", "batch", path, "--retries", "0")
    assert result.code == 1
    report = result.json()
    assert [r["outcome"] for r in report["rows"]] == ["submitted", "submitted", "refused"]
    assert report["summary"]["refused"] == {"QUEUE_FULL": 1}
    assert report["summary"]["retries"] == 0  # a split is not a retry
    # 3 rows never fit; 2 do; the third finds the queue full.
    calls = await calls_of(rpc_calls, "BatchSubmitQuotes", 3)
    assert calls == ["RESOURCE_EXHAUSTED", "OK", "RESOURCE_EXHAUSTED"]
    assert await pending(quote) == 2


async def test_a_repeat_of_1000_finished_large_quotes_is_answered_past_4_mib(
    start_quote, cli_at, tmp_path
):
    # The longest texts, in 4-byte characters, priced step by step: each finished
    # quote answers some 5.6 KB, so 1,000 repeats make more than gRPC's default 4 MiB.
    quote = await start_quote(workers=8, max_size=1000)
    rows = [
        row("\U0001f600" * 200, request_id=f"big-{n}", use_agentic=True, address="\U0001f600" * 500)
        for n in range(1000)
    ]
    path = jsonl(tmp_path, *rows)
    cli = cli_at(quote=quote.server.address)
    first = await cli("--json", "quote", "batch", path)
    assert first.code == 0, first.stderr
    await poll(
        lambda: quote.stub.GetStats(quote_pb.GetStatsRequest()),
        lambda stats: stats.completed_count == 1000,
        "1,000 quotes completed",
    )
    again = await cli("--json", "quote", "batch", path)
    assert again.code == 0, again.stderr
    assert [r["id"] for r in again.json()["rows"]] == [r["id"] for r in first.json()["rows"]]
