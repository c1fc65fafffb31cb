"""quoteflow quote batch: submit every quote of a file, a bounded number at a time."""

import argparse
import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import RenderableType
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow_cli.batch_file import FORMATS, read_rows
from quoteflow_cli.command import Commands, add_command, count
from quoteflow_cli.connection import Clients
from quoteflow_cli.errors import CallError
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import Output
from quoteflow_cli.quotes import UNSUCCESSFUL, QuoteService, watch_until_settled
from quoteflow_cli.retry import DEFAULT_RETRIES, retrying_when_full
from quoteflow_cli.submissions import OPTIONAL_FIELDS, REQUIRED_FIELDS
from quoteflow_cli.views import label

T = TypeVar("T")

DEFAULT_CONCURRENCY = 16

# What became of a row.
SUBMITTED = "submitted"
#: The row is not a valid request (bad JSON, a missing column…); it was not sent.
SKIPPED = "skipped"
#: The service answered with an error.
REFUSED = "refused"
#: The service could not be reached or did not answer in time: whether it
#: accepted the row is unknown (a request_id makes sending it again safe).
NO_ANSWER = "no answer"
#: Not sent because an earlier row found the service unreachable.
NOT_SENT = "not sent"

#: The settled states, in the order the summary lists them.
_SETTLED_ORDER = (
    quote_pb.MESSAGE_STATUS_COMPLETED,
    quote_pb.MESSAGE_STATUS_AWAITING_REVIEW,
    quote_pb.MESSAGE_STATUS_FAILED,
    quote_pb.MESSAGE_STATUS_REJECTED,
    quote_pb.MESSAGE_STATUS_CANCELLED,
)

_DESCRIPTION = f"""\
Submit every quote in a file, --concurrency at a time, then print a summary.

The file is JSON lines (.jsonl, .ndjson, .json: one object per line) or CSV
(.csv, with a header), as its name says or --format; - reads stdin. Each row
has the fields of SubmitQuoteRequest and its Submission:
  required: {", ".join(REQUIRED_FIELDS)}
  optional: {", ".join(OPTIONAL_FIELDS)}
e.g. {{"applicant_name": "Ada Lovelace", "address": "12 St James's Square",
"coverage_amount": 250000, "priority": "high"}}

A bad row (bad JSON, a missing column) is reported with its line number and
skipped. A row refused because the queue is full is tried again after the delay
the service asks for (RetryInfo), up to --retries times. The exit code is 0
only if every row went through (and, with --wait, none failed): 1 otherwise, 5
if the quote service could not be reached (the rest of the file is not sent).
"""


@dataclass
class RowResult:
    line: int
    outcome: str
    #: The one-line reason a row did not go through.
    problem: str = ""
    #: The refusal's ErrorInfo reason (else its status code), for counting.
    why: str = ""
    id: str = ""
    retries: int = 0
    #: The state the quote settled in, with --wait; 0 while unknown.
    settled: int = 0

    def went_through(self, waited: bool) -> bool:
        if self.outcome != SUBMITTED:
            return False
        return not waited or (self.settled != 0 and self.settled not in UNSUCCESSFUL)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"line": self.line, "outcome": self.outcome}
        optional = {
            "id": self.id,
            "retries": self.retries,
            "reason": self.why,
            "error": self.problem,
            "status": quote_pb.MessageStatus.Name(self.settled) if self.settled else "",
        }
        data.update((key, value) for key, value in optional.items() if value)
        return data


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "batch",
        submit_file,
        help="submit every quote in a JSON-lines or CSV file",
        description=_DESCRIPTION,
    )
    parser.add_argument("file", help="the file, or - for stdin")
    parser.add_argument("--format", choices=FORMATS, help="default: from the file's name")
    parser.add_argument(
        "--concurrency",
        type=count(1),
        default=DEFAULT_CONCURRENCY,
        help="calls at once (default %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=count(0),
        default=DEFAULT_RETRIES,
        help="tries again per row while the queue is full (default %(default)s)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="then watch every submitted quote until it settles, and count the outcomes",
    )


async def submit_file(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    rows = read_rows(args.file, args.format)
    results = [
        RowResult(row.line, NOT_SENT)
        if row.request is not None
        else RowResult(row.line, SKIPPED, row.problem)
        for row in rows
    ]
    sendable = [
        (row.request, result)
        for row, result in zip(rows, results, strict=True)
        if row.request is not None
    ]
    with out.progress() as progress:
        batch = _Batch(clients.quote, progress, args.retries)
        task = progress.add_task("submitting", total=len(sendable), note="")
        await _each(sendable, args.concurrency, functools.partial(batch.submit, task))
        if args.wait:
            submitted = [result for result in results if result.outcome == SUBMITTED]
            task = progress.add_task("settling", total=len(submitted), note="")
            await _each(submitted, args.concurrency, functools.partial(batch.settle, task))
    summary = _summary(results, args.wait)
    out.emit(
        {"file": args.file, "summary": summary, "rows": [r.to_json() for r in results]},
        *_people_view(args.file, summary, results, args.wait),
    )
    if batch.unreachable is not None:
        out.error(batch.unreachable)
        return batch.unreachable.exit_code
    if all(result.went_through(args.wait) for result in results):
        return ExitCode.OK
    return ExitCode.FAILED


class _Batch:
    """The calls of one batch, and the first sign that the service is unreachable,
    after which nothing more is sent."""

    def __init__(self, quote: QuoteService, progress: Progress, retries: int) -> None:
        self.quote = quote
        self.progress = progress
        self.retries = retries
        self.unreachable: CallError | None = None
        self._refused = 0
        self._retried = 0

    async def submit(
        self, task: TaskID, item: tuple[quote_pb.SubmitQuoteRequest, RowResult]
    ) -> None:
        request, result = item
        if self.unreachable is not None:
            return

        def retried(error: CallError) -> None:
            result.retries += 1
            self._retried += 1
            self._show(task, 0)

        try:
            response = await retrying_when_full(
                functools.partial(self.quote.call, self.quote.stub.SubmitQuote, request),
                retries=self.retries,
                on_retry=retried,
            )
        except CallError as error:
            result.problem = error.line()
            if error.unreachable:
                result.outcome = NO_ANSWER
                self.unreachable = self.unreachable or error
            else:
                result.outcome, result.why = REFUSED, error.why
                self._refused += 1
        else:
            result.outcome, result.id = SUBMITTED, response.message.id
        self._show(task, 1)

    async def settle(self, task: TaskID, result: RowResult) -> None:
        if self.unreachable is not None:
            return
        try:
            message = await watch_until_settled(self.quote, result.id)
        except CallError as error:
            result.problem = error.line()
            if error.unreachable:
                self.unreachable = self.unreachable or error
        else:
            result.settled = message.status
            if message.status == quote_pb.MESSAGE_STATUS_FAILED:
                result.problem = message.error_message
        self.progress.advance(task)

    def _show(self, task: TaskID, rows_done: int) -> None:
        note = f"refused {self._refused}, retries {self._retried}"
        self.progress.update(task, advance=rows_done, note=note)


async def _each(items: Sequence[T], concurrency: int, work: Callable[[T], Awaitable[None]]) -> None:
    """work(item) for every item, at most concurrency at once."""
    pending = iter(items)

    async def worker() -> None:
        # The workers share one iterator, so each item is taken exactly once.
        for item in pending:
            await work(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(items))):
            group.create_task(worker())


def _summary(results: Sequence[RowResult], waited: bool) -> dict[str, Any]:
    outcomes = Counter(result.outcome for result in results)
    summary: dict[str, Any] = {
        "rows": len(results),
        "submitted": outcomes[SUBMITTED],
        "skipped": outcomes[SKIPPED],
        "refused": dict(Counter(r.why for r in results if r.outcome == REFUSED)),
        "no_answer": outcomes[NO_ANSWER],
        "not_sent": outcomes[NOT_SENT],
        "retries": sum(result.retries for result in results),
    }
    if waited:
        settled = Counter(result.settled for result in results)
        summary["settled"] = {
            label(quote_pb.MessageStatus, status).replace(" ", "_"): settled[status]
            for status in _SETTLED_ORDER
        }
    return summary


def _people_view(
    path: str, summary: dict[str, Any], results: Sequence[RowResult], waited: bool
) -> list[RenderableType]:
    table = Table(title=f"batch {path}", title_justify="left", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("rows", str(summary["rows"]))
    table.add_row(Text("submitted", style="green"), str(summary["submitted"]))
    lines: list[tuple[str | Text, int]] = [
        (Text("skipped (bad rows)", style="red"), summary["skipped"]),
        *((Text(f"refused: {why}", style="red"), n) for why, n in summary["refused"].items()),
        (Text("no answer", style="red"), summary["no_answer"]),
        (Text("not sent", style="red"), summary["not_sent"]),
        ("retries after a full queue", summary["retries"]),
    ]
    for name, number in lines:
        if number:
            table.add_row(name, str(number))
    if waited:
        table.add_section()
        for state, number in summary["settled"].items():
            table.add_row(state.replace("_", " "), str(number))
    view: list[RenderableType] = [table]
    problems = [result for result in results if not result.went_through(waited)]
    if problems:
        listing = Table(title="rows that did not go through", title_justify="left")
        for column in ("line", "outcome", "why"):
            listing.add_column(column)
        for result in problems:
            outcome = result.outcome
            if result.outcome == SUBMITTED and result.settled:
                outcome = label(quote_pb.MessageStatus, result.settled)
            listing.add_row(str(result.line), outcome, result.problem)
        view.append(listing)
    return view
