"""The requestor service's configuration: flags and REQUESTOR_* environment variables."""

from dataclasses import dataclass, field
from typing import ClassVar

from service_runtime.config import (
    SchedulingOptions,
    ServiceCallerOptions,
    SharedStoreOptions,
    require_non_negative,
    require_positive,
)

ENV_PREFIX = "REQUESTOR"


@dataclass
class RequestorConfig(SharedStoreOptions, ServiceCallerOptions, SchedulingOptions):
    env_prefix: ClassVar[str] = ENV_PREFIX

    port: int = field(default=50053, metadata={"help": "TCP port to listen on"})
    metrics_port: int = field(
        default=9093,
        metadata={"help": "TCP port of /metrics (Prometheus, plaintext, on host); 0: none"},
    )
    processor_address: str = field(
        default="127.0.0.1:50052", metadata={"help": "host:port of the processor service"}
    )
    max_concurrent_tasks: int = field(
        default=10,
        metadata={
            "help": "most tasks following their orders at once (with store postgres: in this "
            "replica, so a cluster runs up to replicas x this); a task whose order has had "
            "no event yet waits without taking one"
        },
    )
    max_waiting_tasks: int = field(
        default=1000,
        metadata={
            "help": "with store postgres: most tasks this replica watches for their order's "
            "first event at once; the rest stay queued until a replica has room"
        },
    )
    result_retention_seconds: float = field(
        default=3600.0, metadata={"help": "how long a finished task's result is kept"}
    )
    cleanup_interval: float = field(
        default=60.0, metadata={"help": "seconds between sweeps removing old results"}
    )
    call_deadline: float = field(
        default=5.0,
        metadata={"help": "seconds each unary call and health check to the processor may take"},
    )
    health_interval: float = field(
        default=2.0, metadata={"help": "seconds between checks of the processor's health"}
    )
    watch_max_seconds: float = field(
        default=3600.0,
        metadata={"help": "deadline of each WatchOrder stream; it is reopened when it expires"},
    )
    default_task_timeout: float = field(
        default=3600.0,
        metadata={"help": "seconds after placing that a task placed without a timeout times out"},
    )
    reconnect_backoff_base: float = field(
        default=0.05, metadata={"help": "seconds before the first reconnect (doubles per retry)"}
    )
    reconnect_backoff_cap: float = field(
        default=2.0,
        metadata={
            "help": "longest wait between reconnects, seconds; a task reconnects until its deadline"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_downstream()
        self.check_scheduling()
        if not self.processor_address.strip():
            raise ValueError("processor_address must not be empty")
        require_positive(
            self,
            "max_concurrent_tasks",
            "max_waiting_tasks",
            "cleanup_interval",
            "call_deadline",
            "health_interval",
            "watch_max_seconds",
            "default_task_timeout",
        )
        require_non_negative(
            self,
            "result_retention_seconds",
            "reconnect_backoff_base",
            "reconnect_backoff_cap",
        )
