"""Translation between quoteflow.quote.v1 messages and the queue's plain types.

Requests are checked here, field by field, before anything is queued: every
bad field becomes one FieldViolation, and all of them are raised together as
an InvalidArgumentError (INVALID_ARGUMENT with a google.rpc.BadRequest).
"""

import math
import time
from dataclasses import dataclass
from typing import Protocol, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from queues.core.rate_limits import RateLimit
from queues.message import Message, MessageStatus, NewMessage, Priority, ReviewDecision, Submitted
from queues.message_stats import QueueStats
from quote_svc.domain import PropertyType, QuoteResult, Submission
from quote_svc.pricing import QuoteJob
from quote_svc.priority_rules import automatic_priority_level
from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.errors import InvalidArgumentError
from service_runtime.submission_limits import submission_violations
from service_runtime.validation import Violations

#: Largest per-request max_retries.
MAX_RETRIES_LIMIT = 10
#: Longest per-request attempt timeout, in seconds.
ATTEMPT_TIMEOUT_LIMIT = 3600.0
#: Most requests in one BatchSubmitQuotes.
MAX_BATCH_SIZE = 1000
FAIRNESS_WEIGHT_LIMIT = 100.0
RATE_LIMIT = 100_000.0
BURST_LIMIT = 10_000
#: The furthest ahead a message may be scheduled: a year, in seconds.
SCHEDULE_LIMIT = 366 * 86_400.0
REVIEWER_MAX_CHARS = 200
NOTE_MAX_CHARS = 2000

_PRIORITIES = {
    pb.PRIORITY_LOW: Priority.LOW,
    pb.PRIORITY_NORMAL: Priority.NORMAL,
    pb.PRIORITY_HIGH: Priority.HIGH,
    pb.PRIORITY_URGENT: Priority.URGENT,
}
_PRIORITY_TO_PB = {value: key for key, value in _PRIORITIES.items()}
_STATUSES = {
    pb.MESSAGE_STATUS_PENDING: MessageStatus.PENDING,
    pb.MESSAGE_STATUS_PROCESSING: MessageStatus.PROCESSING,
    pb.MESSAGE_STATUS_AWAITING_REVIEW: MessageStatus.AWAITING_REVIEW,
    pb.MESSAGE_STATUS_COMPLETED: MessageStatus.COMPLETED,
    pb.MESSAGE_STATUS_FAILED: MessageStatus.FAILED,
    pb.MESSAGE_STATUS_CANCELLED: MessageStatus.CANCELLED,
    pb.MESSAGE_STATUS_REJECTED: MessageStatus.REJECTED,
}
_STATUS_TO_PB = {value: key for key, value in _STATUSES.items()}
_DECISIONS = {
    pb.REVIEW_DECISION_APPROVE: ReviewDecision.APPROVE,
    pb.REVIEW_DECISION_REJECT: ReviewDecision.REJECT,
}
_DECISION_TO_PB = {value: key for key, value in _DECISIONS.items()}
# Members are looked up in tables like these rather than made by calling their
# enum, which costs ten times as much.
_PROPERTY_TYPES = {
    pb.PROPERTY_TYPE_UNSPECIFIED: PropertyType.UNSPECIFIED,
    pb.PROPERTY_TYPE_SINGLE_FAMILY: PropertyType.SINGLE_FAMILY,
    pb.PROPERTY_TYPE_APARTMENT: PropertyType.APARTMENT,
    pb.PROPERTY_TYPE_COMMERCIAL: PropertyType.COMMERCIAL,
}
_PROPERTY_TYPE_TO_PB = {value: key for key, value in _PROPERTY_TYPES.items()}
_PRIORITY_BY_LEVEL = {priority.value: priority for priority in Priority}

_NANOS_PER_SECOND = 1_000_000_000
# The range Timestamp.FromNanoseconds accepts: 0001-01-01 to 9999-12-31 UTC.
_TIMESTAMP_SECONDS_MIN = -62_135_596_800
_TIMESTAMP_SECONDS_MAX = 253_402_300_799


@dataclass(frozen=True, slots=True)
class SubmitArgs:
    """A checked SubmitQuote or RunQuote request, ready for the queue."""

    job: QuoteJob
    priority: Priority
    request_id: str
    max_retries: int | None
    attempt_timeout: float | None
    fairness_key: str = ""
    fairness_weight: float = 1.0
    #: The schedule: a time (epoch seconds), or a delay after acceptance.
    run_at: float | None = None
    delay: float | None = None

    def message(self) -> NewMessage[QuoteJob]:
        return NewMessage(
            self.job,
            self.priority,
            self.request_id,
            self.max_retries,
            self.attempt_timeout,
            self.fairness_key,
            self.fairness_weight,
            self.run_at,
            self.delay,
        )


@dataclass(frozen=True, slots=True)
class ListArgs:
    status: MessageStatus | None
    priority: Priority | None
    dead_lettered_only: bool
    page_size: int


@dataclass(frozen=True, slots=True)
class ReviewArgs:
    message_id: str
    decision: ReviewDecision
    reviewer: str
    note: str


# -- requests -----------------------------------------------------------------


def submit_args(request: pb.SubmitQuoteRequest | pb.RunQuoteRequest) -> SubmitArgs:
    problems = Violations()
    submission = _submission(request, problems)
    priority = _priority(request.priority, "priority", problems, allow_unspecified=True)
    request_id = ""
    max_retries = None
    # Only SubmitQuote carries a request_id and a max_retries.
    if isinstance(request, pb.SubmitQuoteRequest):
        request_id = request.request_id
        problems.check_id("request_id", request_id, required=False)
        if request.HasField("max_retries"):
            max_retries = request.max_retries
            if not 0 <= max_retries <= MAX_RETRIES_LIMIT:
                problems.add(
                    "max_retries", f"must be between 0 and {MAX_RETRIES_LIMIT}; got {max_retries}"
                )
    attempt_timeout = None
    if request.HasField("attempt_timeout"):
        # From the fields, not ToTimedelta(): a Duration may exceed what a
        # timedelta holds, and that must be a violation, not an OverflowError.
        attempt_timeout = problems.check_duration("attempt_timeout", request.attempt_timeout)
        if attempt_timeout is not None and not 0 < attempt_timeout <= ATTEMPT_TIMEOUT_LIMIT:
            problems.add(
                "attempt_timeout",
                f"must be more than 0 s and at most {ATTEMPT_TIMEOUT_LIMIT:g} s; "
                f"got {attempt_timeout:g} s",
            )
    problems.check_id("fairness_key", request.fairness_key, required=False)
    weight = 1.0
    run_at = delay = None
    if isinstance(request, pb.SubmitQuoteRequest):
        if request.HasField("fairness_weight"):
            weight = request.fairness_weight
            if not 0 < weight <= FAIRNESS_WEIGHT_LIMIT:  # NaN fails this too
                problems.add(
                    "fairness_weight",
                    f"must be more than 0 and at most {FAIRNESS_WEIGHT_LIMIT:g}; got {weight:g}",
                )
        run_at, delay = _schedule(request, problems)
    else:
        for field in ("schedule_time", "delay"):
            if request.HasField(field):
                problems.add(field, "RunQuote prices now and cannot be scheduled; use SubmitQuote")
    problems.raise_if_any()
    assert submission is not None
    if priority is None:
        priority = _PRIORITY_BY_LEVEL[automatic_priority_level(submission.coverage_amount)]
    return SubmitArgs(
        job=QuoteJob(submission, request.use_agentic),
        priority=priority,
        request_id=request_id,
        max_retries=max_retries,
        attempt_timeout=attempt_timeout,
        fairness_key=request.fairness_key,
        fairness_weight=weight,
        run_at=run_at,
        delay=delay,
    )


def _schedule(
    request: pb.SubmitQuoteRequest, problems: Violations
) -> tuple[float | None, float | None]:
    """The request's schedule_time (epoch seconds) or delay (seconds), checked."""
    which = request.WhichOneof("schedule")
    if which == "schedule_time":
        stamp = request.schedule_time
        if not (
            _TIMESTAMP_SECONDS_MIN <= stamp.seconds <= _TIMESTAMP_SECONDS_MAX
            and 0 <= stamp.nanos < _NANOS_PER_SECOND
        ):
            problems.add(
                "schedule_time",
                "is not a valid Timestamp: seconds must fall in years 1 to 9999 and nanos "
                f"from 0 to 999,999,999; got {stamp.seconds:,} s and {stamp.nanos:,} ns",
            )
            return None, None
        at = stamp.seconds + stamp.nanos / _NANOS_PER_SECOND
        if at > time.time() + SCHEDULE_LIMIT:
            problems.add("schedule_time", "must be at most one year ahead")
            return None, None
        return at, None
    if which == "delay":
        delay = problems.check_duration("delay", request.delay)
        if delay is not None and not 0 <= delay <= SCHEDULE_LIMIT:
            problems.add("delay", f"must be from 0 s to one year; got {delay:g} s")
            return None, None
        return None, delay
    return None, None


def batch_submit_items(request: pb.BatchSubmitQuotesRequest) -> list[NewMessage[QuoteJob]]:
    """Every item of a batch, checked as submit_args checks one; the violations
    of all items are raised together, each field named under requests[i]."""
    problems = Violations()
    requests = request.requests
    if not 1 <= len(requests) <= MAX_BATCH_SIZE:
        problems.add(
            "requests", f"must hold 1 to {MAX_BATCH_SIZE:,} requests; got {len(requests):,}"
        )
        problems.raise_if_any()
    items: list[NewMessage[QuoteJob]] = []
    first_with: dict[str, int] = {}
    for index, item in enumerate(requests):
        path = f"requests[{index}]"
        request_id = item.request_id
        if request_id:
            first = first_with.setdefault(request_id, index)
            if first != index:
                problems.add(f"{path}.request_id", f"repeats requests[{first}].request_id")
        try:
            args = submit_args(item)
        except InvalidArgumentError as error:
            problems.add_under(path, error.violations)
            continue
        items.append(args.message())
    problems.raise_if_any()
    return items


def rate_limit_args(request: pb.SetRateLimitRequest) -> tuple[str, RateLimit | None]:
    """The key and its new limit (None: lifted), or INVALID_ARGUMENT naming every bad field."""
    problems = Violations()
    problems.check_id("fairness_key", request.fairness_key, required=False)
    rate, burst = request.per_second, request.burst
    if not 0 <= rate <= RATE_LIMIT:  # NaN fails this too
        problems.add("per_second", f"must be from 0 to {RATE_LIMIT:,g}; got {rate:g}")
    if not 0 <= burst <= BURST_LIMIT:
        problems.add("burst", f"must be from 0 to {BURST_LIMIT:,}; got {burst:,}")
    problems.raise_if_any()
    if rate == 0:
        return request.fairness_key, None
    return request.fairness_key, RateLimit(rate, burst or math.ceil(rate))


def rate_limit_to_pb(key: str, limit: RateLimit | None) -> pb.SetRateLimitResponse:
    if limit is None:
        return pb.SetRateLimitResponse(fairness_key=key)
    return pb.SetRateLimitResponse(fairness_key=key, per_second=limit.per_second, burst=limit.burst)


def list_args(request: pb.ListMessagesRequest, *, default_size: int, max_size: int) -> ListArgs:
    problems = Violations()
    status = None
    if request.status != pb.MESSAGE_STATUS_UNSPECIFIED:
        status = _STATUSES.get(request.status)
        if status is None:
            problems.add("status", f"unknown MessageStatus {request.status}")
    priority = _priority(request.priority, "priority", problems, allow_unspecified=True)
    if request.page_size < 0:
        problems.add("page_size", f"must not be negative; got {request.page_size}")
    problems.raise_if_any()
    page_size = min(request.page_size or default_size, max_size)
    return ListArgs(status, priority, request.dead_lettered_only, page_size)


def review_args(request: pb.ReviewQuoteRequest) -> ReviewArgs:
    problems = Violations()
    problems.check_id("id", request.id)
    decision = _DECISIONS.get(request.decision)
    if decision is None:
        problems.add("decision", "must be REVIEW_DECISION_APPROVE or REVIEW_DECISION_REJECT")
    problems.check_text("reviewer", request.reviewer, REVIEWER_MAX_CHARS)
    problems.check_text("note", request.note, NOTE_MAX_CHARS, required=False, line_breaks=True)
    problems.raise_if_any()
    assert decision is not None
    return ReviewArgs(request.id, decision, request.reviewer.strip(), request.note)


def _submission(
    request: pb.SubmitQuoteRequest | pb.RunQuoteRequest, problems: Violations
) -> Submission | None:
    if not request.HasField("submission"):
        problems.add("submission", "is required")
        return None
    given = request.submission
    # Each field read once: a protobuf attribute read costs about as much as a check.
    applicant_name = given.applicant_name
    address = given.address
    coverage_amount = given.coverage_amount
    property_type = given.property_type
    year_built = given.year_built
    prior_claims = given.prior_claims
    found = submission_violations(
        applicant_name, address, coverage_amount, property_type, year_built, prior_claims
    )
    if found:
        for field, description in found:
            problems.add(field, description)
        return None
    return Submission(
        applicant_name=applicant_name.strip(),
        address=address.strip(),
        coverage_amount=coverage_amount,
        property_type=_PROPERTY_TYPES[property_type],
        year_built=year_built,
        prior_claims=prior_claims,
    )


def _priority(
    value: pb.Priority, field: str, problems: Violations, *, allow_unspecified: bool
) -> Priority | None:
    if value == pb.PRIORITY_UNSPECIFIED and allow_unspecified:
        return None
    priority = _PRIORITIES.get(value)
    if priority is None:
        known = ", ".join(pb.Priority.Name(v) for v in _PRIORITIES)
        problems.add(field, f"must be one of {known}; got {value}")
    return priority


# -- responses ----------------------------------------------------------------
#
# Each part of a response is written in place (into response.message,
# out.created_at, out.factors.add()…): a message built apart and then passed
# to its parent is copied into it. Times are set as whole seconds and
# nanoseconds, which costs less than the well-known types' From* helpers.


def set_timestamp(stamp: Timestamp, seconds: float) -> None:
    """Set stamp to seconds since the epoch, to the nearest nanosecond."""
    whole, nanos = divmod(round(seconds * 1e9), _NANOS_PER_SECOND)
    if not _TIMESTAMP_SECONDS_MIN <= whole <= _TIMESTAMP_SECONDS_MAX:
        # Word for word what Timestamp.FromNanoseconds raises.
        raise ValueError(
            f"Timestamp is not valid: Seconds {whole} must be in range "
            f"[{_TIMESTAMP_SECONDS_MIN}, {_TIMESTAMP_SECONDS_MAX}]."
        )
    stamp.seconds = whole
    stamp.nanos = nanos


def set_duration(span: Duration, seconds: float) -> None:
    """Set span to seconds, to the nearest nanosecond."""
    whole, nanos = divmod(round(seconds * 1e9), _NANOS_PER_SECOND)
    # A Duration's nanos take the sign of its seconds.
    if whole < 0 and nanos > 0:
        whole += 1
        nanos -= _NANOS_PER_SECOND
    span.seconds = whole
    span.nanos = nanos


def set_submitted(out: pb.SubmitQuoteResponse, submitted: Submitted[QuoteJob, QuoteResult]) -> None:
    """Write a submission's answer into out, an empty SubmitQuoteResponse."""
    out.queue_position = submitted.position
    set_duration(out.estimated_processing_time, submitted.estimated_seconds)
    set_message(out.message, submitted.message)


class _HasMessage(Protocol):
    message: pb.QueueMessage


_Response = TypeVar("_Response", bound=_HasMessage)


def with_message(response: _Response, message: Message[QuoteJob, QuoteResult]) -> _Response:
    """response, a fresh one, with message written into its message field."""
    set_message(response.message, message)
    return response


def set_message(out: pb.QueueMessage, message: Message[QuoteJob, QuoteResult]) -> None:
    """Write message into out, an empty QueueMessage (usually a response's field)."""
    out.id = message.id
    submission = message.payload.submission
    payload = out.payload
    payload.applicant_name = submission.applicant_name
    payload.address = submission.address
    payload.coverage_amount = submission.coverage_amount
    payload.property_type = _PROPERTY_TYPE_TO_PB[submission.property_type]
    payload.year_built = submission.year_built
    payload.prior_claims = submission.prior_claims
    out.priority = _PRIORITY_TO_PB[message.priority]
    out.status = _STATUS_TO_PB[message.status]
    set_timestamp(out.created_at, message.created_at)
    if message.started_at is not None:
        set_timestamp(out.started_at, message.started_at)
    if message.completed_at is not None:
        set_timestamp(out.completed_at, message.completed_at)
    out.error_message = message.error_message
    out.retry_count = message.retry_count
    out.max_retries = message.max_retries
    set_duration(out.attempt_timeout, message.attempt_timeout)
    if message.next_attempt_at is not None:
        set_timestamp(out.next_attempt_at, message.next_attempt_at)
    out.use_agentic = message.payload.use_agentic
    out.dead_lettered = message.dead_lettered
    out.request_id = message.request_id
    out.fairness_key = message.fairness_key
    if message.effective_priority is not None:
        out.effective_priority = _PRIORITY_TO_PB[message.effective_priority]
    if message.scheduled_for is not None:
        set_timestamp(out.schedule_time, message.scheduled_for)
    if message.result is not None:
        _set_result(out.result, message.result, message.review_reason)
    review = message.review
    if review is not None:
        out_review = out.review
        out_review.decision = _DECISION_TO_PB[review.decision]
        out_review.reviewer = review.reviewer
        out_review.note = review.note
        set_timestamp(out_review.reviewed_at, review.reviewed_at)


def _set_result(out: pb.QuoteResult, result: QuoteResult, review_reason: str) -> None:
    out.annual_premium_cents = result.annual_premium_cents
    out.base_rate_per_thousand_cents = result.base_rate_per_thousand_cents
    out.base_premium_cents = result.base_premium_cents
    add_factor = out.factors.add
    for f in result.factors:
        add_factor(name=f.name, multiplier=f.multiplier, reason=f.reason)
    add_step = out.steps.add
    for s in result.steps:
        step = add_step(name=s.name, outcome=s.outcome)
        set_timestamp(step.completed_at, s.completed_at)
    out.processor = result.processor
    out.risk_score = result.risk_score
    out.review_reason = review_reason


def stats_interval(
    request: pb.WatchStatsRequest, *, default: float, bounds: tuple[float, float]
) -> float:
    """WatchStats' min_interval in seconds: default when unset; a violation
    (INVALID_ARGUMENT) when it is not a Duration or falls outside bounds."""
    if not request.HasField("min_interval"):
        return default
    problems = Violations()
    interval = problems.check_duration("min_interval", request.min_interval)
    low, high = bounds
    if interval is not None and not low <= interval <= high:
        problems.add("min_interval", f"must be from {low:g} s to {high:g} s; got {interval:g} s")
    problems.raise_if_any()
    assert interval is not None
    return interval


def stats_to_pb(stats: QueueStats) -> pb.GetStatsResponse:
    out = pb.GetStatsResponse()
    out.pending_count = stats.pending
    out.processing_count = stats.processing
    out.completed_count = stats.completed
    out.failed_count = stats.failed
    out.cancelled_count = stats.cancelled
    out.dead_letter_count = stats.dead_letters
    out.max_size = stats.max_size
    if stats.oldest_pending is not None:
        set_timestamp(out.oldest_pending, stats.oldest_pending)
    out.longest_processing_seconds = stats.longest_processing_seconds
    add_priority = out.by_priority.add
    for c in stats.by_priority:
        add_priority(
            priority=_PRIORITY_TO_PB[c.priority],
            pending_count=c.pending,
            processing_count=c.processing,
        )
    out.awaiting_review_count = stats.awaiting_review
    out.rejected_count = stats.rejected
    out.workers = stats.workers
    add_key = out.busiest_keys.add
    for key, pending in stats.busiest_keys:
        add_key(fairness_key=key, pending_count=pending)
    return out
