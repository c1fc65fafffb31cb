"""The quote service's configuration: flags and QUOTE_* environment variables."""

from dataclasses import dataclass, field
from typing import ClassVar

from quote_svc.processors import AGENTIC_PROCESSOR, DEFAULT_PROCESSOR
from service_runtime.config import (
    STORE_KINDS,
    ServerOptions,
    require_non_negative,
    require_positive,
)

ENV_PREFIX = "QUOTE"


@dataclass
class QuoteConfig(ServerOptions):
    store_kinds: ClassVar[tuple[str, ...]] = (*STORE_KINDS, "postgres")

    port: int = field(default=50051, metadata={"help": "TCP port to listen on"})
    store: str = field(
        default="sqlite",
        metadata={
            "help": "sqlite: durable, in data_dir; memory: lost when the process ends; "
            "postgres: durable, in database_url, shared by every replica"
        },
    )
    database_url: str = field(
        default="",
        metadata={
            "help": "with store postgres: the database every replica shares, "
            "as postgresql://user:password@host:port/database"
        },
    )
    workers: int = field(
        default=4,
        metadata={
            "help": "attempts this process runs at once; 0 with store postgres or memory: "
            "it serves calls only, and other processes price"
        },
    )
    lease_seconds: float = field(
        default=30.0,
        metadata={
            "help": "with store postgres or memory: how long a claim holds a message without "
            "a heartbeat; a dead replica's messages run again after it"
        },
    )
    heartbeat_seconds: float = field(
        default=10.0,
        metadata={"help": "how often a replica extends the leases it holds; under lease_seconds"},
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
        require_positive(self, "max_size", "attempt_timeout", "sweep_interval", "lease_seconds")
        require_non_negative(
            self, "workers", "max_retries", "retention_seconds", "backoff_base", "backoff_cap"
        )
        if self.store == "postgres" and not self.database_url:
            raise ValueError("store postgres needs database_url (QUOTE_DATABASE_URL)")
        if self.store == "sqlite" and self.workers == 0:
            # One service per data dir: with no workers, nothing would price.
            raise ValueError("workers must be at least 1 with store sqlite, not 0")
        if not 0 < self.heartbeat_seconds < self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds must be positive and under lease_seconds "
                f"({self.lease_seconds}), not {self.heartbeat_seconds}"
            )
