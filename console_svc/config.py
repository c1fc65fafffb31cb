"""The console's configuration: flags and CONSOLE_* environment variables."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from service_runtime.config import DownstreamOptions, ListenerOptions, require_positive

ENV_PREFIX = "CONSOLE"

#: Where `make web` writes the page: served unless --static-dir says otherwise.
DEFAULT_STATIC_DIR = str(Path(__file__).resolve().parent.parent / "web" / "dist")


@dataclass
class ConsoleConfig(ListenerOptions, DownstreamOptions):
    """The listener's options (the console keeps no store, so it takes none of
    the services' store options), the services it bridges, and its page."""

    env_prefix: ClassVar[str] = ENV_PREFIX

    port: int = field(
        default=8080, metadata={"help": "TCP port to serve HTTP on; 0 picks a free one"}
    )
    metrics_port: int = field(
        default=9094,
        metadata={"help": "TCP port of /metrics (Prometheus, plaintext, on host); 0: none"},
    )
    grace_seconds: float = field(
        default=10.0,
        metadata={
            "help": "on SIGTERM, how long unary calls in flight may run before open streams "
            "are ended and the server stops"
        },
    )
    quote_address: str = field(
        default="127.0.0.1:50051", metadata={"help": "host:port of the quote service"}
    )
    processor_address: str = field(
        default="127.0.0.1:50052", metadata={"help": "host:port of the processor service"}
    )
    requestor_address: str = field(
        default="127.0.0.1:50053", metadata={"help": "host:port of the requestor service"}
    )
    call_deadline: float = field(
        default=330.0,
        metadata={
            "help": "seconds a unary call may take when the page sets no deadline of its "
            "own: above the quote service's default attempt timeout (300 s), so a RunQuote "
            "is not cut before its attempt is"
        },
    )
    static_dir: str = field(
        default="",
        metadata={
            "help": "directory of the built web page; empty: this checkout's web/dist, "
            "which make web builds"
        },
    )
    health_timeout: float = field(
        default=1.0,
        metadata={"help": "seconds /healthz waits for each service's health answer"},
    )

    @property
    def page_dir(self) -> Path:
        """Where the page is served from: static_dir, or this checkout's web/dist."""
        return Path(self.static_dir or DEFAULT_STATIC_DIR)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_downstream()
        require_positive(self, "call_deadline", "health_timeout")
        for name in ("quote_address", "processor_address", "requestor_address"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
