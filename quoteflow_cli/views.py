"""How quotes, order events and tasks look to people (rich renderables)."""

from collections.abc import Iterable
from datetime import UTC

from google.protobuf.duration_pb2 import Duration
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb

_GOOD = "green"
_BAD = "red"
_WAITING = "yellow"

_QUOTE_STYLES = {
    quote_pb.MESSAGE_STATUS_COMPLETED: _GOOD,
    quote_pb.MESSAGE_STATUS_AWAITING_REVIEW: _WAITING,
    quote_pb.MESSAGE_STATUS_FAILED: _BAD,
    quote_pb.MESSAGE_STATUS_REJECTED: _BAD,
    quote_pb.MESSAGE_STATUS_CANCELLED: _BAD,
}
_TASK_STYLES = {
    requestor_pb.TASK_STATUS_SUCCEEDED: _GOOD,
    requestor_pb.TASK_STATUS_FAILED: _BAD,
    requestor_pb.TASK_STATUS_CANCELLED: _BAD,
    requestor_pb.TASK_STATUS_TIMED_OUT: _BAD,
}


def label(enum: EnumTypeWrapper, value: int) -> str:
    """An enum value as people say it: MESSAGE_STATUS_AWAITING_REVIEW is "awaiting review"."""
    # Every enum's zero value is <PREFIX>_UNSPECIFIED, which gives the prefix to drop.
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    name = enum.Name(value) if value in enum.values() else str(value)
    return name.removeprefix(prefix).lower().replace("_", " ")


def money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def when(timestamp: Timestamp) -> str:
    if not timestamp.seconds and not timestamp.nanos:
        return ""
    local = timestamp.ToDatetime(tzinfo=UTC).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S")


def seconds(duration: Duration) -> str:
    return f"{duration.ToNanoseconds() / 1e9:.3g} s"


def quote_status(message: quote_pb.QueueMessage) -> Text:
    return Text(
        label(quote_pb.MessageStatus, message.status), style=_QUOTE_STYLES.get(message.status, "")
    )


def quote_state_line(message: quote_pb.QueueMessage) -> Text:
    """One line per state a watch sees: the time, the status and what is new in it."""
    stamp = when(message.completed_at) or when(message.started_at) or when(message.created_at)
    line = Text.assemble(stamp, "  ", message.id, "  ", quote_status(message))
    status = message.status
    if status == quote_pb.MESSAGE_STATUS_PROCESSING:
        line.append(f"  attempt {message.retry_count + 1} of {message.max_retries + 1}")
    elif status == quote_pb.MESSAGE_STATUS_PENDING and message.error_message:
        line.append(f"  retry {message.retry_count} after: {message.error_message}")
    elif message.HasField("result") and status != quote_pb.MESSAGE_STATUS_FAILED:
        line.append(f"  premium {money(message.result.annual_premium_cents)}")
        if message.result.review_reason:
            line.append(f"; review: {message.result.review_reason}")
    if status == quote_pb.MESSAGE_STATUS_FAILED:
        line.append(f"  {message.error_message}")
    return line


def quote_detail(message: quote_pb.QueueMessage) -> RenderableType:
    """Everything about one quote: its fields, then the factors and steps that priced it."""
    submission, result = message.payload, message.result
    grid = _fields_grid()
    rows: list[tuple[str, str | Text]] = [
        ("id", message.id),
        ("status", quote_status(message)),
        ("applicant", submission.applicant_name),
        ("address", submission.address),
        ("coverage", f"{submission.coverage_amount:,}"),
        ("property", label(quote_pb.PropertyType, submission.property_type)),
        ("year built", str(submission.year_built or "unknown")),
        ("prior claims", str(submission.prior_claims)),
        ("priority", label(quote_pb.Priority, message.priority)),
        (
            "served at",
            label(quote_pb.Priority, message.effective_priority)
            if message.effective_priority
            else "",
        ),
        ("fairness key", message.fairness_key),
        ("scheduled for", when(message.schedule_time)),
        ("pricing", "agentic underwriting" if message.use_agentic else "rating"),
        ("attempts failed", f"{message.retry_count} (of {message.max_retries} retries)"),
        ("dead-lettered", "yes" if message.dead_lettered else ""),
        ("error", message.error_message),
        ("created", when(message.created_at)),
        ("started", when(message.started_at)),
        ("finished", when(message.completed_at)),
        ("next attempt", when(message.next_attempt_at)),
        ("request id", message.request_id),
    ]
    if message.HasField("result"):
        rows += [
            ("annual premium", Text(money(result.annual_premium_cents), style="bold")),
            ("base premium", money(result.base_premium_cents)),
            ("priced by", result.processor),
            ("risk score", str(result.risk_score) if result.steps else ""),
            ("review reason", result.review_reason),
        ]
    if message.HasField("review"):
        review = message.review
        decision = label(quote_pb.ReviewDecision, review.decision)
        rows += [
            ("review", f"{decision} by {review.reviewer} at {when(review.reviewed_at)}"),
            ("review note", review.note),
        ]
    for name, value in rows:
        if value:
            grid.add_row(name, value)
    parts: list[RenderableType] = [grid]
    if result.factors:
        factors = Table(title="premium factors", title_justify="left")
        factors.add_column("factor")
        factors.add_column("multiplier", justify="right")
        factors.add_column("why")
        for factor in result.factors:
            factors.add_row(factor.name, f"{factor.multiplier:g}", factor.reason)
        parts.append(factors)
    if result.steps:
        steps = Table(title="underwriting steps", title_justify="left")
        steps.add_column("step")
        steps.add_column("outcome")
        for step in result.steps:
            steps.add_row(step.name, step.outcome)
        parts.append(steps)
    return Group(*parts)


def dead_letters_table(messages: Iterable[quote_pb.QueueMessage], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    # An id is there to be copied whole (into `dead-letters redrive`), so it never wraps.
    table.add_column("id", no_wrap=True)
    table.add_column("applicant")
    table.add_column("coverage", justify="right")
    table.add_column("attempts", justify="right")
    table.add_column("last error")
    table.add_column("failed at")
    for message in messages:
        table.add_row(
            message.id,
            message.payload.applicant_name,
            f"{message.payload.coverage_amount:,}",
            str(message.retry_count),
            message.error_message,
            when(message.completed_at),
        )
    return table


def event_line(event: processor_pb.OrderEvent) -> Text:
    """One order event, as a watch or a follow shows it."""
    line = Text(f"#{event.sequence}  {when(event.created_at)}  ")
    if event.kind == processor_pb.ORDER_EVENT_KIND_PROPOSAL_NEW:
        line.append(event.text, style=_GOOD)
        line.append(
            f"  premium {money(event.quote.result.annual_premium_cents)}"
            f"  quote {event.quote.id} ({label(quote_pb.MessageStatus, event.quote.status)})"
        )
    elif event.kind == processor_pb.ORDER_EVENT_KIND_PROPOSAL_FAILED:
        line.append(event.text, style=_BAD)
        line.append(f"  {event.error_message}")
    else:
        line.append(f"order {event.order_req_id} completed", style="bold")
    return line


def task_detail(task: requestor_pb.TaskResult) -> RenderableType:
    grid = _fields_grid()
    status = Text(
        label(requestor_pb.TaskStatus, task.status), style=_TASK_STYLES.get(task.status, "")
    )
    rows: list[tuple[str, str | Text]] = [
        ("task", task.task_id),
        ("order", task.order_req_id),
        ("status", status),
        ("priority", label(requestor_pb.TaskPriority, task.priority)),
        ("proposals", str(len(task.proposals))),
        ("last event", str(task.last_sequence)),
        ("reconnects", str(task.reconnects or "")),
        ("error", task.error_message),
        ("placed", when(task.created_at)),
        ("started", when(task.started_at)),
        ("finished", when(task.completed_at)),
        ("deadline", when(task.deadline)),
    ]
    for name, value in rows:
        if value:
            grid.add_row(name, value)
    if not task.proposals:
        return grid
    proposals = Table(title="proposals", title_justify="left")
    for column in ("#", "proposal", "outcome", "premium", "quote"):
        proposals.add_column(column, justify="right" if column in ("#", "premium") else "left")
    for event in task.proposals:
        new = event.kind == processor_pb.ORDER_EVENT_KIND_PROPOSAL_NEW
        proposals.add_row(
            str(event.sequence),
            event.proposal_id,
            Text("priced", style=_GOOD) if new else Text("failed", style=_BAD),
            money(event.quote.result.annual_premium_cents) if new else "",
            event.quote.id if new else event.error_message,
        )
    return Group(grid, proposals)


def _fields_grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    return grid
