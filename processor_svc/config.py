"""The processor service's configuration: flags and PROCESSOR_* environment variables."""

from dataclasses import dataclass, field
from typing import ClassVar

from processor_svc.pricing import COMPLETION_WAIT, MAX_PROPOSALS_PER_ORDER
from service_runtime.config import (
    ServiceCallerOptions,
    SharedStoreOptions,
    require_non_negative,
    require_positive,
)

ENV_PREFIX = "PROCESSOR"


@dataclass
class ProcessorConfig(SharedStoreOptions, ServiceCallerOptions):
    env_prefix: ClassVar[str] = ENV_PREFIX

    port: int = field(default=50052, metadata={"help": "TCP port to listen on"})
    metrics_port: int = field(
        default=9092,
        metadata={"help": "TCP port of /metrics (Prometheus, plaintext, on host); 0: none"},
    )
    pricing_concurrency: int = field(
        default=1000,
        metadata={
            "help": "with store postgres or memory: proposals this process follows to their "
            "quote's end at once (each holds one WatchMessage stream)"
        },
    )
    quote_address: str = field(
        default="127.0.0.1:50051", metadata={"help": "host:port of the quote service"}
    )
    call_deadline: float = field(
        default=5.0, metadata={"help": "seconds each call to the quote service may take"}
    )
    pricing_timeout: float = field(
        default=3600.0,
        metadata={"help": "seconds a proposal's quote may take to be final before it fails"},
    )
    completed_retention: float = field(
        default=3600.0, metadata={"help": "seconds a completed order's events are kept"}
    )
    tombstone_retention: float = field(
        default=86_400.0,
        metadata={
            "help": "seconds a removed order's id is remembered: calls naming it answer "
            "NOT_FOUND (ORDER_EXPIRED) rather than start a new order"
        },
    )
    max_awaited_orders: int = field(
        default=1000,
        metadata={
            "help": "orders with no event yet that may be watched at once; past it "
            "WatchOrder answers RESOURCE_EXHAUSTED"
        },
    )
    max_proposals_per_order: int = field(
        default=MAX_PROPOSALS_PER_ORDER,
        metadata={
            "help": "proposals an order takes; past it SubmitProposal answers "
            "FAILED_PRECONDITION. Above the default, a requestor's GetTaskResult of an "
            "order of the largest proposals may exceed gRPC's 4 MiB"
        },
    )
    completion_wait: float = field(
        default=COMPLETION_WAIT,
        metadata={
            "help": "seconds CompleteOrder waits for proposals still being priced before "
            "it withdraws them (those awaiting a human review are withdrawn at once)"
        },
    )
    cleanup_interval: float = field(
        default=60.0, metadata={"help": "seconds between sweeps of completed orders"}
    )
    health_interval: float = field(
        default=2.0, metadata={"help": "seconds between checks of the quote service's health"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_downstream()
        require_positive(
            self, "call_deadline", "pricing_timeout", "cleanup_interval", "health_interval"
        )
        require_positive(self, "max_awaited_orders", "max_proposals_per_order")
        require_non_negative(self, "completed_retention", "tombstone_retention", "completion_wait")
        require_positive(self, "pricing_concurrency")
