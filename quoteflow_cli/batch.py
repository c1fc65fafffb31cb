"""quoteflow quote batch: submit every quote of a file, a bounded number at a time."""

import argparse
import asyncio
import functools
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from rich.console import RenderableType
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc
from quoteflow_cli.batch_file import FORMATS, read_rows
from quoteflow_cli.command import Commands, add_command, count
from quoteflow_cli.connection import Clients
from quoteflow_cli.errors import CallError, FieldViolation
from quoteflow_cli.exit_codes import ExitCode
from quoteflow_cli.output import Output
from quoteflow_cli.quotes import UNSUCCESSFUL, QuoteService, watch_until_settled
from quoteflow_cli.retry import DEFAULT_RETRIES, retrying_when_full
from quoteflow_cli.submissions import OPTIONAL_FIELDS, REQUIRED_FIELDS
from quoteflow_cli.views import label

T = TypeVar("T")

#: BatchSubmitQuotes calls at once: a chunk needs room in the queue for all its
#: rows, so more chunks in flight than the queue holds only wait for each other.
DEFAULT_CONCURRENCY = 2
#: Rows per BatchSubmitQuotes call: the most the service takes in one.
MAX_BATCH_SIZE = 1000

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
Submit every quote in a file with BatchSubmitQuotes, --batch-size rows a call and
--concurrency calls at once, then print a summary.

The file is JSON lines (.jsonl, .ndjson, .json: one object per line) or CSV
(.csv, with a header), as its name says or --format; - reads stdin. Each row
has the fields of SubmitQuoteRequest and its Submission:
  required: {", ".join(REQUIRED_FIELDS)}
  optional: {", ".join(OPTIONAL_FIELDS)}
e.g. {{"applicant_name": "Ada Lovelace", "address": "12 St James's Square",
"coverage_amount": 250000, "priority": "high"}}

A bad row (bad JSON, a missing column) is reported with its line number and
skipped. A call is all or nothing: when the service refuses a row (a field out of
range, a request_id used for another request), that row is reported refused, with
its line and field, and the rest of its chunk is sent again. A chunk refused
because the queue is full is tried again after the delay the service asks for
(RetryInfo), up to --retries times; a chunk of more rows than the queue ever holds
is split. The exit code is 0 only if every row went through (and, with --wait,
none failed): 1 otherwise, 5 if the quote service could not be reached (the rest
of the file is not sent).
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
        "--batch-size",
        type=_batch_size,
        default=MAX_BATCH_SIZE,
        metavar="ROWS",
        help=f"rows per BatchSubmitQuotes call, 1 to {MAX_BATCH_SIZE} (default %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=count(1),
        default=DEFAULT_CONCURRENCY,
        help="BatchSubmitQuotes calls at once, and with --wait quotes watched at once "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=count(0),
        default=DEFAULT_RETRIES,
        help="tries again per call while the queue is full (default %(default)s)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="then watch every submitted quote until it settles, and count the outcomes",
    )


def _batch_size(text: str) -> int:
    size = count(1)(text)
    if size > MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BATCH_SIZE}; got {size}")
    return size


async def submit_file(args: argparse.Namespace, clients: Clients, out: Output) -> int:
    rows = read_rows(args.file, args.format)
    results = [
        RowResult(row.line, NOT_SENT)
        if row.request is not None
        else RowResult(row.line, SKIPPED, row.problem)
        for row in rows
    ]
    sendable = [
        _Item(row.request, result)
        for row, result in zip(rows, results, strict=True)
        if row.request is not None
    ]
    service = _batch_service(clients.quote)
    try:
        with out.progress() as progress:
            batch = _Batch(service, progress, args.retries)
            task = progress.add_task("submitting", total=len(sendable), note="")
            for chunks in _chunks(sendable, args.batch_size):
                await _each(chunks, args.concurrency, functools.partial(batch.submit, task))
            if args.wait:
                submitted = [result for result in results if result.outcome == SUBMITTED]
                task = progress.add_task("settling", total=len(submitted), note="")
                await _each(submitted, args.concurrency, functools.partial(batch.settle, task))
    finally:
        await service.close()
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


@dataclass(frozen=True)
class _Item:
    """A row that can be sent: its request, and where its outcome goes."""

    request: quote_pb.SubmitQuoteRequest
    result: RowResult


def _chunks(items: Sequence[_Item], size: int) -> list[list[list[_Item]]]:
    """The items in chunks of at most size, in file order, in rounds sent one after
    the other: the first holds every row but those repeating the request_id of an
    earlier row, the second the first repeat of each request_id, and so on.

    A BatchSubmitQuotes call refuses two items with one request_id, so a repeat
    waits for the call that queues the first; it then answers as SubmitQuote does
    a repeat: the first row's quote, or ALREADY_EXISTS for a different request.
    """
    rounds: list[list[_Item]] = []
    seen: Counter[str] = Counter()
    for item in items:
        request_id = item.request.request_id
        place = seen[request_id] if request_id else 0
        seen[request_id] += 1
        if place == len(rounds):
            rounds.append([])
        rounds[place].append(item)
    return [[each[i : i + size] for i in range(0, len(each), size)] for each in rounds]


class _TooBig(Exception):
    """A chunk of more rows than the queue may ever hold: it must be split."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"the queue holds at most {max_size} unfinished messages")
        self.max_size = max_size


def _too_big(error: CallError, rows: int) -> int | None:
    """The queue's max_size, when the refusal says a chunk of so many rows never fits."""
    if error.code != grpc.StatusCode.RESOURCE_EXHAUSTED or error.reason != "QUEUE_FULL":
        return None
    try:
        max_size = int(error.metadata.get("maxSize", ""))
    except ValueError:
        return None
    return max(1, max_size) if rows > max_size else None


def _row_violations(error: CallError, rows: int) -> dict[int, list[FieldViolation]]:
    """The field violations of an INVALID_ARGUMENT by the chunk's item they name
    ("requests[3].submission.coverage_amount" is item 3's
    "submission.coverage_amount"); empty unless every violation names an item."""
    if error.code != grpc.StatusCode.INVALID_ARGUMENT or not error.violations:
        return {}
    found: dict[int, list[FieldViolation]] = {}
    for violation in error.violations:
        match = _ITEM_FIELD.fullmatch(violation.field)
        if match is None or int(match["index"]) >= rows:
            return {}
        found.setdefault(int(match["index"]), []).append(
            FieldViolation(match["field"], violation.description)
        )
    return found


_ITEM_FIELD = re.compile(r"requests\[(?P<index>\d+)\]\.(?P<field>.+)")


def _conflicting(error: CallError, chunk: Sequence[_Item]) -> int | None:
    """The item of the chunk an ALREADY_EXISTS names: its request_id was used
    before for a different request."""
    if error.code != grpc.StatusCode.ALREADY_EXISTS:
        return None
    request_id = error.metadata.get("requestId")
    for index, item in enumerate(chunk):
        if request_id and item.request.request_id == request_id:
            return index
    return None


#: A BatchSubmitQuotes answer repeating finished quotes brings their results
#: (up to 24 KB each, see quote_service.proto), so a chunk of 1,000 can answer
#: far more than gRPC's default 4 MiB receive limit.
_MAX_RECEIVE_BYTES = 64 * 1024 * 1024


def _batch_service(quote: QuoteService) -> QuoteService:
    """The quote service on a channel of its own that takes the largest answer
    a chunk can bring."""
    return QuoteService(
        quote.name,
        quote.address,
        quote_service_pb2_grpc.QuoteServiceStub,
        quote.timeout,
        channel_options=[("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES)],
        security=quote.security,
    )


class _Batch:
    """The calls of one batch, and the first sign that the service is unreachable,
    after which nothing more is sent."""

    def __init__(self, quote: QuoteService, progress: Progress, retries: int) -> None:
        self.quote = quote
        self.progress = progress
        self.retries = retries
        self.unreachable: CallError | None = None
        #: The most rows a chunk may have, once a refusal says what the queue holds.
        self._max_rows: int | None = None
        self._refused = 0
        self._retried = 0

    async def submit(self, task: TaskID, chunk: list[_Item]) -> None:
        """Send a chunk in one BatchSubmitQuotes call; pieces of it, when the queue
        can never hold it; again without the rows the service names as bad."""
        pieces = [chunk]
        while pieces and self.unreachable is None:
            piece = pieces.pop(0)
            if self._max_rows is not None and len(piece) > self._max_rows:
                pieces[:0] = _split(piece, self._max_rows)
                continue
            try:
                pieces[:0] = await self._send(task, piece)
            except _TooBig as too_big:
                self._max_rows = too_big.max_size
                pieces.insert(0, piece)

    async def _send(self, task: TaskID, chunk: list[_Item]) -> list[list[_Item]]:
        """One call for the chunk (retried while the queue is full), its rows'
        outcomes recorded; answers what is left to send."""

        def retried(error: CallError) -> None:
            for item in chunk:
                item.result.retries += 1
            self._retried += len(chunk)
            self._show(task, 0)

        request = quote_pb.BatchSubmitQuotesRequest(requests=[item.request for item in chunk])
        try:
            response = await retrying_when_full(
                functools.partial(self._call, request, len(chunk)),
                retries=self.retries,
                on_retry=retried,
            )
        except CallError as error:
            return self._refused_chunk(task, chunk, error)
        for item, answer in zip(chunk, response.responses, strict=True):
            item.result.outcome, item.result.id = SUBMITTED, answer.message.id
        self._show(task, len(chunk))
        return []

    async def _call(
        self, request: quote_pb.BatchSubmitQuotesRequest, rows: int
    ) -> quote_pb.BatchSubmitQuotesResponse:
        try:
            return await self.quote.call(self.quote.stub.BatchSubmitQuotes, request)
        except CallError as error:
            max_size = _too_big(error, rows)
            if max_size is not None:
                # Not a CallError, so retrying_when_full does not wait it out.
                raise _TooBig(max_size) from error
            raise

    def _refused_chunk(
        self, task: TaskID, chunk: list[_Item], error: CallError
    ) -> list[list[_Item]]:
        """Record why the chunk was refused. Nothing of it was queued (all or
        nothing), so when the service names the rows at fault, they alone are
        refused, and the rest is answered to be sent again."""
        bad = _row_violations(error, len(chunk))
        conflict = _conflicting(error, chunk)
        if conflict is not None:
            bad = {conflict: []}
        for index, violations in bad.items():
            result = chunk[index].result
            result.outcome, result.why = REFUSED, error.why
            if violations:
                listed = "; ".join(f"{v.field}: {v.description}" for v in violations)
                result.problem = f"invalid request: {listed}"
            else:
                # The service names the item by its place in the call; the row has its line.
                result.problem = error.line().replace(f"item {index}: ", "", 1)
        if bad:
            self._refused += len(bad)
            self._show(task, len(bad))
            rest = [item for index, item in enumerate(chunk) if index not in bad]
            return [rest] if rest else []
        for item in chunk:
            item.result.problem = error.line()
            if error.unreachable:
                item.result.outcome = NO_ANSWER
            else:
                item.result.outcome, item.result.why = REFUSED, error.why
        if error.unreachable:
            self.unreachable = self.unreachable or error
        else:
            self._refused += len(chunk)
        self._show(task, len(chunk))
        return []

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


def _split(chunk: list[_Item], size: int) -> list[list[_Item]]:
    return [chunk[i : i + size] for i in range(0, len(chunk), size)]


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
