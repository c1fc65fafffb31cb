"""RPC metrics under go-grpc-prometheus's names and labels, so that the
dashboards and alerts written for it fit: grpc_{server,client}_started_total,
_handled_total (by grpc_code, in Go's spelling), _msg_received_total,
_msg_sent_total and the _handling_seconds histogram, each labelled
grpc_type, grpc_service and grpc_method.

The label children of a method are looked up once, when its handler is
wrapped (or its first client call is made), so a call costs a few counter
increments and one histogram observation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Side = Literal["server", "client"]
#: How go-grpc-prometheus names a method's streaming shape.
GrpcType = Literal["unary", "client_stream", "server_stream", "bidi_stream"]

# go-grpc-prometheus's default buckets (Prometheus's): existing dashboards'
# quantiles assume them.
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_METHOD_LABELS = ("grpc_type", "grpc_service", "grpc_method")

# codes.Code.String() in grpc-go: what grpc_code holds on every Go service.
_GO_CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}
_GO_CODE_BY_NAME = {code.name: go for code, go in _GO_CODE_NAMES.items()}


def go_code(code: grpc.StatusCode | str) -> str:
    """grpc_code's value for a status code, or for its Python name ("NOT_FOUND")."""
    if isinstance(code, grpc.StatusCode):
        return _GO_CODE_NAMES[code]
    return _GO_CODE_BY_NAME.get(code, "Unknown")


def grpc_type(*, request_streaming: bool, response_streaming: bool) -> GrpcType:
    if request_streaming and response_streaming:
        return "bidi_stream"
    if request_streaming:
        return "client_stream"
    if response_streaming:
        return "server_stream"
    return "unary"


def split_method(full_method: str) -> tuple[str, str]:
    """The service and method of "/package.Service/Method"."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


@dataclass(slots=True)
class MethodMetrics:
    """One method's label children."""

    started: Counter
    received: Counter
    sent: Counter
    handling: Histogram
    _handled: Counter
    _labels: tuple[str, str, str]
    _by_code: dict[str, Counter] = field(default_factory=dict)
    #: Open streams of a streaming method, served; None for unary ones and clients.
    streams: Gauge | None = None

    def handled(self, code: grpc.StatusCode | str, seconds: float) -> None:
        """The call ended with code after seconds."""
        name = go_code(code)
        child = self._by_code.get(name)
        if child is None:
            child = self._by_code[name] = self._handled.labels(*self._labels, name)
        child.inc()
        self.handling.observe(seconds)


class RpcMetrics:
    """The five go-grpc-prometheus families of one side (server or client)."""

    def __init__(self, registry: CollectorRegistry, side: Side) -> None:
        prefix = f"grpc_{side}"
        where = "on the server" if side == "server" else "by the client"
        self._started = Counter(
            f"{prefix}_started",
            f"Total number of RPCs started {where}.",
            _METHOD_LABELS,
            registry=registry,
        )
        self._handled = Counter(
            f"{prefix}_handled",
            f"Total number of RPCs completed {where}, regardless of success or failure.",
            (*_METHOD_LABELS, "grpc_code"),
            registry=registry,
        )
        self._received = Counter(
            f"{prefix}_msg_received",
            f"Total number of RPC stream messages received {where}.",
            _METHOD_LABELS,
            registry=registry,
        )
        self._sent = Counter(
            f"{prefix}_msg_sent",
            f"Total number of gRPC stream messages sent {where}.",
            _METHOD_LABELS,
            registry=registry,
        )
        self._handling = Histogram(
            f"{prefix}_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been "
            f"application-level handled {where}.",
            _METHOD_LABELS,
            buckets=HANDLING_BUCKETS,
            registry=registry,
        )
        self._streams = (
            Gauge(
                "quoteflow_rpc_streams_active",
                "Streaming RPCs open on the server now.",
                ("grpc_service", "grpc_method"),
                registry=registry,
            )
            if side == "server"
            else None
        )
        self._methods: dict[tuple[str, GrpcType], MethodMetrics] = {}

    def method(self, full_method: str, kind: GrpcType) -> MethodMetrics:
        """The children of full_method ("/package.Service/Method"), made once."""
        known = self._methods.get((full_method, kind))
        if known is not None:
            return known
        service, method = split_method(full_method)
        labels = (kind, service, method)
        made = MethodMetrics(
            self._started.labels(*labels),
            self._received.labels(*labels),
            self._sent.labels(*labels),
            self._handling.labels(*labels),
            self._handled,
            labels,
            streams=(
                self._streams.labels(service, method)
                if self._streams is not None and kind != "unary"
                else None
            ),
        )
        self._methods[(full_method, kind)] = made
        return made
