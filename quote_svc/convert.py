"""Translation between quoteflow.quote.v1 messages and the queue's plain types.

Requests are checked here, field by field, before anything is queued: every
bad field becomes one FieldViolation, and all of them are raised together as
an InvalidArgumentError (INVALID_ARGUMENT with a google.rpc.BadRequest).
"""

from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from queues.message import Message, MessageStatus, Priority, ReviewDecision
from queues.message_stats import QueueStats
from quote_svc import limits
from quote_svc.domain import PropertyType, QuoteResult, Submission
from quote_svc.pricing import QuoteJob
from quote_svc.priority_rules import automatic_priority_level
from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.validation import Violations

#: Largest per-request max_retries.
MAX_RETRIES_LIMIT = 10
#: Longest per-request attempt timeout, in seconds.
ATTEMPT_TIMEOUT_LIMIT = 3600.0
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
_PROPERTY_TYPE_TO_PB = {
    PropertyType.UNSPECIFIED: pb.PROPERTY_TYPE_UNSPECIFIED,
    PropertyType.SINGLE_FAMILY: pb.PROPERTY_TYPE_SINGLE_FAMILY,
    PropertyType.APARTMENT: pb.PROPERTY_TYPE_APARTMENT,
    PropertyType.COMMERCIAL: pb.PROPERTY_TYPE_COMMERCIAL,
}


@dataclass(frozen=True, slots=True)
class SubmitArgs:
    """A checked SubmitQuote or RunQuote request, ready for the queue."""

    job: QuoteJob
    priority: Priority
    request_id: str
    max_retries: int | None
    attempt_timeout: float | None


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
    request_id = getattr(request, "request_id", "")
    problems.check_id("request_id", request_id, required=False)
    max_retries = None
    if isinstance(request, pb.SubmitQuoteRequest) and request.HasField("max_retries"):
        max_retries = request.max_retries
        if not 0 <= max_retries <= MAX_RETRIES_LIMIT:
            problems.add(
                "max_retries", f"must be between 0 and {MAX_RETRIES_LIMIT}; got {max_retries}"
            )
    attempt_timeout = None
    if request.HasField("attempt_timeout"):
        attempt_timeout = request.attempt_timeout.ToTimedelta().total_seconds()
        if not 0 < attempt_timeout <= ATTEMPT_TIMEOUT_LIMIT:
            problems.add(
                "attempt_timeout",
                f"must be more than 0 s and at most {ATTEMPT_TIMEOUT_LIMIT:g} s; "
                f"got {attempt_timeout:g} s",
            )
    problems.raise_if_any()
    assert submission is not None
    if priority is None:
        priority = Priority(automatic_priority_level(submission.coverage_amount))
    return SubmitArgs(
        job=QuoteJob(submission, request.use_agentic),
        priority=priority,
        request_id=request_id,
        max_retries=max_retries,
        attempt_timeout=attempt_timeout,
    )


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
    if not request.reviewer.strip():
        problems.add("reviewer", "is required")
    elif len(request.reviewer) > REVIEWER_MAX_CHARS:
        problems.add("reviewer", f"must be at most {REVIEWER_MAX_CHARS} characters")
    if len(request.note) > NOTE_MAX_CHARS:
        problems.add("note", f"must be at most {NOTE_MAX_CHARS:,} characters")
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
    found = limits.submission_violations(
        given.applicant_name,
        given.address,
        given.coverage_amount,
        given.property_type,
        given.year_built,
        given.prior_claims,
    )
    for field, description in found:
        problems.add(field, description)
    if found:
        return None
    return Submission(
        applicant_name=given.applicant_name.strip(),
        address=given.address.strip(),
        coverage_amount=given.coverage_amount,
        property_type=PropertyType(given.property_type),
        year_built=given.year_built,
        prior_claims=given.prior_claims,
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


def timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def duration(seconds: float) -> Duration:
    span = Duration()
    span.FromNanoseconds(round(seconds * 1e9))
    return span


def message_to_pb(message: Message[QuoteJob, QuoteResult]) -> pb.QueueMessage:
    submission = message.payload.submission
    out = pb.QueueMessage(
        id=message.id,
        payload=pb.Submission(
            applicant_name=submission.applicant_name,
            address=submission.address,
            coverage_amount=submission.coverage_amount,
            property_type=_PROPERTY_TYPE_TO_PB[submission.property_type],
            year_built=submission.year_built,
            prior_claims=submission.prior_claims,
        ),
        priority=_PRIORITY_TO_PB[message.priority],
        status=_STATUS_TO_PB[message.status],
        created_at=timestamp(message.created_at),
        started_at=timestamp(message.started_at),
        completed_at=timestamp(message.completed_at),
        error_message=message.error_message,
        retry_count=message.retry_count,
        max_retries=message.max_retries,
        attempt_timeout=duration(message.attempt_timeout),
        next_attempt_at=timestamp(message.next_attempt_at),
        use_agentic=message.payload.use_agentic,
        dead_lettered=message.dead_lettered,
        request_id=message.request_id,
    )
    if message.result is not None:
        out.result.CopyFrom(_result_to_pb(message.result, message.review_reason))
    if message.review is not None:
        out.review.CopyFrom(
            pb.Review(
                decision=_DECISION_TO_PB[message.review.decision],
                reviewer=message.review.reviewer,
                note=message.review.note,
                reviewed_at=timestamp(message.review.reviewed_at),
            )
        )
    return out


def _result_to_pb(result: QuoteResult, review_reason: str) -> pb.QuoteResult:
    return pb.QuoteResult(
        annual_premium_cents=result.annual_premium_cents,
        base_rate_per_thousand_cents=result.base_rate_per_thousand_cents,
        base_premium_cents=result.base_premium_cents,
        factors=[
            pb.PremiumFactor(name=f.name, multiplier=f.multiplier, reason=f.reason)
            for f in result.factors
        ],
        steps=[
            pb.UnderwritingStep(
                name=s.name, outcome=s.outcome, completed_at=timestamp(s.completed_at)
            )
            for s in result.steps
        ],
        processor=result.processor,
        risk_score=result.risk_score,
        review_reason=review_reason,
    )


def stats_to_pb(stats: QueueStats) -> pb.GetStatsResponse:
    return pb.GetStatsResponse(
        pending_count=stats.pending,
        processing_count=stats.processing,
        completed_count=stats.completed,
        failed_count=stats.failed,
        cancelled_count=stats.cancelled,
        dead_letter_count=stats.dead_letters,
        max_size=stats.max_size,
        oldest_pending=timestamp(stats.oldest_pending),
        longest_processing_seconds=stats.longest_processing_seconds,
        by_priority=[
            pb.PriorityStats(
                priority=_PRIORITY_TO_PB[c.priority],
                pending_count=c.pending,
                processing_count=c.processing,
            )
            for c in stats.by_priority
        ],
        awaiting_review_count=stats.awaiting_review,
        rejected_count=stats.rejected,
        workers=stats.workers,
    )
