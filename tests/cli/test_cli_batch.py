"""quoteflow quote batch: JSON lines and CSV, bad rows, a full queue, the summary."""

import json


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
    refused = rpc_answers("SubmitQuote", "RESOURCE_EXHAUSTED")
    path = jsonl(tmp_path, row("First"), row("Second"))
    cli = cli_at(quote=quote.server.address)
    # One at a time: First fills the queue (its pricing held), so Second is refused.
    batch = cli.start("--json", "quote", "batch", path, "--concurrency", "1")
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
    result = await cli("--json", "quote", "batch", path, "--concurrency", "1")
    assert result.code == 5
    outcomes = [r["outcome"] for r in result.json()["rows"]]
    assert outcomes == ["no answer", "not sent", "not sent"]
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
