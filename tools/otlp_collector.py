"""A stand-in for an OpenTelemetry collector: an OTLP/gRPC trace receiver that
keeps every span it is sent, in memory, so a test can read the traces the
services exported and the bench can measure exporting against not. It
accepts everything and forwards nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import grpc.aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as pb_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    span: trace_pb2.Span

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()


class Collector(pb_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._changed = asyncio.Event()

    async def Export(
        self,
        request: pb.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[
            pb.ExportTraceServiceRequest, pb.ExportTraceServiceResponse
        ],
    ) -> pb.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(ReceivedSpan(service, span) for span in scope_spans.spans)
        self._changed.set()
        self._changed = asyncio.Event()
        return pb.ExportTraceServiceResponse()

    async def changed(self) -> None:
        """Return once more spans arrive."""
        await self._changed.wait()


async def start_collector(host: str = "127.0.0.1") -> tuple[Collector, grpc.aio.Server, str]:
    """A running collector, its server (the caller stops it) and its endpoint URL."""
    collector = Collector()
    server = grpc.aio.server()
    pb_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    return collector, server, f"http://{host}:{port}"
