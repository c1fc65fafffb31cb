import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from quoteflow.quote.v1 import quote_service_pb2 as _quote_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_EVENT_KIND_UNSPECIFIED: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_PROPOSAL_NEW: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_PROPOSAL_FAILED: _ClassVar[OrderEventKind]
    ORDER_EVENT_KIND_ORDER_COMPLETED: _ClassVar[OrderEventKind]
ORDER_EVENT_KIND_UNSPECIFIED: OrderEventKind
ORDER_EVENT_KIND_PROPOSAL_NEW: OrderEventKind
ORDER_EVENT_KIND_PROPOSAL_FAILED: OrderEventKind
ORDER_EVENT_KIND_ORDER_COMPLETED: OrderEventKind

class OrderEvent(_message.Message):
    __slots__ = ("order_req_id", "sequence", "kind", "proposal_id", "quote", "created_at", "text", "error_message")
    ORDER_REQ_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    order_req_id: str
    sequence: int
    kind: OrderEventKind
    proposal_id: str
    quote: _quote_service_pb2.QueueMessage
    created_at: _timestamp_pb2.Timestamp
    text: str
    error_message: str
    def __init__(self, order_req_id: _Optional[str] = ..., sequence: _Optional[int] = ..., kind: _Optional[_Union[OrderEventKind, str]] = ..., proposal_id: _Optional[str] = ..., quote: _Optional[_Union[_quote_service_pb2.QueueMessage, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., text: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class SubmitProposalRequest(_message.Message):
    __slots__ = ("order_req_id", "proposal_id", "submission", "use_agentic", "request_id", "fairness_key")
    ORDER_REQ_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_FIELD_NUMBER: _ClassVar[int]
    USE_AGENTIC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    order_req_id: str
    proposal_id: str
    submission: _quote_service_pb2.Submission
    use_agentic: bool
    request_id: str
    fairness_key: str
    def __init__(self, order_req_id: _Optional[str] = ..., proposal_id: _Optional[str] = ..., submission: _Optional[_Union[_quote_service_pb2.Submission, _Mapping]] = ..., use_agentic: _Optional[bool] = ..., request_id: _Optional[str] = ..., fairness_key: _Optional[str] = ...) -> None: ...

class SubmitProposalResponse(_message.Message):
    __slots__ = ("order_req_id", "proposal_id", "duplicate")
    ORDER_REQ_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    order_req_id: str
    proposal_id: str
    duplicate: bool
    def __init__(self, order_req_id: _Optional[str] = ..., proposal_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class WatchOrderRequest(_message.Message):
    __slots__ = ("order_req_id", "after_sequence")
    ORDER_REQ_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    order_req_id: str
    after_sequence: int
    def __init__(self, order_req_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchOrderResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: OrderEvent
    def __init__(self, event: _Optional[_Union[OrderEvent, _Mapping]] = ...) -> None: ...

class CompleteOrderRequest(_message.Message):
    __slots__ = ("order_req_id",)
    ORDER_REQ_ID_FIELD_NUMBER: _ClassVar[int]
    order_req_id: str
    def __init__(self, order_req_id: _Optional[str] = ...) -> None: ...

class CompleteOrderResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: OrderEvent
    def __init__(self, event: _Optional[_Union[OrderEvent, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("order_queues_count", "events_by_order", "watchers_count", "proposals_in_flight", "events_count", "awaited_orders_count")
    class EventsByOrderEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ORDER_QUEUES_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_BY_ORDER_FIELD_NUMBER: _ClassVar[int]
    WATCHERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_COUNT_FIELD_NUMBER: _ClassVar[int]
    AWAITED_ORDERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    order_queues_count: int
    events_by_order: _containers.ScalarMap[str, int]
    watchers_count: int
    proposals_in_flight: int
    events_count: int
    awaited_orders_count: int
    def __init__(self, order_queues_count: _Optional[int] = ..., events_by_order: _Optional[_Mapping[str, int]] = ..., watchers_count: _Optional[int] = ..., proposals_in_flight: _Optional[int] = ..., events_count: _Optional[int] = ..., awaited_orders_count: _Optional[int] = ...) -> None: ...
