"""The quote service's configuration: flags and QUOTE_* environment variables."""

from dataclasses import dataclass, field
from typing import ClassVar

from quote_svc.processors import AGENTIC_PROCESSOR, DEFAULT_PROCESSOR
from service_runtime.config import (
    SchedulingOptions,
    SharedStoreOptions,
    require_non_negative,
    require_positive,
)

ENV_PREFIX = "QUOTE"


@dataclass
class QuoteConfig(SharedStoreOptions, SchedulingOptions):
    env_prefix: ClassVar[str] = ENV_PREFIX

    port: int = field(default=50051, metadata={"help": "TCP port to listen on"})
    metrics_port: int = field(
        default=9091,
        metadata={"help": "TCP port of /metrics (Prometheus, plaintext, on host); 0: none"},
    )
    api: bool = field(
        default=True,
        metadata={
            "help": "false: open no port and serve no calls, only run attempts over the "
            "database the replicas that serve calls share (store postgres)"
        },
    )
    workers: int = field(
        default=4,
        metadata={
            "help": "attempts this process runs at once; 0 with store postgres or memory: "
            "it serves calls only, and other processes price"
        },
    )
    max_size: int = field(
        default=1000,
        metadata={"help": "most unfinished messages; beyond it SubmitQuote is refused"},
    )
    max_retries: int = field(
        default=3, metadata={"help": "failed attempts retried before a message is dead-lettered"}
    )
    attempt_timeout: float = field(
        default=300.0, metadata={"help": "seconds an attempt may run before it is cut"}
    )
    retention_seconds: float = field(
        default=86_400.0, metadata={"help": "how long finished messages are kept"}
    )
    sweep_interval: float = field(
        default=60.0, metadata={"help": "seconds between retention sweeps"}
    )
    backoff_base: float = field(
        default=1.0, metadata={"help": "seconds before the first retry (doubles per retry)"}
    )
    backoff_cap: float = field(default=60.0, metadata={"help": "longest retry backoff, seconds"})
    processor: str = field(
        default=DEFAULT_PROCESSOR, metadata={"help": "processor pricing ordinary submissions"}
    )
    agentic_processor: str = field(
        default=AGENTIC_PROCESSOR,
        metadata={"help": "processor pricing submissions with use_agentic"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_scheduling()
        require_positive(self, "max_size", "attempt_timeout", "sweep_interval")
        require_non_negative(
            self, "workers", "max_retries", "retention_seconds", "backoff_base", "backoff_cap"
        )
        if self.store == "sqlite" and self.workers == 0:
            # One service per data dir: with no workers, nothing would price.
            raise ValueError("workers must be at least 1 with store sqlite, not 0")
        if not self.api:
            if self.store != "postgres":
                # SQLite's data-dir lock admits one process, which runs its own
                # workers; memory is not shared at all.
                raise ValueError(
                    f"api false needs store postgres: a worker process prices what "
                    f"other processes accept, and store {self.store} is not shared"
                )
            if self.workers == 0:
                raise ValueError("with api false, workers must be at least 1, not 0")
