import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_LOW: _ClassVar[Priority]
    PRIORITY_NORMAL: _ClassVar[Priority]
    PRIORITY_HIGH: _ClassVar[Priority]
    PRIORITY_URGENT: _ClassVar[Priority]

class MessageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_STATUS_UNSPECIFIED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_PENDING: _ClassVar[MessageStatus]
    MESSAGE_STATUS_PROCESSING: _ClassVar[MessageStatus]
    MESSAGE_STATUS_AWAITING_REVIEW: _ClassVar[MessageStatus]
    MESSAGE_STATUS_COMPLETED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_FAILED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_CANCELLED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_REJECTED: _ClassVar[MessageStatus]

class PropertyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPERTY_TYPE_UNSPECIFIED: _ClassVar[PropertyType]
    PROPERTY_TYPE_SINGLE_FAMILY: _ClassVar[PropertyType]
    PROPERTY_TYPE_APARTMENT: _ClassVar[PropertyType]
    PROPERTY_TYPE_COMMERCIAL: _ClassVar[PropertyType]

class ReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_DECISION_UNSPECIFIED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_APPROVE: _ClassVar[ReviewDecision]
    REVIEW_DECISION_REJECT: _ClassVar[ReviewDecision]
PRIORITY_UNSPECIFIED: Priority
PRIORITY_LOW: Priority
PRIORITY_NORMAL: Priority
PRIORITY_HIGH: Priority
PRIORITY_URGENT: Priority
MESSAGE_STATUS_UNSPECIFIED: MessageStatus
MESSAGE_STATUS_PENDING: MessageStatus
MESSAGE_STATUS_PROCESSING: MessageStatus
MESSAGE_STATUS_AWAITING_REVIEW: MessageStatus
MESSAGE_STATUS_COMPLETED: MessageStatus
MESSAGE_STATUS_FAILED: MessageStatus
MESSAGE_STATUS_CANCELLED: MessageStatus
MESSAGE_STATUS_REJECTED: MessageStatus
PROPERTY_TYPE_UNSPECIFIED: PropertyType
PROPERTY_TYPE_SINGLE_FAMILY: PropertyType
PROPERTY_TYPE_APARTMENT: PropertyType
PROPERTY_TYPE_COMMERCIAL: PropertyType
REVIEW_DECISION_UNSPECIFIED: ReviewDecision
REVIEW_DECISION_APPROVE: ReviewDecision
REVIEW_DECISION_REJECT: ReviewDecision

class Submission(_message.Message):
    __slots__ = ("applicant_name", "address", "coverage_amount", "property_type", "year_built", "prior_claims")
    APPLICANT_NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PROPERTY_TYPE_FIELD_NUMBER: _ClassVar[int]
    YEAR_BUILT_FIELD_NUMBER: _ClassVar[int]
    PRIOR_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    applicant_name: str
    address: str
    coverage_amount: int
    property_type: PropertyType
    year_built: int
    prior_claims: int
    def __init__(self, applicant_name: _Optional[str] = ..., address: _Optional[str] = ..., coverage_amount: _Optional[int] = ..., property_type: _Optional[_Union[PropertyType, str]] = ..., year_built: _Optional[int] = ..., prior_claims: _Optional[int] = ...) -> None: ...

class PremiumFactor(_message.Message):
    __slots__ = ("name", "multiplier", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    multiplier: float
    reason: str
    def __init__(self, name: _Optional[str] = ..., multiplier: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class UnderwritingStep(_message.Message):
    __slots__ = ("name", "outcome", "completed_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    outcome: str
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., outcome: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QuoteResult(_message.Message):
    __slots__ = ("annual_premium_cents", "base_rate_per_thousand_cents", "base_premium_cents", "factors", "steps", "processor", "risk_score", "review_reason")
    ANNUAL_PREMIUM_CENTS_FIELD_NUMBER: _ClassVar[int]
    BASE_RATE_PER_THOUSAND_CENTS_FIELD_NUMBER: _ClassVar[int]
    BASE_PREMIUM_CENTS_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_FIELD_NUMBER: _ClassVar[int]
    RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASON_FIELD_NUMBER: _ClassVar[int]
    annual_premium_cents: int
    base_rate_per_thousand_cents: int
    base_premium_cents: int
    factors: _containers.RepeatedCompositeFieldContainer[PremiumFactor]
    steps: _containers.RepeatedCompositeFieldContainer[UnderwritingStep]
    processor: str
    risk_score: int
    review_reason: str
    def __init__(self, annual_premium_cents: _Optional[int] = ..., base_rate_per_thousand_cents: _Optional[int] = ..., base_premium_cents: _Optional[int] = ..., factors: _Optional[_Iterable[_Union[PremiumFactor, _Mapping]]] = ..., steps: _Optional[_Iterable[_Union[UnderwritingStep, _Mapping]]] = ..., processor: _Optional[str] = ..., risk_score: _Optional[int] = ..., review_reason: _Optional[str] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("decision", "reviewer", "note", "reviewed_at")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_AT_FIELD_NUMBER: _ClassVar[int]
    decision: ReviewDecision
    reviewer: str
    note: str
    reviewed_at: _timestamp_pb2.Timestamp
    def __init__(self, decision: _Optional[_Union[ReviewDecision, str]] = ..., reviewer: _Optional[str] = ..., note: _Optional[str] = ..., reviewed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QueueMessage(_message.Message):
    __slots__ = ("id", "payload", "priority", "status", "created_at", "started_at", "completed_at", "error_message", "retry_count", "max_retries", "attempt_timeout", "next_attempt_at", "use_agentic", "result", "review", "dead_lettered", "request_id", "fairness_key", "effective_priority", "schedule_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    USE_AGENTIC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    payload: Submission
    priority: Priority
    status: MessageStatus
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    error_message: str
    retry_count: int
    max_retries: int
    attempt_timeout: _duration_pb2.Duration
    next_attempt_at: _timestamp_pb2.Timestamp
    use_agentic: bool
    result: QuoteResult
    review: Review
    dead_lettered: bool
    request_id: str
    fairness_key: str
    effective_priority: Priority
    schedule_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., payload: _Optional[_Union[Submission, _Mapping]] = ..., priority: _Optional[_Union[Priority, str]] = ..., status: _Optional[_Union[MessageStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error_message: _Optional[str] = ..., retry_count: _Optional[int] = ..., max_retries: _Optional[int] = ..., attempt_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., use_agentic: _Optional[bool] = ..., result: _Optional[_Union[QuoteResult, _Mapping]] = ..., review: _Optional[_Union[Review, _Mapping]] = ..., dead_lettered: _Optional[bool] = ..., request_id: _Optional[str] = ..., fairness_key: _Optional[str] = ..., effective_priority: _Optional[_Union[Priority, str]] = ..., schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitQuoteRequest(_message.Message):
    __slots__ = ("submission", "use_agentic", "priority", "request_id", "max_retries", "attempt_timeout", "fairness_key", "fairness_weight", "schedule_time", "delay")
    SUBMISSION_FIELD_NUMBER: _ClassVar[int]
    USE_AGENTIC_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    submission: Submission
    use_agentic: bool
    priority: Priority
    request_id: str
    max_retries: int
    attempt_timeout: _duration_pb2.Duration
    fairness_key: str
    fairness_weight: float
    schedule_time: _timestamp_pb2.Timestamp
    delay: _duration_pb2.Duration
    def __init__(self, submission: _Optional[_Union[Submission, _Mapping]] = ..., use_agentic: _Optional[bool] = ..., priority: _Optional[_Union[Priority, str]] = ..., request_id: _Optional[str] = ..., max_retries: _Optional[int] = ..., attempt_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., fairness_key: _Optional[str] = ..., fairness_weight: _Optional[float] = ..., schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SubmitQuoteResponse(_message.Message):
    __slots__ = ("message", "queue_position", "estimated_processing_time")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_PROCESSING_TIME_FIELD_NUMBER: _ClassVar[int]
    message: QueueMessage
    queue_position: int
    estimated_processing_time: _duration_pb2.Duration
    def __init__(self, message: _Optional[_Union[QueueMessage, _Mapping]] = ..., queue_position: _Optional[int] = ..., estimated_processing_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class BatchSubmitQuotesRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SubmitQuoteRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[SubmitQuoteRequest, _Mapping]]] = ...) -> None: ...

class BatchSubmitQuotesResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[SubmitQuoteResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[SubmitQuoteResponse, _Mapping]]] = ...) -> None: ...

class RunQuoteRequest(_message.Message):
    __slots__ = ("submission", "use_agentic", "priority", "attempt_timeout", "fairness_key", "schedule_time", "delay")
    SUBMISSION_FIELD_NUMBER: _ClassVar[int]
    USE_AGENTIC_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    submission: Submission
    use_agentic: bool
    priority: Priority
    attempt_timeout: _duration_pb2.Duration
    fairness_key: str
    schedule_time: _timestamp_pb2.Timestamp
    delay: _duration_pb2.Duration
    def __init__(self, submission: _Optional[_Union[Submission, _Mapping]] = ..., use_agentic: _Optional[bool] = ..., priority: _Optional[_Union[Priority, str]] = ..., attempt_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., fairness_key: _Optional[str] = ..., schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RunQuoteResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: QueueMessage
    def __init__(self, message: _Optional[_Union[QueueMessage, _Mapping]] = ...) -> None: ...

class GetMessageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: QueueMessage
    def __init__(self, message: _Optional[_Union[QueueMessage, _Mapping]] = ...) -> None: ...

class WatchMessageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: QueueMessage
    def __init__(self, message: _Optional[_Union[QueueMessage, _Mapping]] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("status", "priority", "page_size", "page_token", "dead_lettered_only")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_ONLY_FIELD_NUMBER: _ClassVar[int]
    status: MessageStatus
    priority: Priority
    page_size: int
    page_token: str
    dead_lettered_only: bool
    def __init__(self, status: _Optional[_Union[MessageStatus, str]] = ..., priority: _Optional[_Union[Priority, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., dead_lettered_only: _Optional[bool] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[QueueMessage]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[QueueMessage, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelMessageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: QueueMessage
    def __init__(self, message: _Optional[_Union[QueueMessage, _Mapping]] = ...) -> None: ...

class RedriveMessageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RedriveMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: QueueMessage
    def __init__(self, message: _Optional[_Union[QueueMessage, _Mapping]] = ...) -> None: ...

class ReviewQuoteRequest(_message.Message):
    __slots__ = ("id", "decision", "reviewer", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    decision: ReviewDecision
    reviewer: str
    note: str
    def __init__(self, id: _Optional[str] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ..., reviewer: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ReviewQuoteResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: QueueMessage
    def __init__(self, message: _Optional[_Union[QueueMessage, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchStatsRequest(_message.Message):
    __slots__ = ("min_interval",)
    MIN_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    min_interval: _duration_pb2.Duration
    def __init__(self, min_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: GetStatsResponse
    def __init__(self, stats: _Optional[_Union[GetStatsResponse, _Mapping]] = ...) -> None: ...

class PriorityStats(_message.Message):
    __slots__ = ("priority", "pending_count", "processing_count")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_COUNT_FIELD_NUMBER: _ClassVar[int]
    priority: Priority
    pending_count: int
    processing_count: int
    def __init__(self, priority: _Optional[_Union[Priority, str]] = ..., pending_count: _Optional[int] = ..., processing_count: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("pending_count", "processing_count", "completed_count", "failed_count", "cancelled_count", "dead_letter_count", "max_size", "oldest_pending", "longest_processing_seconds", "by_priority", "awaiting_review_count", "rejected_count", "workers", "busiest_keys")
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_FIELD_NUMBER: _ClassVar[int]
    LONGEST_PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    AWAITING_REVIEW_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    BUSIEST_KEYS_FIELD_NUMBER: _ClassVar[int]
    pending_count: int
    processing_count: int
    completed_count: int
    failed_count: int
    cancelled_count: int
    dead_letter_count: int
    max_size: int
    oldest_pending: _timestamp_pb2.Timestamp
    longest_processing_seconds: float
    by_priority: _containers.RepeatedCompositeFieldContainer[PriorityStats]
    awaiting_review_count: int
    rejected_count: int
    workers: int
    busiest_keys: _containers.RepeatedCompositeFieldContainer[KeyStats]
    def __init__(self, pending_count: _Optional[int] = ..., processing_count: _Optional[int] = ..., completed_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., cancelled_count: _Optional[int] = ..., dead_letter_count: _Optional[int] = ..., max_size: _Optional[int] = ..., oldest_pending: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., longest_processing_seconds: _Optional[float] = ..., by_priority: _Optional[_Iterable[_Union[PriorityStats, _Mapping]]] = ..., awaiting_review_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., workers: _Optional[int] = ..., busiest_keys: _Optional[_Iterable[_Union[KeyStats, _Mapping]]] = ...) -> None: ...

class SetRateLimitRequest(_message.Message):
    __slots__ = ("fairness_key", "per_second", "burst")
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    fairness_key: str
    per_second: float
    burst: int
    def __init__(self, fairness_key: _Optional[str] = ..., per_second: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...

class SetRateLimitResponse(_message.Message):
    __slots__ = ("fairness_key", "per_second", "burst")
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    fairness_key: str
    per_second: float
    burst: int
    def __init__(self, fairness_key: _Optional[str] = ..., per_second: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...

class KeyStats(_message.Message):
    __slots__ = ("fairness_key", "pending_count")
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    fairness_key: str
    pending_count: int
    def __init__(self, fairness_key: _Optional[str] = ..., pending_count: _Optional[int] = ...) -> None: ...
